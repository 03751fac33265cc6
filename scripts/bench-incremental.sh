#!/usr/bin/env bash
# Incremental backups: walship backup create --incremental on PostgreSQL 17
# (a server of the version matrix, scripts/install-pg-versions.sh) against
# its full backup, after 1% of pgbench's accounts are updated; walship
# backup restore of a full backup against tar -xf of the same tar
# uncompressed (with and without sync), and of a full backup and three
# incrementals against a full backup of the same data; the resident memory
# of each restore. pgBackRest's incremental and differential backups in the
# same table as a reference, on Debian's PostgreSQL 15 (pgBackRest 2.45
# knows no newer server). Writes the "incremental" section of
# docs/BENCHMARKS.md.
#   BENCH_SCALE     pgbench scale (default 100: about 1.5 GB)
#   BENCH_ROUNDS    runs of each restore, the median is reported (default 3)
#   BENCH_PG_MAJOR  the server of the matrix to run on (default 17)
#   BENCH_DIR       working directory (default /var/tmp/walship-bench-incr)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
[ -x bin/walship ] || { echo "bench-incremental: build first (make build)" >&2; exit 1; }
major=${BENCH_PG_MAJOR:-17}
srv=${WALSHIP_PG_CACHE:-/var/cache/walship/pg}/$major/bin
[ -x "$srv/postgres" ] || { echo "bench-incremental: no PostgreSQL $major in $srv (make pg-versions)" >&2; exit 1; }
work=${BENCH_DIR:-/var/tmp/walship-bench-incr}
scale=${BENCH_SCALE:-100}
rounds=${BENCH_ROUNDS:-3}
port=55541
port15=55542
secs() { awk -v n="$1" 'BEGIN {printf "%.2f", n/1e9}'; }
mib() { awk -v n="$1" 'BEGIN {printf "%.1f", n/1048576}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f%%", 100*a/b}'; }
bytes() { du -sb "$1" | cut -f1; }
BENCH_PEERS=pgbackrest bash scripts/install-peers.sh >&2
pgbackrest=$(command -v pgbackrest || true)

stop_all() {
  [ -f "$work/pg/postmaster.pid" ] && as_pg "$srv/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1 || true
  [ -f "$work/pg15/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$work/pg15" -m immediate -w stop >/dev/null 2>&1 || true
}
trap 'stop_s3; stop_all' EXIT
stop_all
bench_workdir "$work"
conn="host=$work port=$port user=postgres dbname=postgres"
sql() { as_pg psql -X -q -At -h "$work" -p "${2:-$port}" -U postgres -d postgres -c "$1"; }
# rss: the peak resident memory (kB) of the last command run by timed_rss.
timed_rss() { timed /usr/bin/time -f %M -o "$work/rss" "$@"; }
rss() { tail -n1 "$work/rss"; }
rows=$((scale * 1000)) # 1% of the accounts
# update K: the K-th 1% of the accounts, as a batch job over a range does.
update() { sql "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid > $(( ($1 - 1) * rows )) AND aid <= $(( $1 * rows ))" "${2:-$port}" >/dev/null; }
create_in() { # create_in REPO FLAGS...: the backup's ID (stdout's summary) into $work/last
  local into=$1; shift
  as_pg "$work/bin/walship" backup create --repo "$into" -d "$conn" --checkpoint fast "$@" 2>"$work/last.err" > "$work/last" ||
    { echo "bench-incremental: backup create into $into failed: $(cat "$work/last.err")" >&2; exit 1; }
  sed -n 's/^backup \([0-9TZ]*\) .*/\1/p' "$work/last"
}
create() { create_in "$work/repo" "$@"; }
stored() { bytes "$work/repo/backups/$1"; }

echo "bench-incremental: PostgreSQL $major primary archiving into a walship repository, pgbench scale $scale" >&2
as_pg "$srv/initdb" -D "$work/pg" -U postgres -A trust -N >/dev/null
cat >> "$work/pg/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$work'
wal_level = replica
summarize_wal = on
archive_mode = on
archive_command = '$work/bin/walship-archive --repo $work/repo %p %f'
max_wal_size = 4GB
CONF
echo "local replication all trust" >> "$work/pg/pg_hba.conf"
as_pg "$srv/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start >/dev/null
as_pg pgbench -h "$work" -p "$port" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
sql "CHECKPOINT" >/dev/null
sql "SELECT pg_switch_wal()" >/dev/null
dbsize=$(sql "SELECT pg_size_pretty(pg_database_size('postgres'))")
version=$(sql "SHOW server_version")

t0=$(now_ns); full=$(create); full_ns=$(( $(now_ns) - t0 )); full_b=$(stored "$full")
inc_ns=(); inc_b=(); incs=()
for k in 1 2 3; do
  update "$k"
  t0=$(now_ns); id=$(create --incremental); inc_ns+=($(( $(now_ns) - t0 ))); inc_b+=("$(stored "$id")"); incs+=("$id")
  grep -q "incremental on" "$work/last" || { echo "bench-incremental: $id is not incremental: $(cat "$work/last")" >&2; exit 1; }
done
t0=$(now_ns); full2=$(create); full2_ns=$(( $(now_ns) - t0 ))
inc_ratio=(); inct_ratio=()
for i in 0 1 2; do inc_ratio+=("$(ratio "${inc_b[$i]}" "$full_b")"); inct_ratio+=("$(ratio "${inc_ns[$i]}" "$full_ns")"); done
# One percent spread over the whole table: every hundredth account.
sql "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0" >/dev/null
t0=$(now_ns); spread=$(create --incremental); spread_ns=$(( $(now_ns) - t0 )); spread_b=$(stored "$spread")
echo "bench-incremental: backups taken: full $full, incrementals ${incs[*]}, full $full2" >&2

# The same tar uncompressed, as pg_basebackup -Ft writes it.
as_pg sh -c "lz4 -d -c '$work/repo/backups/$full2/base.tar.lz4' > '$work/base.tar'"
tar_ns=(); tars_ns=(); wn_ns=(); ws_ns=(); cn_ns=(); cs_ns=(); sp_ns=(); rss_full=(); rss_chain=(); rss_spread=()
# One run of each; every run after the same step before it (the removal
# of what the last one wrote, then a sync): the runs that make a ratio
# take turns going first, round by round.
run_tar() { as_pg mkdir -p "$work/untar"; tar_ns+=("$(timed tar -xf "$work/base.tar" -C "$work/untar")"); rm -rf "$work/untar"; }
run_tars() { as_pg mkdir -p "$work/untar"; tars_ns+=("$(timed sh -c "tar -xf '$work/base.tar' -C '$work/untar' && sync")"); rm -rf "$work/untar"; }
run_wn() { wn_ns+=("$(timed_rss "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --backup "$full2" --no-sync)"); rss_full+=("$(rss)"); rm -rf "$work/restored"; }
run_ws() { ws_ns+=("$(timed_rss "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --backup "$full2")"); rss_full+=("$(rss)"); rm -rf "$work/restored"; }
run_cn() { cn_ns+=("$(timed_rss "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --backup "${incs[2]}" --no-sync)"); rss_chain+=("$(rss)"); rm -rf "$work/restored"; }
run_cs() { cs_ns+=("$(timed_rss "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --backup "${incs[2]}")"); rss_chain+=("$(rss)"); rm -rf "$work/restored"; }
# The chain whose newest member changed most of pgbench_accounts (the
# spread update): the most blocks a chain restore rebuilds here.
run_sp() { sp_ns+=("$(timed_rss "$work/bin/walship" backup restore --repo "$work/repo" -D "$work/restored" --backup "$spread" --no-sync)"); rss_spread+=("$(rss)"); rm -rf "$work/restored"; }
for r in $(seq "$rounds"); do
  echo "bench-incremental: restores, round $r of $rounds" >&2
  for d in untar restored; do rm -rf "${work:?}/$d"; done
  if [ $((r % 2)) = 1 ]; then
    run_tar; run_wn; run_cn; run_tars; run_ws; run_cs; run_sp
  else
    run_sp; run_cn; run_wn; run_tar; run_cs; run_ws; run_tars
  fi
done
tx=$(median "${tar_ns[@]}"); txs=$(median "${tars_ns[@]}"); wn=$(median "${wn_ns[@]}"); wsy=$(median "${ws_ns[@]}")
cn=$(median "${cn_ns[@]}"); csy=$(median "${cs_ns[@]}")
maxrss() { printf '%s\n' "$@" | sort -n | tail -n1; }

# From S3 (the S3 test server on the loopback): the same primary's
# backups into a repository there, a full one and three incrementals each
# after another 1% update, then a full one of the same data; the chain
# restored against that full backup, taking turns. A restore reads the
# next member's objects while it unpacks one.
echo "bench-incremental: the same from S3" >&2
s3dir=$work/s3
start_s3 "$s3dir" bench-incremental
s3_env
s3repo=s3://bench/incr
create_s3() { create_in "$s3repo" "$@"; } # the credentials from s3_env's environment
# The primary archives into the repository on S3 from now on (a backup
# goes only where the cluster's WAL is), the credentials on the command.
sql "ALTER SYSTEM SET archive_command = 'env AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true WALSHIP_S3_ENDPOINT=$endpoint WALSHIP_S3_REGION=us-east-1 WALSHIP_S3_PATH_STYLE=true $work/bin/walship-archive --repo $s3repo %p %f'" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
sql "CREATE TABLE s3_start ()" >/dev/null
sql "SELECT pg_switch_wal()" >/dev/null
s3full=$(create_s3)
s3incs=()
for k in 4 5 6; do update "$k"; s3incs+=("$(create_s3 --incremental)"); done
s3full2=$(create_s3)
s3f_ns=(); s3c_ns=()
run_s3f() { s3f_ns+=("$(timed "$work/bin/walship" backup restore --repo "$s3repo" -D "$work/restored" --backup "$s3full2" --no-sync)"); rm -rf "$work/restored"; }
run_s3c() { s3c_ns+=("$(timed "$work/bin/walship" backup restore --repo "$s3repo" -D "$work/restored" --backup "${s3incs[2]}" --no-sync)"); rm -rf "$work/restored"; }
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run_s3f; run_s3c; else run_s3c; run_s3f; fi
done
s3f=$(median "${s3f_ns[@]}"); s3c=$(median "${s3c_ns[@]}")
stop_s3
stop_all

# pgBackRest on 15, the same data and the same updates.
br_rows=""
if [ -n "$pgbackrest" ]; then
  echo "bench-incremental: pgBackRest on PostgreSQL 15, pgbench scale $scale" >&2
  as_pg "$pgbin/initdb" -D "$work/pg15" -U postgres -A trust -N >/dev/null
  cat >> "$work/pg15/postgresql.conf" <<CONF
port = $port15
listen_addresses = ''
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$work/bin/walship-archive --repo $work/repo15 %p %f'
max_wal_size = 4GB
CONF
  as_pg "$pgbin/pg_ctl" -D "$work/pg15" -l "$work/pg15.log" -w start >/dev/null
  as_pg pgbench -h "$work" -p "$port15" -U postgres -i -s "$scale" -q postgres >/dev/null 2>&1
  pgbackrest_setup "$work" "$work/pg15" "$port15"
  br=("$pgbackrest" --config="$work/pgbackrest.conf" --stanza=bench)
  as_pg "${br[@]}" stanza-create >/dev/null
  before=$(bytes "$work/pgbackrest"); brf_ns=$(timed "${br[@]}" --type=full backup); brf_b=$(( $(bytes "$work/pgbackrest") - before ))
  update 1 "$port15"
  before=$(bytes "$work/pgbackrest"); bri_ns=$(timed "${br[@]}" --type=incr backup); bri_b=$(( $(bytes "$work/pgbackrest") - before ))
  update 2 "$port15"
  before=$(bytes "$work/pgbackrest"); brd_ns=$(timed "${br[@]}" --type=diff backup); brd_b=$(( $(bytes "$work/pgbackrest") - before ))
  brr_ns=$(timed "${br[@]}" --pg1-path="$work/br-restored" restore); rm -rf "$work/br-restored"
  br_rows="| pgBackRest $("$pgbackrest" version | awk '{print $2}') full backup (lz4), PostgreSQL $(sql "SHOW server_version" "$port15" | awk '{print $1}') | $(secs "$brf_ns") s | $(mib "$brf_b") MiB | 100% |
| pgBackRest incremental (after 1% updated) | $(secs "$bri_ns") s | $(mib "$bri_b") MiB | $(pct "$bri_b" "$brf_b") |
| pgBackRest differential (after 2% updated since the full) | $(secs "$brd_ns") s | $(mib "$brd_b") MiB | $(pct "$brd_b" "$brf_b") |
| pgBackRest restore of the differential (full + diff, into an empty directory) | $(secs "$brr_ns") s | | |"
  stop_all
else
  br_rows="| pgBackRest | not installed (scripts/install-peers.sh) | | |"
fi

out=$(mktemp)
cat > "$out" <<EOF
## Incremental backups: walship backup create --incremental and restore of a chain

$(machine_line) PostgreSQL $version (the version matrix's), pgbench scale $scale: database $dbsize.
All into local directories on the same disk, the server compressing nothing (built without lz4: walship
compresses with lz4). Backups with \`--checkpoint fast\`; restores the median of $rounds runs, each after a \`sync\`, the runs compared taking turns to go first.

| backup | time | stored | of the full backup's stored bytes |
| --- | ---: | ---: | ---: |
| walship full backup | $(secs "$full_ns") s | $(mib "$full_b") MiB | 100% |
| walship incremental after 1% of the accounts updated (a range, as a batch job does; median of 3) | $(secs "$(median "${inc_ns[@]}")") s | $(mib "$(median "${inc_b[@]}")") MiB | $(pct "$(median "${inc_b[@]}")" "$full_b") |
| walship incremental after 1% updated spread over the table (every 100th account) | $(secs "$spread_ns") s | $(mib "$spread_b") MiB | $(pct "$spread_b" "$full_b") |
| walship full backup of the same data as the third incremental | $(secs "$full2_ns") s | $(mib "$(stored "$full2")") MiB | |
$br_rows

| restore | time | peak memory | ratio |
| --- | ---: | ---: | ---: |
| tar -xf of the full backup's tar, uncompressed | $(secs "$tx") s | | |
| tar -xf, then sync | $(secs "$txs") s | | |
| **walship backup restore** of the full backup, \`--no-sync\` | **$(secs "$wn") s** | $(maxrss "${rss_full[@]}") kB | $(ratio "$wn" "$tx") of tar |
| **walship backup restore** of the full backup (durable) | **$(secs "$wsy") s** | | $(ratio "$wsy" "$txs") of tar + sync |
| walship backup restore of the full backup and 3 incrementals, \`--no-sync\` | $(secs "$cn") s | $(maxrss "${rss_chain[@]}") kB | $(ratio "$cn" "$wn") of the full's |
| walship backup restore of the full backup and 3 incrementals (durable) | $(secs "$csy") s | | $(ratio "$csy" "$wsy") of the full's |
| from S3: walship backup restore of a full backup, \`--no-sync\` | $(secs "$s3f") s | | |
| from S3: walship backup restore of a full backup and 3 incrementals of the same data, \`--no-sync\` | $(secs "$s3c") s | | $(ratio "$s3c" "$s3f") of the full's |
| walship backup restore of the full backup and 4 incrementals, the newest $(pct "$spread_b" "$full_b") of the full (the spread update), \`--no-sync\` | $(secs "$(median "${sp_ns[@]}")") s | $(maxrss "${rss_spread[@]}") kB | $(ratio "$(median "${sp_ns[@]}")" "$wn") of the full's |

Goals (each measured here): an incremental stores at most 3% of the full backup's bytes
($(median "${inc_ratio[@]}"); per incremental: ${inc_ratio[*]}) and takes at most 0.3x its time
($(median "${inct_ratio[@]}"); ${inct_ratio[*]}); restoring a full backup takes at most 1.1x tar -xf and sync
($(ratio "$wsy" "$txs"); without sync $(ratio "$wn" "$tx")); the chain at most 1.3x the full backup
($(ratio "$cn" "$wn") without sync, $(ratio "$csy" "$wsy") durable; from S3 $(ratio "$s3c" "$s3f")); restore's peak resident memory under 128 MB
($(maxrss "${rss_full[@]}" "${rss_chain[@]}" "${rss_spread[@]}") kB at most). A chain is rebuilt oldest member first, each
file written by the member that holds it whole and then by each newer member's blocks, so what a restore holds
does not grow with the size of the changes. An incremental holds every file that is not a relation
file whole (the catalog's, pg_xact, the free-space maps) and, for the relations, the blocks changed since its parent;
the server reads only those. pgBackRest 2.45 has no block incremental: its incremental and differential
backups copy every changed file whole, here both segments of pgbench_accounts.
EOF
cat "$out"
update_section incremental "$out"
rm -f "$out"
