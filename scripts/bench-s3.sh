#!/usr/bin/env bash
# S3 (issue 3): whole-process time per WAL segment, one process per file the
# way PostgreSQL calls archive_command and restore_command, pushing to and
# fetching from a real S3 server on loopback (versitygw, started here on a
# free port with a scratch directory and stopped at the end), next to
# walship's local backend and cp, on the real WAL corpus of bench.sh
# ($BENCH_DIR/corpus, made with pgbench the same way when missing). With the
# AWS CLI installed, `aws s3 cp` is timed too. Writes the "s3" section of
# docs/BENCHMARKS.md.
# Usage: scripts/bench-s3.sh   (BENCH_DIR, BENCH_ROUNDS, WALSHIP_S3_SERVER, BENCH_AWSCLI=0)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh

work=${BENCH_DIR:-/var/tmp/walship-bench}
rounds=${BENCH_ROUNDS:-5}

corpus_segments() { ls "$work/corpus" 2>/dev/null | grep -E '^[0-9A-F]{24}$' | head -n 40 || true; }

# The corpus: bench.sh's, or made the same way.
if [ "$(corpus_segments | wc -l)" -lt 2 ]; then
  [ -x "$pgbin/pg_ctl" ] || { echo "bench-s3: no WAL corpus in $work/corpus and no PostgreSQL to make one" >&2; exit 1; }
  echo "bench-s3: generating a WAL corpus with pgbench"
  make_corpus "$work" 55498
fi
segs=$(corpus_segments)
n=$(echo "$segs" | wc -l)

# Scratch space, fresh binaries, and the S3 server.
sdir=$work/s3
rm -rf "$sdir"; mkdir -p "$sdir/data" "$sdir/bin"
[ -x bin/walship-archive ] || { echo "bench-s3: build first (make build)" >&2; exit 1; }
cp bin/walship-archive bin/walship-restore "$sdir/bin/"
trap 'stop_s3; rm -rf "$sdir"' EXIT
start_s3 "$sdir" bench-s3
s3_env

awscli=
if [ "${BENCH_AWSCLI:-1}" != 0 ] && command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
  awscli=$(aws --version 2>&1 | awk '{print $1}')
  # Some versions send uploads this server does not take: leave them out.
  echo probe > "$sdir/probe"
  aws s3 cp --quiet --endpoint-url "$endpoint" "$sdir/probe" s3://bench/probe >/dev/null 2>&1 || {
    echo "bench-s3: $awscli cannot upload to the S3 server; leaving it out" >&2; awscli=; }
fi
echo "bench-s3: $n segments of real WAL; $rounds rounds per method; S3 server on $endpoint${awscli:+; $awscli}"

# run_method KEY SETUP CMD: median over the rounds of the time per segment
# to run CMD once per segment ($s) after SETUP (which may use the round $r).
# Also the S3 requests per call, from the server's access log.
declare -A res req
run_method() {
  local key=$1 setup=$2 cmd=$3 r t0 t1 all=() l0 l1
  l0=$(wc -l < "$sdir/access.log")
  for r in $(seq "$rounds"); do
    rm -rf "$T"; mkdir -p "$T/pg_wal"; eval "$setup"
    sync; t0=$(now_ns)
    for s in $segs; do eval "$cmd" || { echo "bench-s3: $key failed on $s" >&2; exit 1; }; done
    t1=$(now_ns)
    all+=($(( (t1 - t0) / n )))
  done
  l1=$(wc -l < "$sdir/access.log")
  res[$key]=$(median "${all[@]}")
  req[$key]=$(awk -v a="$l1" -v b="$l0" -v c=$((rounds * n)) 'BEGIN {printf "%.1f", (a-b)/c}')
  echo "  $key: $(ms "${res[$key]}") ms per segment, ${req[$key]} S3 requests per call"
}
# drop_prefix P: remove what the rounds stored under s3://bench/P* (the
# server keeps objects as files under its data directory).
drop_prefix() { rm -rf "$sdir/data/bench/$1"*; }

C=$work/corpus; W=$sdir/bin; T=$sdir/t; S=$sdir/src
echo "archive_command (one process per segment):"
run_method a_cp ':' 'cp "$C/$s" "$T/$s"'
run_method a_cpsync ':' 'cp "$C/$s" "$T/$s.tmp" && sync "$T/$s.tmp" && mv "$T/$s.tmp" "$T/$s"'
run_method a_local ':' '"$W/walship-archive" --repo "$T/repo" "$C/$s" "$s"'
run_method a_s3 ':' '"$W/walship-archive" --repo "s3://bench/a-lz4-$r" "$C/$s" "$s"'
drop_prefix a-lz4-
run_method a_s3none ':' '"$W/walship-archive" --repo "s3://bench/a-none-$r" --compress none "$C/$s" "$s"'
drop_prefix a-none-
if [ -n "$awscli" ]; then
  run_method a_aws ':' 'aws s3 cp --quiet --endpoint-url "$endpoint" "$C/$s" "s3://bench/a-aws-$r/$s"'
  drop_prefix a-aws-
fi

# Restore sources: a local walship repository, walship repositories on S3
# (lz4 and uncompressed), and bare objects as aws s3 cp stores them.
mkdir -p "$S"
for s in $segs; do
  "$W/walship-archive" --repo "$S/lz4" "$C/$s" "$s"
  "$W/walship-archive" --repo s3://bench/src-lz4 "$C/$s" "$s"
  "$W/walship-archive" --repo s3://bench/src-none --compress none "$C/$s" "$s"
  [ -z "$awscli" ] || aws s3 cp --quiet --endpoint-url "$endpoint" "$C/$s" "s3://bench/src-aws/$s"
done
stored=$(du -sb "$sdir/data/bench/src-lz4/wal" | cut -f1)
raw=$(( n * $(stat -c %s "$C/$(echo "$segs" | head -n1)") ))
echo "restore_command (one process per segment, into pg_wal/RECOVERYXLOG):"
run_method r_cp ':' 'cp "$C/$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_local ':' '"$W/walship-restore" --repo "$S/lz4" "$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_s3 ':' '"$W/walship-restore" --repo s3://bench/src-lz4 "$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_s3none ':' '"$W/walship-restore" --repo s3://bench/src-none "$s" "$T/pg_wal/RECOVERYXLOG"'
[ -z "$awscli" ] || run_method r_aws ':' 'aws s3 cp --quiet --endpoint-url "$endpoint" "s3://bench/src-aws/$s" "$T/pg_wal/RECOVERYXLOG"'
# The answer "not in the archive" (exit 1), which the server asks for at
# every recovery: the next timeline's history file.
echo "restore_command for a file that is not archived (00000002.history):"
run_method m_local ':' '"$W/walship-restore" --repo "$S/lz4" 00000002.history "$T/pg_wal/RECOVERYHISTORY"; [ $? = 1 ]'
run_method m_s3 ':' '"$W/walship-restore" --repo s3://bench/src-lz4 00000002.history "$T/pg_wal/RECOVERYHISTORY"; [ $? = 1 ]'

out=$(mktemp)
{
  echo
  echo "## S3: archive and restore, one process per segment (S3 server on loopback)"
  echo
  machine_line
  echo "S3 server: versitygw $(go version -m "$s3bin" 2>/dev/null | awk '$1 == "mod" {print $3}') (posix backend) on 127.0.0.1, plain HTTP, on the same cores."
  echo "Corpus: $n real 16MB segments from pgbench; median of $rounds rounds; lz4 stores them in $(awk -v a="$stored" -v b="$raw" 'BEGIN {printf "%.1f%%", 100*a/b}') of their size."
  echo "Requests: S3 requests per call, counted in the server's access log. A ratio below 1 means faster than the reference."
  echo
  echo "| archive_command | ms per segment | requests | vs cp + sync + mv | vs walship local |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| \`cp %p /archive/%f\` (not durable, not atomic) | $(ms ${res[a_cp]}) | | $(ratio ${res[a_cp]} ${res[a_cpsync]}) | $(ratio ${res[a_cp]} ${res[a_local]}) |"
  echo "| \`cp\` + \`sync\` + \`mv\` (durable, atomic) | $(ms ${res[a_cpsync]}) | | 1.00 | $(ratio ${res[a_cpsync]} ${res[a_local]}) |"
  echo "| \`walship-archive\`, local repository (lz4) | $(ms ${res[a_local]}) | | $(ratio ${res[a_local]} ${res[a_cpsync]}) | 1.00 |"
  echo "| \`walship-archive\`, \`s3://bucket/prefix\` (lz4) | $(ms ${res[a_s3]}) | ${req[a_s3]} | $(ratio ${res[a_s3]} ${res[a_cpsync]}) | **$(ratio ${res[a_s3]} ${res[a_local]})** |"
  echo "| \`walship-archive --compress none\`, S3 | $(ms ${res[a_s3none]}) | ${req[a_s3none]} | $(ratio ${res[a_s3none]} ${res[a_cpsync]}) | $(ratio ${res[a_s3none]} ${res[a_local]}) |"
  [ -z "$awscli" ] || echo "| \`aws s3 cp %p s3://bucket/prefix/%f\` ($awscli) | $(ms ${res[a_aws]}) | ${req[a_aws]} | $(ratio ${res[a_aws]} ${res[a_cpsync]}) | $(ratio ${res[a_aws]} ${res[a_local]}) |"
  echo
  echo "| restore_command | ms per segment | requests | vs cp | vs walship local |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| \`cp /archive/%f %p\` | $(ms ${res[r_cp]}) | | 1.00 | $(ratio ${res[r_cp]} ${res[r_local]}) |"
  echo "| \`walship-restore\`, local repository (lz4) | $(ms ${res[r_local]}) | | $(ratio ${res[r_local]} ${res[r_cp]}) | 1.00 |"
  echo "| \`walship-restore\`, S3 (lz4) | $(ms ${res[r_s3]}) | ${req[r_s3]} | $(ratio ${res[r_s3]} ${res[r_cp]}) | **$(ratio ${res[r_s3]} ${res[r_local]})** |"
  echo "| \`walship-restore\`, S3 (\`--compress none\`) | $(ms ${res[r_s3none]}) | ${req[r_s3none]} | $(ratio ${res[r_s3none]} ${res[r_cp]}) | $(ratio ${res[r_s3none]} ${res[r_local]}) |"
  [ -z "$awscli" ] || echo "| \`aws s3 cp s3://bucket/prefix/%f %p\` ($awscli) | $(ms ${res[r_aws]}) | ${req[r_aws]} | $(ratio ${res[r_aws]} ${res[r_cp]}) | $(ratio ${res[r_aws]} ${res[r_local]}) |"
  echo "| \`walship-restore\` of a file not archived, local | $(ms ${res[m_local]}) | | | $(ratio ${res[m_local]} ${res[m_local]}) |"
  echo "| \`walship-restore\` of a file not archived, S3 | $(ms ${res[m_s3]}) | ${req[m_s3]} | | $(ratio ${res[m_s3]} ${res[m_local]}) |"
  echo
  echo "Loopback has no network: against a real region each request adds a round trip (tens of ms), so add"
  echo "requests x round trip per segment. walship-archive makes 3 per segment: GET of the identity file, HEAD of"
  echo "the name under the other codec (a file must not be stored twice), conditional PUT; the first call of a"
  echo "repository also writes the identity file. walship-restore makes 2: the identity file, then GET of the"
  echo "object (one more, a 404, for the lz4 name when it was stored uncompressed). The server's CPU shares the cores."
} > "$out"
update_section s3 "$out"
rm -f "$out"
echo "bench-s3: wrote ${BENCH_DOC:-docs/BENCHMARKS.md} (section s3)"
