#!/usr/bin/env bash
# walship receive as the synchronous standby, side by side in one run
# (BenchmarkReceive): pgbench -c 4 tps with no synchronous standby, a
# streaming physical standby, and walship receive --synchronous on a local
# repository, on S3 (versitygw on the loopback) and on S3 with 20 ms added
# to every request; the commit latency of single-row INSERTs against the
# store's round trip. Then the RPO: TestReceiveSynchronousKills with
# BENCH_RECEIVE_KILLS kills (default 20) of the primary on both backends,
# counting acknowledged commits lost. Needs PostgreSQL and the S3 test
# server; about 15 minutes. WALSHIP_BENCH_SECONDS sets each pgbench run
# (default 20). Progress goes to stderr, the section to docs/BENCHMARKS.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
table=$(mktemp)
kills=$(mktemp)
trap 'rm -f "$table" "$kills"' EXIT
WALSHIP_BENCH_TABLE="$table" go test -count=1 -run '^$' -bench '^BenchmarkReceive$' \
  -benchtime 1x -timeout 30m ./test/ >&2
WALSHIP_RECEIVE_KILLS=${BENCH_RECEIVE_KILLS:-20} go test -count=1 -v -run '^TestReceiveSynchronousKills$' \
  -timeout 60m ./test/ > "$kills" 2>&1 || { cat "$kills" >&2; echo "bench-receive: the kill test failed" >&2; }
out=$(mktemp)
{
  echo
  echo "## walship receive: the synchronous standby in the repository"
  echo
  machine_line
  echo
  cat "$table"
  echo
  echo "RPO, primary killed with SIGKILL at random moments while 1 client commits rows one by one (TestReceiveSynchronousKills; each kill: the data directory deleted, the newest base backup restored to the latest, which becomes the next primary):"
  echo
  grep -o 'RPO .*' "$kills" | sed -e 's/^RPO TestReceiveSynchronousKills\//- /' -e 's/:/ repository:/' || echo "- (no result: see the test's output)"
} > "$out"
cat "$out" >&2
update_section receive "$out"
rm -f "$out"
