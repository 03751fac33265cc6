# Shared by the demo and benchmark scripts: finding PostgreSQL and running
# its programs as an unprivileged user (PostgreSQL refuses to run as root).
# Set extra_path before calling as_pg to put more directories on its PATH.

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
