#!/usr/bin/env bash
# Failover and failback with walship-rewind: a primary (A) with a streaming
# standby (B), both archiving into one walship repository; B is promoted
# while A goes on writing; A stops, and walship-rewind turns it into a
# streaming standby of B without a new base backup, with the WAL it no
# longer has fetched from the archive. Every step is printed, with row
# counts. Runs on its own directory and ports, after or without demo.sh.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -x "$pgbin/pg_ctl" ] || { echo "demo: PostgreSQL not found (apt-get install postgresql, or set WALSHIP_PG_BIN)" >&2; exit 1; }
[ -x bin/walship-rewind ] || { echo "demo: build first (make build)" >&2; exit 1; }

demo_dir "${WALSHIP_FAILBACK_DIR:-/tmp/walship-demo-failback}" a b
port_a=55442; port_b=55443

psql_a() { as_pg psql -X -q -At -h "$demo" -p $port_a -U postgres -d postgres "$@"; }
psql_b() { as_pg psql -X -q -At -h "$demo" -p $port_b -U postgres -d postgres "$@"; }
conn_b="host=$demo port=$port_b user=postgres dbname=postgres"
history() { echo "$($1 -c "SELECT count(*) FROM pgbench_history") transactions in pgbench_history"; }
wait_for() { # wait_for PSQL SQL: until the query returns t
  for _ in $(seq 300); do [ "$($1 -c "$2" 2>/dev/null)" = t ] && return 0; sleep 0.2; done
  echo "demo: timed out waiting for: $2" >&2; return 1
}

step "1. primary A (data checksums: pg_rewind needs them or wal_log_hints) archiving into $demo/repo"
as_pg initdb -D "$demo/a" -U postgres -A trust -N --data-checksums >/dev/null
cat >> "$demo/a/postgresql.conf" <<CONF
port = $port_a
listen_addresses = ''
unix_socket_directories = '$demo'
wal_level = replica
archive_mode = on
archive_command = '$demo/bin/walship-archive --repo $demo/repo %p %f'
CONF
echo "local replication all trust" >> "$demo/a/pg_hba.conf"
as_pg pg_ctl -D "$demo/a" -l "$demo/a.log" -w start >/dev/null
as_pg pgbench -h "$demo" -p $port_a -U postgres -i -s 5 -q postgres 2>&1 | tail -n1 | sed 's/^/    /'
as_pg pgbench -h "$demo" -p $port_a -U postgres -c 2 -t 500 -n postgres >/dev/null
echo "    A: $(history psql_a)"

step "2. standby B: pg_basebackup -R, streaming from A, archive_mode = always into the same repository"
as_pg pg_basebackup -h "$demo" -p $port_a -U postgres -D "$demo/b" -c fast -R
cat >> "$demo/b/postgresql.conf" <<CONF
port = $port_b
archive_mode = always
restore_command = '$demo/bin/walship-restore --repo $demo/repo %f %p'
CONF
as_pg pg_ctl -D "$demo/b" -l "$demo/b.log" -w start >/dev/null
wait_for psql_b "SELECT status = 'streaming' FROM pg_stat_wal_receiver"
# B's first feedback sets replay_lsn; until then the row's replay lag is NULL.
wait_for psql_a "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming' AND replay_lsn IS NOT NULL"
echo "    A's pg_stat_replication: $(psql_a -c "SELECT application_name || ' ' || state || ', replay lag ' || pg_wal_lsn_diff(sent_lsn, replay_lsn) || ' bytes' FROM pg_stat_replication")"
psql_a -c "CHECKPOINT" -c "SELECT pg_switch_wal()" >/dev/null
as_pg pgbench -h "$demo" -p $port_a -U postgres -c 2 -t 200 -n postgres >/dev/null
lsn=$(psql_a -c "SELECT pg_current_wal_lsn()")
wait_for psql_b "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
echo "    A: $(history psql_a);  B: $(history psql_b)"

step "3. failover: B is promoted (pg_ctl promote) while A, cut off, goes on writing"
as_pg pg_ctl -D "$demo/b" -w promote >/dev/null
echo "    B: promoted, now writes timeline $(psql_b -c "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")"
as_pg pgbench -h "$demo" -p $port_b -U postgres -c 2 -t 300 -n postgres >/dev/null
for _ in 1 2; do
  as_pg pgbench -h "$demo" -p $port_a -U postgres -c 2 -t 1000 -n postgres >/dev/null
  psql_a -c "SELECT pg_switch_wal()" >/dev/null
done
last=$(psql_a -c "SELECT pg_walfile_name(pg_current_wal_lsn() - 1)")
wait_for psql_a "SELECT coalesce(last_archived_wal >= '$last', false) FROM pg_stat_archiver"
psql_a -c "CHECKPOINT" >/dev/null
echo "    A (old primary, diverged): $(history psql_a)"
echo "    B (new primary):           $(history psql_b)"
as_pg pg_ctl -D "$demo/a" -m fast -w stop >/dev/null
echo "    A stopped. Its pg_wal starts at $(ls "$demo/a/pg_wal" | grep -E '^[0-9A-F]{24}$' | sort | head -n1); the WAL since the last common checkpoint before that is only in the archive"

step "4. plain pg_rewind cannot do it: the WAL it needs is gone from A's pg_wal"
psql_b -c "CHECKPOINT" >/dev/null
if out=$(as_pg pg_rewind --dry-run -D "$demo/a" --source-server "$conn_b" 2>&1); then
  echo "    pg_rewind succeeded without the archive (the WAL was still in pg_wal)"
else
  echo "$out" | grep -E 'error|fatal' | head -n2 | sed 's/^/    /'
fi

step "5. walship-rewind --dry-run: the divergence and the WAL to fetch, nothing changed"
as_pg walship-rewind --repo "$demo/repo" -D "$demo/a" --source-server "$conn_b" --dry-run | sed 's/^/    /'

step "6. failback: walship-rewind --progress --start"
echo "    \$ walship-rewind --repo $demo/repo -D $demo/a --source-server '$conn_b' --progress --start"
as_pg walship-rewind --repo "$demo/repo" -D "$demo/a" --source-server "$conn_b" --progress --start --start-log "$demo/a.log" | sed 's/^/    /'

step "7. result"
lsn=$(psql_b -c "SELECT pg_current_wal_lsn()")
wait_for psql_a "SELECT pg_last_wal_replay_lsn() >= '$lsn'"
echo "    A: $(psql_a -c "SELECT 'standby: ' || pg_is_in_recovery() || ', WAL receiver ' || status || ' on timeline ' || received_tli FROM pg_stat_wal_receiver")"
echo "    A's own settings kept: port $(psql_a -c 'SHOW port'), archive_command $(psql_a -c 'SHOW archive_command')"
echo "    A's restore_command:   $(psql_a -c 'SHOW restore_command')"
got=$(history psql_a); want=$(history psql_b)
echo "    A: $got"
echo "    B: $want"
if [ "$got" = "$want" ]; then echo "    OK: A follows B with exactly B's data; its divergent transactions are gone"; else echo "    MISMATCH" >&2; exit 1; fi
echo
echo "demo files are in $demo (servers are stopped on exit)"
