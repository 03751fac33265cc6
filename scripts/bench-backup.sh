#!/usr/bin/env bash
# Base backups: walship backup create (the server's BASE_BACKUP streamed into
# a local repository, compressed by the server's lz4, and by walship's)
# against pg_basebackup -Ft to local disk (uncompressed)
# and pgBackRest's full backup (lz4, into its local repository), on the
# same pgbench database; then walship backup restore against extracting
# pg_basebackup's tar; and the bytes each stores. Prints a markdown table
# and writes the "backup" section of docs/BENCHMARKS.md.
#   BENCH_SCALE   pgbench scale of the database (default 70: about 1 GB)
#   BENCH_ROUNDS  runs of each, the median is reported (default 3)
#   BENCH_DIR     working directory (default /var/tmp/walship-bench-backup)
# pgBackRest comes from scripts/install-peers.sh (Debian's package); without
# it its rows say so.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
[ -x "$pgbin/pg_ctl" ] || { echo "bench-backup: PostgreSQL not found" >&2; exit 1; }
[ -x bin/walship ] || { echo "bench-backup: build first (make build)" >&2; exit 1; }

work=${BENCH_DIR:-/var/tmp/walship-bench-backup}
scale=${BENCH_SCALE:-70}
rounds=${BENCH_ROUNDS:-3}
port=55531
secs() { awk -v n="$1" 'BEGIN {printf "%.2f", n/1e9}'; }
mib() { awk -v n="$1" 'BEGIN {printf "%.0f", n/1048576}'; }
bytes() { du -sb "$1" | cut -f1; }
BENCH_PEERS=pgbackrest bash scripts/install-peers.sh >&2
pgbackrest=$(command -v pgbackrest || true)

stop_all() { [ -f "$work/pg/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1 || true; }
trap stop_all EXIT
stop_all
bench_workdir "$work"
conn="host=$work port=$port user=postgres dbname=postgres"
sql() { as_pg psql -X -q -At -h "$work" -p "$port" -U postgres -d postgres -c "$1"; }

echo "bench-backup: primary archiving into a walship repository, pgbench scale $scale" >&2
as_pg initdb -D "$work/pg" -U postgres -A trust -N >/dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$work/bin/walship-archive --repo $work/repo %p %f'
max_wal_size = 2GB
CONF
echo "local replication all trust" >> "$work/pg/pg_hba.conf"
as_pg pg_ctl -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
as_pg pgbench -h "$work" -p "$port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
sql "CHECKPOINT" >/dev/null
sql "SELECT pg_switch_wal()" >/dev/null
dbsize=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
datadir=$(du -sm "$work/pg" | cut -f1)
echo "bench-backup: database $dbsize, data directory $datadir MB" >&2

if [ -n "$pgbackrest" ]; then
  pgbackrest_setup "$work" "$work/pg" "$port"
  as_pg "$pgbackrest" --config="$work/pgbackrest.conf" --stanza=bench stanza-create >/dev/null
fi

vs_bb_r=(); vs_br_r=(); vs_brp_r=(); bb_ns=(); null_ns=(); ws_ns=(); wc_ns=(); br_ns=(); brp_ns=(); tar_ns=(); wr_ns=()
for r in $(seq "$rounds"); do
  echo "bench-backup: round $r of $rounds" >&2
  rm -rf "$work/bb" "$work/untar" "$work/restored"
  bb_ns+=("$(timed pg_basebackup -d "$conn" -D "$work/bb" -F tar -X none -c fast)")
  bb_bytes=$(bytes "$work/bb")
  # the server's backup alone: pg_basebackup, its tar thrown away
  # (without the manifest: pg_basebackup writes one to stdout only into an
  # uncompressed tar).
  null_ns+=("$(timed pg_basebackup -d "$conn" -D - -F tar -X none -c fast --compress=server-lz4 --no-manifest)")
  before=$(bytes "$work/repo")
  wc_ns+=("$(timed "$work/bin/walship" backup create --repo "$work/repo" -d "$conn" --checkpoint fast --compress-at client)")
  wc_bytes=$(( $(bytes "$work/repo") - before ))
  # The default last: the restore below restores the newest backup.
  before=$(bytes "$work/repo")
  ws_ns+=("$(timed "$work/bin/walship" backup create --repo "$work/repo" -d "$conn" --checkpoint fast)")
  ws_bytes=$(( $(bytes "$work/repo") - before ))
  if [ -n "$pgbackrest" ]; then
    before=$(bytes "$work/pgbackrest")
    br_ns+=("$(timed "$pgbackrest" --config="$work/pgbackrest.conf" --stanza=bench --type=full backup)")
    br_bytes=$(( $(bytes "$work/pgbackrest") - before ))
    brp_ns+=("$(timed "$pgbackrest" --config="$work/pgbackrest.conf" --stanza=bench --type=full --process-max="$(nproc)" backup)")
  fi
  as_pg mkdir -p "$work/untar"
  tar_ns+=("$(timed tar -xf "$work/bb/base.tar" -C "$work/untar")")
  wr_ns+=("$(timed "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --no-sync)")
  sql "SELECT pg_switch_wal()" >/dev/null
  # The goals' ratios pair the runs of one round (the machine drifts).
  vs_bb_r+=("$(ratio "${ws_ns[-1]}" "${bb_ns[-1]}")")
  if [ -n "$pgbackrest" ]; then
    vs_br_r+=("$(ratio "${ws_ns[-1]}" "${br_ns[-1]}")"); vs_brp_r+=("$(ratio "${ws_ns[-1]}" "${brp_ns[-1]}")")
  fi
done

bb=$(median "${bb_ns[@]}"); null=$(median "${null_ns[@]}"); ws=$(median "${ws_ns[@]}"); wc=$(median "${wc_ns[@]}"); tx=$(median "${tar_ns[@]}"); wr=$(median "${wr_ns[@]}")
br_cell="not installed"; br_size="-"; vs_br="-"; br_ratio="-"; brp_cell="not installed"; brp_ratio="-"; vs_brp="-"
if [ -n "$pgbackrest" ]; then
  br=$(median "${br_ns[@]}"); brp=$(median "${brp_ns[@]}")
  br_cell="$(secs "$br") s"; br_size="$(mib "$br_bytes") MiB"; vs_br="$(median "${vs_br_r[@]}")"; br_ratio="$(ratio "$br" "$ws")"
  brp_cell="$(secs "$brp") s"; vs_brp="$(median "${vs_brp_r[@]}")"; brp_ratio="$(ratio "$brp" "$ws")"
fi

out=$(mktemp)
cat > "$out" <<EOF
## Base backups: walship backup create and restore

$(machine_line) pgbench scale $scale: database $dbsize, data directory $datadir MB;
median of $rounds runs, each tool on the same server, one after the other. walship
and pg_basebackup with \`-c fast\`, pgBackRest ${pgbackrest:+$("$pgbackrest" version | awk '{print $2}') }with
\`compress-type=lz4\` and \`start-fast\` (and its default \`process-max=1\`, or one process per core); all into local directories on
the same disk; the backups are made durable (fsync) by each tool, the restore and the
extraction are not (\`--no-sync\`).

| | time | stored | time / walship |
| --- | ---: | ---: | ---: |
| pg_basebackup -Ft to local disk (uncompressed) | $(secs "$bb") s | $(mib "$bb_bytes") MiB | $(ratio "$bb" "$ws") |
| pg_basebackup -Ft --compress=server-lz4 -D - into /dev/null (the server's backup alone, nothing stored) | $(secs "$null") s | | $(ratio "$null" "$ws") |
| **walship backup create** (the server's lz4, into the repository) | **$(secs "$ws") s** | **$(mib "$ws_bytes") MiB** | 1.00 |
| walship backup create --compress-at client (walship's lz4) | $(secs "$wc") s | $(mib "$wc_bytes") MiB | $(ratio "$wc" "$ws") |
| pgBackRest full backup (lz4) | $br_cell | $br_size | $br_ratio |
| pgBackRest full backup (lz4, process-max=$(nproc)) | $brp_cell | $br_size | $brp_ratio |
| tar -xf base.tar (pg_basebackup's, extracted) | $(secs "$tx") s | | $(ratio "$tx" "$wr") of restore |
| **walship backup restore** (fetch, check every file against the manifest, unpack) | **$(secs "$wr") s** | | 1.00 of restore |

Goals: walship backup create no slower than pg_basebackup to local disk
(walship / pg_basebackup = $(median "${vs_bb_r[@]}")), and at most half pgBackRest's
time (walship / pgBackRest = $vs_br; with one pgBackRest process per core, $vs_brp). These goal
ratios are the medians of each round's ratio (per round: ${vs_bb_r[*]} against pg_basebackup${pgbackrest:+, ${vs_br_r[*]} against pgBackRest}),
as the tools of one round run one right after the other.
walship / the server's backup alone = $(ratio "$ws" "$null"): walship runs the server's BASE_BACKUP
itself over the replication protocol. walship has the server compress the tars where it can (PostgreSQL 15 or
later, built with lz4): the server sends a tenth of the bytes, and walship decodes them only to read the
tar and checks what it stores; \`--compress-at client\` compresses in walship, as on 13 and 14. With \`-X none\` (the pg_basebackup rows') the server ends
a backup only once the archiver has archived its last segment, which it checks once a second
(pg_backup_stop's wait); walship, whose primary archives into the repository it backs up into, ends the
backup without that wait and waits for the last segment in the repository itself (elsewhere it lets the
server wait); pgBackRest stops its backups without that wait and checks its own archive
instead, which \`archive-check=n\` turns off here (the primary archives into walship's repository).
EOF
cat "$out"
update_section backup "$out"
rm -f "$out"
