# Shared by the benchmark scripts: timing whole processes and writing a
# section of docs/BENCHMARKS.md. Sourced after lib.sh (the repository root,
# finding and running PostgreSQL), as every benchmark script begins:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   . scripts/bench-lib.sh

[ -n "${root:-}" ] || { echo "bench-lib.sh: source scripts/lib.sh first" >&2; exit 1; }

now_ns() { date +%s%N; }

# median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# ratio A B: A/B with two decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
ms() { awk -v n="$1" 'BEGIN {printf "%.2f", n/1e6}'; }

# update_section NAME FILE: replace the section NAME of docs/BENCHMARKS.md
# (between <!-- begin NAME --> and <!-- end NAME -->) with FILE's content,
# appending it if the section is new.
update_section() {
  local name=$1 body=$2 doc=${BENCH_DOC:-docs/BENCHMARKS.md}
  mkdir -p "$(dirname "$doc")"
  [ -f "$doc" ] || printf '# walship benchmarks\n\nWritten by `make bench`; every figure compares tools run side by side in the same run on the same machine.\n' > "$doc"
  if grep -q "<!-- begin $name -->" "$doc"; then
    awk -v name="$name" -v body="$body" '
      $0 == "<!-- begin " name " -->" { print; while ((getline line < body) > 0) print line; skip = 1; next }
      $0 == "<!-- end " name " -->" { skip = 0 }
      !skip { print }' "$doc" > "$doc.new" && mv "$doc.new" "$doc"
  else
    { printf '\n<!-- begin %s -->\n' "$name"; cat "$body"; printf '<!-- end %s -->\n' "$name"; } >> "$doc"
  fi
}

machine_line() {
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr), $("$pgbin/postgres" --version), $(go version | awk '{print $3}'), $(date -u +%Y-%m-%d)."
}

# make_corpus DIR PORT: real WAL for the benchmarks. A throwaway cluster
# in DIR/pg-corpus runs pgbench (scale 20, then 20 s of 4 clients) with
# archive_command = cp into DIR/corpus; the cluster is removed afterwards.
make_corpus() {
  local dir=$1 port=$2 pg=$1/pg-corpus
  rm -rf "$dir/corpus" "$pg"; mkdir -p "$dir/corpus"; chmod a+rx "$dir"
  [ "$(id -u)" = 0 ] && chown "$pguser" "$dir" "$dir/corpus"
  as_pg initdb -D "$pg" -U postgres -A trust -N >/dev/null
  cat >> "$pg/postgresql.conf" <<CONF
port = $port
listen_addresses = ''
unix_socket_directories = '$dir'
archive_mode = on
archive_command = 'cp %p $dir/corpus/%f'
max_wal_size = 1GB
CONF
  as_pg pg_ctl -D "$pg" -l "$dir/pg-corpus.log" -w start >/dev/null
  trap "as_pg pg_ctl -D '$pg' -m immediate stop >/dev/null 2>&1 || true" EXIT
  as_pg pgbench -h "$dir" -p "$port" -U postgres -i -s 20 -q postgres >/dev/null 2>&1
  as_pg pgbench -h "$dir" -p "$port" -U postgres -c 4 -j 2 -T 20 -n postgres >/dev/null
  as_pg psql -h "$dir" -p "$port" -U postgres -Atc "SELECT pg_switch_wal()" postgres >/dev/null
  sleep 2
  as_pg pg_ctl -D "$pg" -m fast -w stop >/dev/null
  trap - EXIT
  rm -rf "$pg" "$dir/pg-corpus.log"
}

# For the scripts that write up `go test -bench` output saved in a file:
# bench_metric RAW NAME UNIT is the value reported with UNIT on the line of
# benchmark NAME (without the -GOMAXPROCS suffix); empty when not run.
bench_metric() { awk -v k="$2-" -v u="$3" 'index($1, k) == 1 { for (i = 1; i < NF; i++) if ($(i+1) == u) print $i }' "$1"; }
# peer_notes RAW: the lines the benchmarks print about the peers
# (installed versions, and why one is left out), one per line.
peer_notes() { sed -n 's/^peer-note: //p' "$1" | sort -u; }
# fmtN VALUE: VALUE with N decimals; empty stays empty.
fmt0() { [ -z "$1" ] || awk -v n="$1" 'BEGIN {printf "%.0f", n}'; }
fmt1() { [ -z "$1" ] || awk -v n="$1" 'BEGIN {printf "%.1f", n}'; }
fmt2() { [ -z "$1" ] || awk -v n="$1" 'BEGIN {printf "%.2f", n}'; }
# xratio A B: A/B as "1.23x"; empty when either is missing.
xratio() { [ -z "$1" ] || [ -z "$2" ] || awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a/b}'; }
# at_least A B MIN: whether A/B >= MIN (false when either is missing).
at_least() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" -v m="$3" 'BEGIN {exit !(a / b >= m)}'; }
# dash VALUE: VALUE, or an em dash for a figure not measured.
dash() { if [ -n "$1" ]; then printf '%s' "$1"; else printf '—'; fi; }

# pgbackrest_setup WORK PGDATA PORT: pgBackRest's configuration for a run
# side by side with walship (stanza bench; its repository, logs, locks and
# spool under WORK; lz4; fast checkpoints; no archive check, since the
# primary archives into walship's repository), its directories made for
# the server's user.
pgbackrest_setup() {
  local work=$1 pgdata=$2 port=$3
  cat > "$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbackrest
compress-type=lz4
start-fast=y
archive-check=n
log-level-console=warn
repo1-retention-full=9999
log-path=$work/pgbackrest-log
lock-path=$work/pgbackrest-lock
spool-path=$work/pgbackrest-spool

[bench]
pg1-path=$pgdata
pg1-port=$port
pg1-socket-path=$work
CONF
  as_pg mkdir -p "$work/pgbackrest" "$work/pgbackrest-log" "$work/pgbackrest-lock" "$work/pgbackrest-spool"
}

# bench_workdir DIR: DIR made anew with walship's binaries in DIR/bin, all
# of it the server's user's.
bench_workdir() {
  rm -rf "$1"; mkdir -p "$1/bin"
  cp bin/walship bin/walship-* "$1/bin/"; chmod -R a+rX "$1"
  [ "$(id -u)" = 0 ] && chown -R "$pguser" "$1"
  return 0
}

# timed CMD...: runs CMD as the server's user after a sync (the writeback
# of an earlier run must not land in it); prints the nanoseconds it took.
timed() { sync; local t0; t0=$(now_ns); as_pg "$@" >/dev/null || { echo "timed: $* failed" >&2; exit 1; }; echo $(( $(now_ns) - t0 )); }

# The S3 test server (versitygw, scripts/install-s3-server.sh) for the
# benchmarks: start_s3 DIR WHO starts it on a free port of the loopback, its
# objects in DIR/data and its access log in DIR/access.log, sets s3pid,
# endpoint, AK and SK, and makes the bucket "bench" (WHO names the script
# in its errors); stop_s3 stops it. s3_env puts the credentials and the
# endpoint into the environment, as a DBA's server would have them.
s3bin=${WALSHIP_S3_SERVER:-/var/cache/walship/bin/versitygw}
[ -x "$s3bin" ] || s3bin=$(command -v versitygw || true)
s3pid=
AK=WALSHIPBENCHACCESSKEY
SK=walship-bench-secret-key-0123456789
start_s3() {
  local dir=$1 who=$2 try i port
  [ -n "$s3bin" ] || { echo "$who: no S3 server: run scripts/install-s3-server.sh" >&2; exit 1; }
  mkdir -p "$dir/data"; : > "$dir/access.log"
  free_port() {
    local p
    while :; do
      p=$(shuf -i 20000-60000 -n 1)
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
  }
  for try in 1 2 3; do # another process may take the free port first
    port=$(free_port)
    ROOT_ACCESS_KEY=$AK ROOT_SECRET_KEY=$SK "$s3bin" --port "127.0.0.1:$port" --region us-east-1 --quiet \
      --access-log "$dir/access.log" posix "$dir/data" >"$dir/versitygw.log" 2>&1 &
    s3pid=$!
    for i in $(seq 300); do
      kill -0 "$s3pid" 2>/dev/null || break
      # Any HTTP answer (403 to an unsigned request) means it serves.
      curl -s -o /dev/null "http://127.0.0.1:$port/" && break 2
      sleep 0.1
    done
    kill "$s3pid" 2>/dev/null || true; wait "$s3pid" 2>/dev/null || true; s3pid=
  done
  [ -n "$s3pid" ] || { echo "$who: the S3 server does not start: $(tail -n 5 "$dir/versitygw.log")" >&2; exit 1; }
  endpoint=http://127.0.0.1:$port
  # (the header is the SHA-256 of the empty body, which the server requires)
  curl -sSf -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" "$endpoint/bench" >/dev/null \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
stop_s3() {
  if [ -n "$s3pid" ]; then kill "$s3pid" 2>/dev/null || true; wait "$s3pid" 2>/dev/null || true; s3pid=; fi
}
s3_env() {
  export AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_CONFIG_FILE=/nonexistent/aws-config AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials AWS_EC2_METADATA_DISABLED=true
  export WALSHIP_S3_ENDPOINT=$endpoint WALSHIP_S3_REGION=us-east-1 WALSHIP_S3_PATH_STYLE=true
  unset WALSHIP_CONFIG WALSHIP_REPO WALSHIP_COMPRESS WALSHIP_LAYOUT
}
