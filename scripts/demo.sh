#!/usr/bin/env bash
# make demo: a real PostgreSQL primary archiving through walship into a local
# repository, a base backup taken into the same repository with walship
# backup create, a second cluster restored from it to a named restore point
# with walship backup restore, and the 8.2 seed's warm standby built from the
# same backup. Every step is printed; the row counts show the restored copy
# has exactly the data of the restore point, and the promoted standby every
# row.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ -x "$pgbin/pg_ctl" ] || { echo "demo: PostgreSQL not found (apt-get install postgresql, or set WALSHIP_PG_BIN)" >&2; exit 1; }

demo_dir "${WALSHIP_DEMO_DIR:-/tmp/walship-demo}" primary restored warm
port_p=55432; port_r=55433; port_w=55434

psql_p() { as_pg psql -X -q -At -h "$demo" -p $port_p -U postgres -d postgres "$@"; }
psql_r() { as_pg psql -X -q -At -h "$demo" -p $port_r -U postgres -d postgres "$@"; }
psql_w() { as_pg psql -X -q -At -h "$demo" -p $port_w -U postgres -d postgres "$@"; }
wait_for() { # wait_for N CMD...: until CMD prints t, N tenths of a second at most
  local n=$1; shift
  for _ in $(seq "$n"); do [ "$("$@" 2>/dev/null)" = t ] && return 0; sleep 0.1; done
  return 1
}

step "1. initdb a primary; archive_command is walship-archive into $demo/repo"
as_pg initdb -D "$demo/primary" -U postgres -A trust -N >/dev/null
cat >> "$demo/primary/postgresql.conf" <<CONF
port = $port_p
listen_addresses = ''
unix_socket_directories = '$demo'
wal_level = replica
archive_mode = on
archive_command = '$demo/bin/walship-archive --repo $demo/repo %p %f'
CONF
echo "local replication all trust" >> "$demo/primary/pg_hba.conf"
grep -E '^(archive_mode|archive_command)' "$demo/primary/postgresql.conf" | sed 's/^/    /'
as_pg pg_ctl -D "$demo/primary" -l "$demo/primary.log" -w start >/dev/null

step "2. load data with pgbench"
as_pg pgbench -h "$demo" -p $port_p -U postgres -i -s 5 -q postgres 2>&1 | tail -n1 | sed 's/^/    /'

step "3. base backup into the repository: walship backup create (the server's BASE_BACKUP streamed in, WAL from the archive)"
echo "    \$ walship backup create --repo $demo/repo -d 'host=$demo port=$port_p user=postgres' --checkpoint fast"
as_pg walship backup create --repo "$demo/repo" -d "host=$demo port=$port_p user=postgres" --checkpoint fast | sed 's/^/    /'
as_pg walship backup list --repo "$demo/repo" | sed 's/^/    /'

step "4. more work, a restore point, then damage after it"
as_pg pgbench -h "$demo" -p $port_p -U postgres -c 2 -t 1000 -n postgres >/dev/null
psql_p -c "CREATE TABLE before_damage AS SELECT count(*) AS accounts, sum(abalance) AS total FROM pgbench_accounts"
want=$(psql_p -c "SELECT accounts || ' accounts, balance total ' || total FROM before_damage")
psql_p -c "SELECT pg_create_restore_point('before_damage')" >/dev/null
psql_p -c "DELETE FROM pgbench_accounts WHERE aid % 2 = 0"
echo "    at the restore point: $want"
echo "    on the primary now:   $(psql_p -c "SELECT count(*) || ' accounts, balance total ' || sum(abalance) FROM pgbench_accounts") (half deleted)"
last=$(psql_p -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql_p -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 100); do
  [ "$(psql_p -c "SELECT coalesce(last_archived_wal >= '$last', false) FROM pg_stat_archiver")" = t ] && break
  sleep 0.2
done
echo "    pg_stat_archiver: $(psql_p -c "SELECT archived_count || ' archived, ' || failed_count || ' failed, last ' || last_archived_wal FROM pg_stat_archiver")"
echo "    repository: $(find "$demo/repo/wal" -type f | wc -l) objects, $(du -sh "$demo/repo" | cut -f1) (lz4) for $(( $(find "$demo/repo/wal" -name '*.lz4' | wc -l) * 16 ))MB of WAL"

step "5. restore the backup to the restore point: walship backup restore --start"
echo "    \$ walship backup restore --repo $demo/repo -D $demo/restored --target-name before_damage --set port=$port_r --start"
as_pg walship backup restore --repo "$demo/repo" -D "$demo/restored" --target-name before_damage \
  --set port=$port_r --start --start-log "$demo/restored.log" | tr ';' '\n' | sed 's/^ */    /'
grep -E '^(restore_command|recovery_target|archive_mode)' "$demo/restored/postgresql.auto.conf" | sed 's/^/    postgresql.auto.conf: /'
grep -E 'restored log file|recovery stopping|archive recovery complete' "$demo/restored.log" | sed 's/^[^]]*] /    server: /' | tail -n 6

step "6. result"
got=$(psql_r -c "SELECT count(*) || ' accounts, balance total ' || sum(abalance) FROM pgbench_accounts")
echo "    restore point: $want"
echo "    restored:      $got"
if [ "$got" = "$want" ]; then echo "    OK: the restored cluster holds exactly the data of the restore point"; else echo "    MISMATCH" >&2; exit 1; fi

step "7. the 8.2 warm standby from the same backup: walship backup restore --standby --trigger (archive only, no streaming)"
echo "    \$ walship backup restore --repo $demo/repo -D $demo/warm --standby --trigger $demo/promote.trigger --set port=$port_w --start"
as_pg walship backup restore --repo "$demo/repo" -D "$demo/warm" --standby --trigger "$demo/promote.trigger" \
  --set port=$port_w --start --start-log "$demo/warm.log" | tr ';' '\n' | sed 's/^ */    /'
grep -E '^(restore_command|recovery_prefetch)' "$demo/warm/postgresql.auto.conf" | sed 's/^/    postgresql.auto.conf: /'
psql_p -c "CREATE TABLE shipped (n int)"
for i in 1 2 3; do
  psql_p -c "INSERT INTO shipped SELECT generate_series(1, 1000)"
  psql_p -c "SELECT pg_switch_wal()" >/dev/null
  want_w=$(psql_p -c "SELECT count(*) FROM shipped")
  if wait_for 300 psql_w -c "SELECT count(*) = $want_w FROM shipped"; then
    echo "    primary switched WAL; standby sees $(psql_w -c 'SELECT count(*) FROM shipped') rows of shipped (streaming: $(psql_w -c 'SELECT count(*) FROM pg_stat_wal_receiver') connections)"
  else
    echo "    standby did not catch up" >&2; exit 1
  fi
done
echo "    the primary fails; the DBA touches the trigger file (empty = apply everything archived, then promote)"
psql_p -c "INSERT INTO shipped SELECT generate_series(1, 500)"
psql_p -c "SELECT pg_switch_wal()" >/dev/null
final=$(psql_p -c "SELECT count(*) FROM shipped")
wait_for 300 psql_p -c "SELECT last_archived_wal >= pg_walfile_name(pg_current_wal_lsn() - 1) FROM pg_stat_archiver" || true
as_pg pg_ctl -D "$demo/primary" -m immediate -w stop >/dev/null
as_pg touch "$demo/promote.trigger"
wait_for 300 psql_w -c "SELECT NOT pg_is_in_recovery()" || { echo "    standby did not promote" >&2; exit 1; }
got_w=$(psql_w -c "SELECT count(*) FROM shipped")
echo "    promoted: $got_w rows of shipped (the primary had $final when it failed)"
[ "$got_w" = "$final" ] || { echo "    MISMATCH" >&2; exit 1; }
echo "    OK: every archived segment was applied before the promotion"

step "8. the repository it built: walship status, ls, verify, and walship-prune"
show() { echo "    \$ $*"; as_pg "$@" | sed 's/^/    /'; }
show walship status --repo "$demo/repo"
listing=$(as_pg walship ls --repo "$demo/repo")
echo "    \$ walship ls --repo $demo/repo   ($(($(echo "$listing" | wc -l) - 1)) files; the first and the last)"
echo "$listing" | head -n 4 | sed 's/^/    /'
echo "    ..."
echo "$listing" | tail -n 3 | sed 's/^/    /'
show walship verify --repo "$demo/repo" --full
echo "    \$ walship-prune --repo $demo/repo --data-dir $demo/primary --keep-backups 1 --dry-run"
dry=$(as_pg walship-prune --repo "$demo/repo" --data-dir "$demo/primary" --keep-backups 1 --dry-run)
echo "    ($(echo "$dry" | grep -c '^would remove wal/') lines 'would remove wal/...', one per file)"
echo "$dry" | grep -v '^would remove wal/' | sed 's/^/    /'
show walship-prune --repo "$demo/repo" --data-dir "$demo/primary" --keep-backups 1
show walship verify --repo "$demo/repo"

echo
echo "demo files are in $demo (servers are stopped on exit)"
