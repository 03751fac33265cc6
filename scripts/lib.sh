# Shared by the demo and benchmark scripts: the repository root, finding
# PostgreSQL, running its programs as an unprivileged user (PostgreSQL
# refuses to run as root), and the demos' scratch directory. Set extra_path
# to put more directories on as_pg's PATH.
#
# Every script starts with the same line, which finds this file beside it:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# and this file makes the repository root the working directory (and
# $root), so that scripts name its files relative to it: bin/, docs/,
# ./test/, scripts/bench-lib.sh. Relative paths given to a script (in
# BENCH_DIR, WALSHIP_DEMO_DIR, ...) are relative to the root too.

root=$(CDPATH= cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

find_pgbin() {
  if [ -n "${WALSHIP_PG_BIN:-}" ]; then echo "$WALSHIP_PG_BIN"; return; fi
  if command -v pg_ctl >/dev/null; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}
pgbin=$(find_pgbin)
pguser=$(id -un)
[ "$(id -u)" = 0 ] && pguser=${WALSHIP_PG_USER:-postgres}
extra_path=
as_pg() {
  local path="$pgbin${extra_path:+:$extra_path}:$PATH"
  if [ "$(id -u)" = 0 ]; then runuser -u "$pguser" -- env PATH="$path" "$@"; else env PATH="$path" "$@"; fi
}

# step TEXT: a heading in a demo's output.
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# demo_dir DIR CLUSTER...: makes DIR afresh with the built walship binaries
# in DIR/bin (on as_pg's PATH), owned by the server's user. The servers of
# the clusters DIR/CLUSTER are stopped first and again when the script exits.
demo_dir() {
  demo=$1; shift
  demo_clusters=("$@")
  extra_path=$demo/bin
  trap stop_demo_servers EXIT
  stop_demo_servers
  rm -rf "$demo"; mkdir -p "$demo/bin"
  cp "$root"/bin/walship "$root"/bin/walship-* "$demo/bin/"
  chmod 755 "$demo" "$demo/bin"
  if [ "$(id -u)" = 0 ]; then chown -R "$pguser" "$demo"; fi
}
stop_demo_servers() {
  local d
  for d in "${demo_clusters[@]}"; do
    [ -f "$demo/$d/postmaster.pid" ] && as_pg pg_ctl -D "$demo/$d" -m fast -w stop >/dev/null 2>&1 || true
  done
}
