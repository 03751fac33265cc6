#!/usr/bin/env bash
# scripts/check-deb.sh [PACKAGE.deb]: installs the package `make deb` built
# (the newest walship_*.deb here, or the one named) with apt-get, checks what
# it installed, archives a WAL segment and restores it with the installed
# /usr/bin/walship-archive and /usr/bin/walship-restore through a temporary
# repository, then removes the package (apt-get remove, then purge for the
# conffile). As root, on Debian; .ci/run runs it after make deb. It refuses
# to run where walship is installed already, which it would remove.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "check-deb: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root (apt-get install)"
deb=${1:-$(ls -t walship_*.deb 2>/dev/null | head -n 1)}
[ -n "$deb" ] && [ -f "$deb" ] || fail "no walship_*.deb here: run make deb first"
case $deb in /*|./*) ;; *) deb=./$deb ;; esac # apt-get takes a path, not a name
if dpkg-query -W -f='${Status}' walship 2>/dev/null | grep -q 'installed'; then
  fail "walship is installed already; this check would remove it"
fi
for p in walship walship-archive walship-restore walship-prune walship-rewind; do
  [ ! -e /usr/bin/$p ] || fail "/usr/bin/$p exists outside the package"
done

tmp=$(mktemp -d)
installed=
cleanup() {
  [ -z "$installed" ] || DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq walship >/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "check-deb: apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
installed=1

# What the package put where.
out=$(/usr/bin/walship-archive -V)
case $out in "walship-archive "*) echo "check-deb: $out" ;; *) fail "walship-archive -V printed: $out" ;; esac
for p in walship walship-archive walship-restore walship-prune walship-rewind; do
  [ -x /usr/bin/$p ] || fail "/usr/bin/$p is not installed"
  [ -f /usr/share/man/man1/$p.1.gz ] || fail "no man page /usr/share/man/man1/$p.1.gz"
done
if command -v man >/dev/null 2>&1; then
  man -w walship-restore | grep -q '^/usr/share/man/man1/walship-restore.1.gz$' || fail "man -w walship-restore does not find the page"
fi
for f in README.md docs/archiving.md docs/exit-status.md contrib/walship.toml contrib/cron/walship-prune contrib/systemd/walship-prune.timer; do
  [ -f /usr/share/doc/walship/$f ] || fail "not installed: /usr/share/doc/walship/$f"
done
! grep -rq /usr/local/bin /usr/share/doc/walship/contrib /usr/lib/systemd/system/walship-*.service ||
  fail "an installed example still names /usr/local/bin"
grep -q '^ExecStart=/usr/bin/walship-prune ' /usr/lib/systemd/system/walship-prune.service ||
  fail "walship-prune.service does not run /usr/bin/walship-prune"
[ ! -e /etc/cron.d/walship-prune ] || fail "a cron example is active in /etc/cron.d"
[ -f /etc/walship/walship.toml ] || fail "no /etc/walship/walship.toml"
dpkg-query -W -f='${Conffiles}\n' walship | grep -q '^ /etc/walship/walship.toml ' ||
  fail "/etc/walship/walship.toml is not a conffile"

# One round trip through the installed binaries, with the packaged config
# (--repo on the command line wins over its repo).
go run ./internal/tools/fakeseg "$tmp/pg_wal" 000000010000000000000001
(cd "$tmp" && /usr/bin/walship-archive --config /etc/walship/walship.toml --repo "$tmp/repo" \
  pg_wal/000000010000000000000001 000000010000000000000001) || fail "walship-archive failed"
/usr/bin/walship --help >/dev/null
/usr/bin/walship ls --config /etc/walship/walship.toml --repo "$tmp/repo" | grep -q 000000010000000000000001 ||
  fail "walship ls does not list the archived segment"
mkdir "$tmp/restored"
/usr/bin/walship-restore --config /etc/walship/walship.toml --repo "$tmp/repo" \
  000000010000000000000001 "$tmp/restored/RECOVERYXLOG" || fail "walship-restore failed"
cmp "$tmp/pg_wal/000000010000000000000001" "$tmp/restored/RECOVERYXLOG" || fail "the restored segment differs"
set +e
/usr/bin/walship-restore --repo "$tmp/repo" 000000010000000000000002 "$tmp/restored/RECOVERYXLOG2"
code=$?
set -e
[ "$code" = 1 ] || fail "walship-restore of a segment not archived exited $code, want 1"
echo "check-deb: archived and restored 000000010000000000000001 with /usr/bin/walship-archive and /usr/bin/walship-restore"

echo "check-deb: apt-get remove walship"
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq walship >/dev/null
[ ! -e /usr/bin/walship-archive ] || fail "apt-get remove left /usr/bin/walship-archive"
[ -f /etc/walship/walship.toml ] || fail "apt-get remove took the conffile (only purge should)"
DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq walship >/dev/null
[ ! -e /etc/walship/walship.toml ] || fail "apt-get purge left /etc/walship/walship.toml"
installed=
echo "check-deb: ok"
