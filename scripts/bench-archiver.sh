#!/usr/bin/env bash
# Archiver simulation (issue 16: look-ahead push): BenchmarkArchiver drives
# an archive_command like PostgreSQL's archiver over 200 ready 16MB
# segments: walship-archive serially and with --parallel 8, and beside it
# pgBackRest (async) and WAL-G where they can be run, to a local
# repository, to a real S3 server on loopback, and to the same server
# behind a proxy adding 20 or 50 ms to every request; locally also cp +
# sync + mv. Writes the "archiver" section of docs/BENCHMARKS.md.
# Usage: scripts/bench-archiver.sh   (BENCH_ARCHIVER_SEGMENTS, default 200;
#        BENCH_ARCHIVER_ROUNDS, default 4, figures are medians;
#        BENCH_PEERS="pgbackrest walg"; WALG_BIN=/path/to/wal-g for WAL-G;
#        BENCH_RAW=FILE writes up the saved go test output of an earlier run)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
segments=${BENCH_ARCHIVER_SEGMENTS:-200}
rounds=${BENCH_ARCHIVER_ROUNDS:-4}
raw=$(mktemp)
out=$(mktemp)
trap 'rm -f "$raw" "$out"' EXIT
if [ -n "${BENCH_RAW:-}" ]; then
  cp "$BENCH_RAW" "$raw" # the output of an earlier run, written up again
else
  bash scripts/install-peers.sh
  # Whole runs one after another, every target and tool in each, so that
  # a noisy minute falls on all of them alike, serial and parallel in turn
  # first and second; each figure is the median.
  for round in $(seq "$rounds"); do
    echo "bench-archiver: round $round of $rounds"
    BENCH_ARCHIVER_SEGMENTS=$segments BENCH_ARCHIVER_REVERSE=$(( round % 2 == 0 )) \
      go test -tags urfave_cli_no_docs -run '^$' -bench 'BenchmarkArchiver' -benchtime 1x -timeout 60m ./test/ | tee -a "$raw"
  done
fi
[ "$(grep -c '^ok' "$raw")" -ge 1 ] && ! grep -q '^FAIL' "$raw" || { echo "bench-archiver: the benchmark failed" >&2; exit 1; }
# rate NAME: the median over the rounds of benchmark NAME; empty when not run.
rate() { local v; v=$(bench_metric "$raw" "BenchmarkArchiver/$1" segments/s); [ -z "$v" ] || median $v; }
# cell RATE SERIAL: "rate (ratio)", or a dash when not run.
cell() { if [ -n "$1" ]; then echo "$(fmt2 "$1") ($(xratio "$1" "$2"))"; else echo "—"; fi; }
{
  echo
  echo "## Look-ahead push: the archiver's cadence ($segments ready segments)"
  echo
  machine_line
  echo "One archive_command process per segment, in order, .ready renamed to .done on success, exactly like the"
  echo "server's archiver; 16MB WAL-like segments (the system identifier and version of a real cluster, compressible"
  echo "but not trivially so). Segments per second (higher is better; the median of $(grep -c '^ok' "$raw") whole runs, one after another), and in brackets the ratio to serial walship-archive"
  echo "on the same target in this run. Every archive is checked to hold every segment, compressed with lz4."
  echo
  # A peer's column only when it ran somewhere (the notes say why not).
  cols=
  for p in pgbackrest walg; do grep -q "^BenchmarkArchiver/[^ ]*/$p-" "$raw" && cols="$cols $p"; done
  head="| target | walship-archive, serial | \`--parallel 8\` |"; rule="| --- | ---: | ---: |"
  for p in $cols; do
    case $p in
    pgbackrest) head="$head pgBackRest, archive-async, process-max 4 |" ;;
    walg) head="$head WAL-G, upload concurrency 8 |" ;;
    esac
    rule="$rule ---: |"
  done
  echo "$head"
  echo "$rule"
  for t in local s3 s3+20ms s3+50ms; do
    s=$(rate "$t/parallel=1")
    [ -n "$s" ] || continue
    line="| $t | $(fmt2 "$s") (1.00x) | **$(cell "$(rate "$t/parallel=8")" "$s")** |"
    for p in $cols; do line="$line $(cell "$(rate "$t/$p")" "$s") |"; done
    echo "$line"
  done
  cp=$(rate local/cpsyncmv)
  if [ -n "$cp" ]; then
    echo
    echo "The durable shell command \`cp %p /dir/%f.tmp && sync /dir/%f.tmp && mv /dir/%f.tmp /dir/%f\` (not compressed) archives"
    echo "$(fmt2 "$cp") segments per second into a local directory, $(xratio "$cp" "$(rate local/parallel=1)") serial walship-archive."
  fi
  echo
  goal() { # goal TARGET MIN: "met"/"not met" for --parallel 8 at MIN times serial
    local s p
    s=$(rate "$1/parallel=1"); p=$(rate "$1/parallel=8")
    if [ -z "$s" ] || [ -z "$p" ]; then echo "not measured"
    elif at_least "$p" "$s" "$2"; then echo "met ($(xratio "$p" "$s"))"
    else echo "not met ($(xratio "$p" "$s"))"; fi
  }
  echo "Goals (issue 16): \`--parallel 8\` at least 3x serial on s3+20ms: $(goal s3+20ms 3);"
  echo "never below serial locally (1.0x): $(goal local 1). Locally the worker compresses the next segments"
  echo "while the disk syncs the last ones."
  p0=$(rate s3/parallel=8); p20=$(rate s3+20ms/parallel=8); p50=$(rate s3+50ms/parallel=8); s20=$(rate s3+20ms/parallel=1)
  if [ -n "$p0" ] && [ -n "$p20" ] && [ -n "$p50" ] && [ -n "$s20" ]; then
    echo "With look-ahead, $(fmt2 "$p0"), $(fmt2 "$p20") and $(fmt2 "$p50") segments per second at 0, 20 and 50 ms: the round trips"
    echo "are hidden until the two cores, shared with the S3 server and the proxy, are the limit."
  fi
  echo
  echo "s3 is versitygw on loopback over plain HTTP; s3+20ms and s3+50ms put a proxy (in the benchmark's process) in"
  echo "front of it that delays every request by that long, the round trip a loopback server lacks: loopback has no"
  echo "bandwidth limit, no packet loss and no TLS for walship and WAL-G. pgBackRest speaks only HTTPS to S3: its rows use a"
  echo "second versitygw serving TLS with a self-signed certificate (repo1-storage-verify-tls=n), and an HTTPS proxy for the"
  echo "delays, so they also pay TLS. All share the two cores with the S3 server, the proxy and each other's workers:"
  echo "on two cores look-ahead hides latency, not CPU (lz4, a process start per call). pgBackRest's archive-push returns"
  echo "when its async process has stored the segment (it starts one when none runs and takes what is ready then);"
  echo "WAL-G's wal-push uploads up to 7 other ready files at once and marks them .done itself, and the simulated"
  echo "archiver, like PostgreSQL 15 and later, then skips them. WAL-G runs on S3 only here (a dash: not run)."
  echo "Durability: walship and pgBackRest fsync file and directory on a local repository; cp + sync + mv syncs the"
  echo "file only."
  peer_notes "$raw" | sed 's/^/Peers: /; s/$/./'
} > "$out"
update_section archiver "$out"
echo "bench: wrote ${BENCH_DOC:-docs/BENCHMARKS.md} (section archiver)"
