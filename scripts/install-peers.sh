#!/usr/bin/env bash
# Installs the peers the benchmarks run beside walship, where it can:
# pgBackRest from Debian's package when `pgbackrest` is missing (as root,
# with apt-get). WAL-G is never installed: the benchmarks run the wal-g
# binary (for PostgreSQL) named by WALG_BIN, built by whoever runs them,
# and leave its rows out without one. A peer that cannot be installed is
# left out of the tables (with a line saying why); this never fails.
# Usage: scripts/install-peers.sh   (idempotent; BENCH_PEERS="pgbackrest walg" chooses)
set -uo pipefail
peers=${BENCH_PEERS-pgbackrest walg}
case " $peers " in
*" pgbackrest "*)
  if command -v pgbackrest >/dev/null 2>&1; then
    echo "peers: $(pgbackrest version) is installed"
  elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "peers: installing pgBackRest from Debian's package"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest; } >/dev/null 2>&1 ||
      echo "peers: apt-get could not install pgbackrest; its rows are left out" >&2
  else
    echo "peers: no pgbackrest, and no apt-get as root to install it; its rows are left out" >&2
  fi
  ;;
esac
case " $peers " in
*" walg "*)
  if [ -n "${WALG_BIN:-}" ]; then
    echo "peers: WAL-G from WALG_BIN=$WALG_BIN"
  else
    echo "peers: WALG_BIN is not set; the WAL-G rows are left out"
  fi
  ;;
esac
command -v openssl >/dev/null 2>&1 || echo "peers: no openssl for the HTTPS S3 server; pgBackRest's S3 rows are left out" >&2
exit 0
