#!/usr/bin/env bash
# Failback time: the old primary back as a streaming standby of the new one,
# with walship-rewind (pg_rewind fed from the archive) against re-cloning it
# with pg_basebackup, on the same diverged state, until it streams. Prints a
# markdown table and writes the "rewind" section of docs/BENCHMARKS.md.
#   BENCH_SCALE    pgbench scale of the database (default 50: about 750 MB)
#   BENCH_CHANGES  pgbench transactions per client the old primary commits
#                  after the failover: the small changed part (default 500)
#   BENCH_ROUNDS   failovers measured (default 3; the roles swap each time)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
[ -x "$pgbin/pg_ctl" ] || { echo "bench-rewind: PostgreSQL not found" >&2; exit 1; }
[ -x bin/walship-rewind ] || { echo "bench-rewind: build first (make build)" >&2; exit 1; }

work=${BENCH_DIR:-/var/tmp/walship-bench-rewind}
scale=${BENCH_SCALE:-50}
changes=${BENCH_CHANGES:-500}
rounds=${BENCH_ROUNDS:-3}
declare -A port=([a]=55511 [b]=55512 [c]=55513)
secs() { awk -v n="$1" 'BEGIN {printf "%.1f", n/1e9}'; }

stop_all() { for d in a b c; do [ -f "$work/$d/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/$d" -m immediate -w stop >/dev/null 2>&1 || true; done; }
trap stop_all EXIT
stop_all
rm -rf "$work"; mkdir -p "$work/bin"
cp bin/walship-* "$work/bin/"; chmod -R a+rX "$work"
[ "$(id -u)" = 0 ] && chown -R "$pguser" "$work"

sql() { as_pg psql -X -q -At -h "$work" -p "${port[$1]}" -U postgres -d postgres -c "$2"; }
conn() { echo "host=$work port=${port[$1]} user=postgres dbname=postgres"; }
wait_sql() { # wait_sql NODE SQL: until it returns t
  for _ in $(seq 3000); do [ "$(sql "$1" "$2" 2>/dev/null)" = t ] && return 0; sleep 0.2; done
  echo "bench-rewind: timed out waiting on $1 for: $2" >&2; exit 1
}
start() { as_pg pg_ctl -D "$work/$1" -l "$work/$1.log" -w -t 600 start >/dev/null; }
own_conf() { # own_conf NODE: the settings of this node (appended: later lines win)
  cat >> "$work/$1/postgresql.conf" <<CONF
port = ${port[$1]}
listen_addresses = ''
unix_socket_directories = '$work'
CONF
}

echo "bench-rewind: primary a (data checksums), pgbench scale $scale, streaming standby b, one walship repository" >&2
as_pg initdb -D "$work/a" -U postgres -A trust -N --data-checksums >/dev/null
cat >> "$work/a/postgresql.conf" <<CONF
wal_level = replica
archive_mode = on
archive_command = '$work/bin/walship-archive --repo $work/repo %p %f'
restore_command = '$work/bin/walship-restore --repo $work/repo %f %p'
max_wal_size = 256MB
min_wal_size = 80MB
CONF
own_conf a
echo "local replication all trust" >> "$work/a/pg_hba.conf"
start a
as_pg pgbench -h "$work" -p "${port[a]}" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
sql a "CHECKPOINT" >/dev/null
as_pg pg_basebackup -h "$work" -p "${port[a]}" -U postgres -D "$work/b" -c fast -R
echo "archive_mode = always" >> "$work/b/postgresql.conf"
own_conf b
start b
wait_sql b "SELECT status = 'streaming' FROM pg_stat_wal_receiver"
dbsize=$(sql a "SELECT pg_size_pretty(pg_database_size('postgres'))")
datadir=$(du -sm "$work/a" | cut -f1)
echo "bench-rewind: database $dbsize, data directory $datadir MB" >&2

rewind_ns=(); clone_ns=(); fetched=(); copied=()
p=a; s=b
for r in $(seq "$rounds"); do
  # Failover: s is promoted, p goes on writing a little, then stops.
  sql "$p" "CHECKPOINT" >/dev/null
  lsn=$(sql "$p" "SELECT pg_current_wal_lsn()")
  wait_sql "$s" "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
  as_pg pg_ctl -D "$work/$s" -w promote >/dev/null
  as_pg pgbench -h "$work" -p "${port[$s]}" -U postgres -c 2 -t 100 -n postgres >/dev/null
  as_pg pgbench -h "$work" -p "${port[$p]}" -U postgres -c 2 -t "$changes" -n postgres >/dev/null
  last=$(sql "$p" "SELECT pg_walfile_name(pg_current_wal_lsn())")
  sql "$p" "SELECT pg_switch_wal()" >/dev/null
  wait_sql "$p" "SELECT coalesce(last_archived_wal >= '$last', false) FROM pg_stat_archiver"
  as_pg pg_ctl -D "$work/$p" -m fast -w stop >/dev/null
  as_pg cp -a "$work/$p" "$work/c" # the same diverged state for the re-clone
  sync

  # walship-rewind, until the old primary streams.
  t0=$(now_ns)
  as_pg "$work/bin/walship-rewind" --repo "$work/repo" -D "$work/$p" --source-server "$(conn "$s")" \
    --start --start-log "$work/$p.log" > "$work/rewind-$r.out"
  t1=$(now_ns)
  rewind_ns+=($((t1 - t0)))
  fetched+=("$(sed -n 's/.*WAL from the archive fetched: \([0-9]*\) files.*/\1/p' "$work/rewind-$r.out")")
  copied+=("$(sed -n 's/.*pg_rewind copied \([0-9]*\) MB.*/\1/p' "$work/rewind-$r.out")")

  # Re-clone: throw the old primary away, pg_basebackup -R, start, until it streams.
  t0=$(now_ns)
  rm -rf "$work/c"
  as_pg pg_basebackup -h "$work" -p "${port[$s]}" -U postgres -D "$work/c" -c fast -R
  own_conf c
  start c
  wait_sql c "SELECT status = 'streaming' FROM pg_stat_wal_receiver"
  t1=$(now_ns)
  clone_ns+=($((t1 - t0)))
  as_pg pg_ctl -D "$work/c" -m immediate -w stop >/dev/null; rm -rf "$work/c"
  echo "  round $r ($p rewound onto $s): walship-rewind $(secs "${rewind_ns[-1]}") s, re-clone $(secs "${clone_ns[-1]}") s; ${fetched[-1]:-0} WAL files from the archive, pg_rewind copied ${copied[-1]:-?} MB" >&2
  tmp=$p; p=$s; s=$tmp
done

rw=$(median "${rewind_ns[@]}"); cl=$(median "${clone_ns[@]}")
body=$(mktemp)
{
  echo
  echo "## Failback: walship-rewind against re-cloning the old primary"
  echo
  machine_line
  echo "Database: pgbench scale $scale ($dbsize; data directory $datadir MB), data checksums; after each failover the old primary"
  echo "commits $((2 * changes)) pgbench transactions the new primary never sees, then stops. Time until the old primary streams"
  echo "from the new one; median of $rounds failovers (the roles swap each time). pg_rewind fetched $(median "${fetched[@]:-0}") WAL"
  echo "files from the archive and copied $(median "${copied[@]:-0}") MB (median)."
  echo
  echo "| failback, until streaming | seconds | vs re-clone |"
  echo "| --- | ---: | ---: |"
  echo "| \`walship-rewind --start\` (pg_rewind, WAL from the archive, own config kept) | $(secs "$rw") | **$(ratio "$rw" "$cl")** |"
  echo "| re-clone: \`pg_basebackup -R\` + \`pg_ctl start\` | $(secs "$cl") | 1.00 |"
  echo
} > "$body"
cat "$body"
update_section rewind "$body"
rm -f "$body"
