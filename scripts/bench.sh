#!/usr/bin/env bash
# make bench: whole-process time per WAL segment, the way PostgreSQL calls
# archive_command and restore_command (one process per file), for walship
# and for the cp-based commands DBAs use, side by side in one run, on a real
# WAL corpus generated with pgbench. Writes docs/BENCHMARKS.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
. scripts/bench-lib.sh
[ -x "$pgbin/pg_ctl" ] || { echo "bench: PostgreSQL not found" >&2; exit 1; }

work=${BENCH_DIR:-/var/tmp/walship-bench}
rounds=${BENCH_ROUNDS:-5}
rm -rf "$work"; mkdir -p "$work/corpus" "$work/bin"
cp bin/walship bin/walship-* "$work/bin/"; chmod -R a+rX "$work"
[ "$(id -u)" = 0 ] && chown -R "$pguser" "$work"

echo "bench: generating a WAL corpus with pgbench"
make_corpus "$work" 55499
segs=$(cd "$work/corpus" && ls | grep -E '^[0-9A-F]{24}$' | head -n 40)
n=$(echo "$segs" | wc -l)
echo "bench: $n segments of real WAL; $rounds rounds per method"

# time_archive NAME CMD...: total ns to run CMD once per segment into a fresh
# target; CMD gets the segment path and name as $1 $2 and the target as $T.
declare -A res
run_method() {
  local key=$1 setup=$2 cmd=$3 r t0 t1 all=()
  for r in $(seq "$rounds"); do
    rm -rf "$work/t"; mkdir -p "$work/t"; eval "$setup"
    sync; t0=$(now_ns)
    for s in $segs; do eval "$cmd" || { echo "bench: $key failed on $s" >&2; exit 1; }; done
    t1=$(now_ns)
    all+=($(( (t1 - t0) / n )))
  done
  res[$key]=$(median "${all[@]}")
  echo "  $key: $(ms "${res[$key]}") ms per segment"
}

C=$work/corpus; W=$work/bin; T=$work/t
echo "archive_command (one process per segment):"
run_method a_cp ':' 'cp "$C/$s" "$T/$s"'
run_method a_cpsync ':' 'cp "$C/$s" "$T/$s.tmp" && sync "$T/$s.tmp" && mv "$T/$s.tmp" "$T/$s"'
run_method a_ws ':' '"$W/walship-archive" --repo "$T/repo" "$C/$s" "$s"'
run_method a_wsnone ':' '"$W/walship-archive" --repo "$T/repo" --compress none "$C/$s" "$s"'
# Encryption at rest: the archiver holds the public key only.
rm -f "$work/key.txt"; rcpt=$("$W/walship" keygen "$work/key.txt")
run_method a_wsenc ':' '"$W/walship-archive" --repo "$T/repo" --recipient "$rcpt" "$C/$s" "$s"'

# Restore sources: a walship repo (lz4 and plain) and a cp archive.
rm -rf "$work/src"; mkdir -p "$work/src"
for s in $segs; do
  "$W/walship-archive" --repo "$work/src/lz4" "$C/$s" "$s"
  "$W/walship-archive" --repo "$work/src/none" --compress none "$C/$s" "$s"
  "$W/walship-archive" --repo "$work/src/enc" --recipient "$rcpt" "$C/$s" "$s"
done
stored=$(du -sb "$work/src/lz4/wal" | cut -f1)
raw=$(( n * $(stat -c %s "$C/$(echo "$segs" | head -n1)") ))
echo "restore_command (one process per segment, into pg_wal/RECOVERYXLOG):"
run_method r_cp 'mkdir -p "$T/pg_wal"' 'cp "$C/$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_ws 'mkdir -p "$T/pg_wal"' '"$W/walship-restore" --repo "$work/src/lz4" "$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_wsnone 'mkdir -p "$T/pg_wal"' '"$W/walship-restore" --repo "$work/src/none" "$s" "$T/pg_wal/RECOVERYXLOG"'
run_method r_wsenc 'mkdir -p "$T/pg_wal"' '"$W/walship-restore" --repo "$work/src/enc" --identity "$work/key.txt" "$s" "$T/pg_wal/RECOVERYXLOG"'
# The floor: a process that starts, reads the identity and answers "not
# found" (the server's .history probe) without copying anything.
run_method r_probe 'mkdir -p "$T/pg_wal"' '! "$W/walship-restore" --repo "$work/src/lz4" 7FFFFFFF.history "$T/pg_wal/RECOVERYHISTORY"'
# Below that: any Go program, one that does nothing, built the same way.
mkdir -p "$work/gohello"
printf 'package main\n\nfunc main() {}\n' > "$work/gohello/main.go"
(cd "$work/gohello" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$W/gohello" main.go)
run_method r_hello ':' '"$W/gohello"'

out=$(mktemp)
{
  echo
  echo "## Archive and restore, one process per segment (local archive)"
  echo
  machine_line
  echo "Corpus: $n real 16MB segments from pgbench (scale 20, 20 s of 4 clients); median of $rounds rounds;"
  echo "lz4 stores them in $(awk -v a="$stored" -v b="$raw" 'BEGIN {printf "%.1f%%", 100*a/b}') of their size."
  echo "A ratio below 1 means faster than the reference named in the column."
  echo
  echo "| archive_command | ms per segment | vs cp + sync + mv | vs cp |"
  echo "| --- | ---: | ---: | ---: |"
  echo "| \`cp %p /archive/%f\` (not durable, not atomic) | $(ms ${res[a_cp]}) | $(ratio ${res[a_cp]} ${res[a_cpsync]}) | 1.00 |"
  echo "| \`cp\` + \`sync\` + \`mv\` (durable, atomic) | $(ms ${res[a_cpsync]}) | 1.00 | $(ratio ${res[a_cpsync]} ${res[a_cp]}) |"
  echo "| \`walship-archive\` (lz4, fsync, create-only) | $(ms ${res[a_ws]}) | **$(ratio ${res[a_ws]} ${res[a_cpsync]})** | $(ratio ${res[a_ws]} ${res[a_cp]}) |"
  echo "| \`walship-archive --compress none\` | $(ms ${res[a_wsnone]}) | $(ratio ${res[a_wsnone]} ${res[a_cpsync]}) | $(ratio ${res[a_wsnone]} ${res[a_cp]}) |"
  echo "| \`walship-archive --recipient age1...\` (lz4, then encrypted with age) | $(ms ${res[a_wsenc]}) | $(ratio ${res[a_wsenc]} ${res[a_cpsync]}) | $(ratio ${res[a_wsenc]} ${res[a_cp]}) |"
  echo
  echo "| restore_command | ms per segment | vs cp |"
  echo "| --- | ---: | ---: |"
  echo "| \`cp /archive/%f %p\` | $(ms ${res[r_cp]}) | 1.00 |"
  echo "| \`walship-restore\` (lz4, verified, atomic) | $(ms ${res[r_ws]}) | **$(ratio ${res[r_ws]} ${res[r_cp]})** |"
  echo "| \`walship-restore\` from \`--compress none\` | $(ms ${res[r_wsnone]}) | $(ratio ${res[r_wsnone]} ${res[r_cp]}) |"
  echo "| \`walship-restore --identity key.txt\` (decrypted, then as lz4) | $(ms ${res[r_wsenc]}) | $(ratio ${res[r_wsenc]} ${res[r_cp]}) |"
  echo "| \`walship-restore\` answering \"not found\" (a .history probe: start, identity, no copy) | $(ms ${res[r_probe]}) | $(ratio ${res[r_probe]} ${res[r_cp]}) |"
  echo "| a Go program that does nothing, built like walship (the floor of any Go binary) | $(ms ${res[r_hello]}) | $(ratio ${res[r_hello]} ${res[r_cp]}) |"
  echo
  met() { awk -v r="$1" -v t="$2" 'BEGIN {exit !(r <= t)}'; }
  a=$(ratio ${res[a_ws]} ${res[a_cpsync]}); r=$(ratio ${res[r_ws]} ${res[r_cp]})
  echo "Targets: archive no slower than cp + sync + mv (ratio <= 1.00): $(met "$a" 1.00 && echo met || echo "not met, $a");"
  echo "restore at most 1.5x plain cp: $(met "$r" 1.50 && echo met || echo "not met, $r")."
  ea=$(ratio ${res[a_wsenc]} ${res[a_ws]}); er=$(ratio ${res[r_wsenc]} ${res[r_ws]})
  echo "Encryption costs ${ea}x on archive and ${er}x on restore against the same walship without it (goal: at most 1.3x:"
  echo "$(met "$ea" 1.30 && met "$er" 1.30 && echo met || echo "not met"))."
  echo "The \"not found\" row is the fixed cost of one walship process before any byte is copied: the Go runtime"
  echo "(the last row), the initialisation of the packages in the static binary ($(( $(stat -c %s "$W/walship-restore") / 1000000 )) MB, with the S3 SDK), and"
  echo "reading walship.json. Between the two archive rows is what lz4 costs. What the ratios leave out:"
  echo "walship-archive fsyncs the file and its directory and writes only the compressed bytes, refuses different"
  echo "content and other clusters' WAL, and walship-restore verifies checksum, size and header."
} > "$out"
update_section core "$out"
rm -f "$out"
echo "bench: wrote docs/BENCHMARKS.md (section core)"
