#!/usr/bin/env bash
# Apply lag of an archive-only warm standby: walship-restore --standby
# (waits for the segment) against the plain walship-restore with
# PostgreSQL's own retry. Needs PostgreSQL; takes about 5 minutes with the
# default 50 switches (WALSHIP_BENCH_SWITCHES=N for another count).
# Progress goes to stderr, the markdown table to stdout.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
table=$(mktemp)
trap 'rm -f "$table"' EXIT
WALSHIP_BENCH_TABLE="$table" go test -count=1 -run '^$' -bench '^BenchmarkStandbyApplyLag$' \
  -benchtime 1x -timeout 30m ./test/ >&2
cat "$table"
out=$(mktemp)
{ echo; echo "## Warm standby: apply lag after pg_switch_wal()"; echo; machine_line; echo; cat "$table"; } > "$out"
update_section standby "$out"
rm -f "$out"
