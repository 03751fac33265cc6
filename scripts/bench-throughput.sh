#!/usr/bin/env bash
# Throughput against a real server (issue 16): BenchmarkPrimaryBacklog
# runs a primary at full speed archiving with walship-archive, serially and
# with --parallel 8, with pgBackRest (async) and WAL-G where they can be
# run, and locally with cp + sync + mv, to a local directory and to a real
# S3 server (also behind 20 and 50 ms per request), and samples the ready
# backlog; BenchmarkRecovery recovers a base backup over 1 GiB of WAL with
# cp from a local directory (the reference), with walship-restore from S3
# with and without --prefetch 8, and with the peers. Writes the "backlog"
# and "recovery" sections of docs/BENCHMARKS.md.
# Usage: scripts/bench-throughput.sh   (BENCH_LOAD_SECONDS, default 30;
#        BENCH_RECOVERY_MB, default 1024; BENCH_PEERS="pgbackrest walg";
#        WALG_BIN=/path/to/wal-g for WAL-G;
#        BENCH_RAW=FILE writes up the saved go test output of an earlier run)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
load=${BENCH_LOAD_SECONDS:-30}
walmb=${BENCH_RECOVERY_MB:-1024}
raw=$(mktemp)
out=$(mktemp)
trap 'rm -f "$raw" "$out"' EXIT
if [ -n "${BENCH_RAW:-}" ]; then
  cp "$BENCH_RAW" "$raw" # the output of an earlier run, written up again
else
  bash scripts/install-peers.sh
  BENCH_LOAD_SECONDS=$load BENCH_RECOVERY_MB=$walmb \
    go test -tags urfave_cli_no_docs -run '^$' -bench 'BenchmarkPrimaryBacklog|BenchmarkRecovery' \
    -benchtime 1x -timeout 90m ./test/ | tee "$raw"
fi
grep -q '^ok' "$raw" || { echo "bench-throughput: the benchmarks failed" >&2; exit 1; }

metric() { bench_metric "$raw" "$@"; }
# keeps_up WRITTEN ARCHIVED, bounded WRITTEN GROWTH: the criteria of the table.
keeps_up() { [ -n "$1" ] && [ -n "$2" ] && awk -v w="$1" -v a="$2" 'BEGIN {exit !(a >= 0.95 * w)}'; }
bounded() { [ -n "$1" ] && [ -n "$2" ] && awk -v w="$1" -v g="$2" 'BEGIN {exit !(g <= 0.05 * w)}'; }
yn() { if "$@"; then echo yes; else echo no; fi; }
tools_label() {
  case $1 in
  parallel=1) echo "walship-archive, serial" ;;
  parallel=8) echo "walship-archive \`--parallel 8\`" ;;
  pgbackrest) echo "pgBackRest, archive-async, process-max 4" ;;
  walg) echo "WAL-G, upload concurrency 8" ;;
  cpsyncmv) echo "cp + sync + mv (durable shell command, no compression)" ;;
  esac
}

{
  echo
  echo "## Real primary: the ready backlog under a full-speed load"
  echo
  machine_line
  echo "pgbench for $load s at full speed (4 clients, synchronous_commit off, TPC-B-like transactions mixed with bulk"
  echo "inserts of 500 rows, one in four) on a primary archiving with each archive_command in turn, one run each after a sync;"
  echo "pg_wal/archive_status sampled every 250 ms. Written: the 16MB segments completed during the load; archived:"
  echo "those of them no longer .ready at its end. \"Keeps up\": archived at 95% or more of the rate written."
  echo "Growth: the slope of a least-squares line through the backlog samples; \"bounded\": growth at most 5% of the"
  echo "rate written (otherwise the backlog grows for as long as the load lasts, and pg_wal with it)."
  echo
  echo "| target | archive_command | written, seg/s | archived, seg/s | archived / written | keeps up | largest backlog | at the end | growth, seg/s | bounded | drained after |"
  echo "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: |"
  for t in local s3 s3+20ms s3+50ms; do
    for tool in cpsyncmv parallel=1 parallel=8 pgbackrest walg; do
      k="BenchmarkPrimaryBacklog/$t/$tool"
      w=$(metric "$k" wal-seg/s); a=$(metric "$k" archived-seg/s); g=$(metric "$k" ready-growth-seg/s)
      [ -n "$w" ] || continue
      label=$(tools_label "$tool"); [ "$tool" != parallel=8 ] || label="**$label**"
      echo "| $t | $label | $(fmt1 "$w") | $(fmt1 "$a") | $(xratio "$a" "$w") | $(yn keeps_up "$w" "$a") | $(fmt0 "$(metric "$k" max-ready)") | $(fmt0 "$(metric "$k" end-ready)") | $(fmt2 "$g") | $(yn bounded "$w" "$g") | $(fmt1 "$(metric "$k" drain-s)") s |"
    done
  done
  echo
  miss=
  for t in local s3 s3+20ms s3+50ms; do
    k="BenchmarkPrimaryBacklog/$t/parallel=8"
    w=$(metric "$k" wal-seg/s); a=$(metric "$k" archived-seg/s); g=$(metric "$k" ready-growth-seg/s)
    if [ -z "$w" ]; then miss="$miss $t (not measured)"
    elif ! keeps_up "$w" "$a" || ! bounded "$w" "$g"; then miss="$miss $t"; fi
  done
  echo "Goal (issue 16): with \`--parallel 8\`, keeps up and bounded in every row: $([ -z "$miss" ] && echo met || echo "not met (${miss# })")."
  echo
  echo "s3 is versitygw on loopback over plain HTTP; s3+20ms and s3+50ms put a proxy (in the benchmark's process) in"
  echo "front of it that delays every request by that long, the round trip loopback lacks (it has no bandwidth limit"
  echo "or loss either). pgBackRest speaks only HTTPS to S3: its rows use a second versitygw serving TLS with a self-signed"
  echo "certificate (repo1-storage-verify-tls=n) and an HTTPS proxy, so they also pay TLS. PostgreSQL, pgbench, the"
  echo "archivers, the S3 server and the proxy share the two cores, so a busier archiver also slows the load it"
  echo "archives: compare the rates written, not only the ratios. The rows run one after another, not at once."
  echo "WAL-G marks the files it pushed ahead .done itself, so pg_stat_archiver undercounts it: archived is counted from"
  echo "the backlog for every row. The server recorded no archive_command failure in any run (the benchmark fails otherwise)."
  peer_notes "$raw" | sed 's/^/Peers: /; s/$/./'
} > "$out"
update_section backlog "$out"

{
  cpk=BenchmarkRecovery/local/cp
  cps=$(metric "$cpk" recovery-s)
  echo
  echo "## Recovery over $(fmt0 "$(metric "$cpk" wal-MB)") MB of WAL: cp, walship from S3 with and without prefetch, and the peers"
  echo
  machine_line
  echo "A base backup recovered over $(fmt1 "$(metric "$cpk" wal-MB)") MB of pgbench WAL (the full-speed mix above) to the end of the archive, then"
  echo "promoted; seconds from pg_ctl start until the server leaves recovery, one run each after a sync, and the ratio to the same"
  echo "recovery with \`restore_command = 'cp /dir/%f %p'\` from a local directory of bare files in this run (lower is"
  echo "better). The primary archived with cp; every archive then got the same files, pushed one by one. The recovered"
  echo "accounts are checked against the primary's. Redo CPU is the startup process's own CPU time (its \"redo done\""
  echo "log line): recovery cannot be faster than that however fast WAL arrives."
  echo
  echo "| source | restore_command | seconds | vs cp | MB/s | redo CPU, s | from the spool | fetched |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
  row() { # row KEY SOURCE LABEL
    local s
    s=$(metric "BenchmarkRecovery/$1" recovery-s)
    [ -n "$s" ] || return 0
    echo "| $2 | $3 | $(fmt1 "$s") | $(xratio "$s" "$cps") | $(fmt1 "$(metric "BenchmarkRecovery/$1" MB/s)") | $(fmt1 "$(metric "BenchmarkRecovery/$1" redo-cpu-s)") | $(fmt0 "$(metric "BenchmarkRecovery/$1" from-spool)") | $(fmt0 "$(metric "BenchmarkRecovery/$1" fetched)") |"
  }
  row local/cp "local directory" "\`cp /dir/%f %p\` (bare files)"
  for t in s3 s3+20ms; do
    row "$t/prefetch=0" "$t" "walship-restore"
    row "$t/prefetch=8" "$t" "**walship-restore \`--prefetch 8\`**"
  done
  for t in local s3 s3+20ms; do
    src=$t; [ "$t" != local ] || src="local directory"
    row "$t/pgbackrest" "$src" "pgBackRest archive-get, archive-async, process-max 4"
    row "$t/walg" "$src" "WAL-G wal-fetch, download concurrency 8"
  done
  echo
  p=$(metric BenchmarkRecovery/s3+20ms/prefetch=8 recovery-s)
  if [ -z "$p" ] || [ -z "$cps" ]; then goal="not measured"
  elif at_least "$cps" "$p" 0.8; then goal="met ($(xratio "$p" "$cps"))"
  else goal="not met ($(xratio "$p" "$cps"))"; fi
  echo "Goal (issue 16): from s3+20ms with \`--prefetch 8\` within 1.25x of cp: $goal."
  gain() { xratio "$(metric "BenchmarkRecovery/$1/prefetch=0" recovery-s)" "$(metric "BenchmarkRecovery/$1/prefetch=8" recovery-s)"; }
  echo "Prefetch made walship's recovery $(dash "$(gain s3)") as fast on s3 and $(dash "$(gain s3+20ms)") on s3+20ms."
  echo
  echo "From the spool and fetched count walship-restore's own log lines (-v); the peers log no such lines, and are"
  echo "only checked to have prefetched (pgBackRest's archive-get queue in its spool, WAL-G's .wal-g/prefetch directory)."
  echo "s3 is versitygw on loopback; s3+20ms puts a proxy in front of it that delays every request by 20 ms (pgBackRest:"
  echo "HTTPS to a second versitygw with a self-signed certificate, through an HTTPS proxy). Recovery, the restore"
  echo "commands, their prefetching workers and the S3 server share the two cores: prefetch moves the fetching beside"
  echo "the replay but cannot remove its CPU (a process start, a GET, lz4 and a 16MB write per segment), and cp"
  echo "has none of it. The more a request costs in latency rather than CPU, the more prefetch gains."
  peer_notes "$raw" | sed 's/^/Peers: /; s/$/./'
} > "$out"
update_section recovery "$out"
echo "bench: wrote ${BENCH_DOC:-docs/BENCHMARKS.md} (sections backlog, recovery)"
