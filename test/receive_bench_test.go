package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/storage"
)

// BenchmarkReceive measures what walship receive --synchronous costs the
// primary's commits, side by side in one run: pgbench -c 4 (TPC-B-like,
// synchronous_commit = on, fsync on everywhere) with no synchronous
// standby, with a streaming physical standby as the synchronous standby,
// and with walship receive as the synchronous standby on a local
// repository, on S3 (versitygw on the loopback) and on S3 behind a proxy
// adding 20 ms to every request. Then the commit latency of single-row
// INSERTs (4 clients, each INSERT its own transaction, pgbench's
// per-transaction log): p50 and p99 against the store's round trip (the
// median time of a small create-only PUT, what one piece costs). The
// floor experiment (receive_floor_test.go) runs the same receiver with
// pieces that cost a standby's flush instead of a durable new object.
// WALSHIP_BENCH_SECONDS sets each pgbench run's length (default 20); the
// markdown table goes to $WALSHIP_BENCH_TABLE.
func BenchmarkReceive(b *testing.B) {
	pgtest.Require(b)
	secs := 20
	if s := os.Getenv("WALSHIP_BENCH_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("WALSHIP_BENCH_SECONDS=%q: want a positive number", s)
		}
		secs = n
	}
	srv := s3Server(b)
	type row struct {
		label, store string
		tps          float64
		p50, p99     time.Duration
		rtt          time.Duration
		requests     float64 // store requests per hour (pieces, and three per segment)
	}
	var rows []row
	var stop func() (pieces, segments int64) // the receiver's, when one runs
	measure := func(label, store string, setup func(base string, p *pgtest.Cluster) (syncName string, rtt time.Duration)) {
		stop = nil
		base := pgtest.Dir(b)
		p := pgtest.NewCluster(b, base, "p", pgtest.InitOptions{})
		p.Conf("fsync = on", "synchronous_commit = on", "max_wal_size = 2GB", "checkpoint_timeout = 30min")
		p.Start()
		p.Pgbench("-i", "-s", "10", "-q")
		p.Query("CREATE TABLE ins (id bigint, at timestamptz DEFAULT now())")
		name, rtt := setup(base, p)
		if name != "" {
			makeSync(b, p, name)
			p.WaitQuery("SELECT sync_state FROM pg_stat_replication WHERE application_name = '"+name+"'", "sync", 2*time.Minute)
		}
		out := p.Pgbench("-c", "4", "-j", "2", "-T", strconv.Itoa(secs), "-n")
		m := regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("%s: no tps in pgbench's output:\n%s", label, out)
		}
		tps, _ := strconv.ParseFloat(m[1], 64)
		script := filepath.Join(base, "insert.sql")
		if err := os.WriteFile(script, []byte("INSERT INTO ins (id) VALUES (:client_id);\n"), 0o644); err != nil {
			b.Fatal(err)
		}
		logs := pgtest.Mkdir(b, filepath.Join(base, "latency"))
		p.Pgbench("-c", "4", "-j", "2", "-T", strconv.Itoa(secs), "-n", "-f", script, "-l", "--log-prefix", filepath.Join(logs, "lat"))
		lat := latencies(b, logs)
		r := row{label: label, store: store, tps: tps, rtt: rtt}
		if stop != nil {
			pieces, segments := stop()
			r.requests = float64(pieces+3*segments) / float64(2*secs) * 3600
		}
		if len(lat) > 0 {
			r.p50, r.p99 = lat[len(lat)/2], lat[len(lat)*99/100]
		}
		b.Logf("%s (%s): %.0f tps, insert commit p50 %s p99 %s over %d commits, round trip %s", label, store, tps, r.p50, r.p99, len(lat), rtt)
		rows = append(rows, r)
	}
	receiver := func(kind string) func(string, *pgtest.Cluster) (string, time.Duration) {
		return func(base string, p *pgtest.Cluster) (string, time.Duration) {
			store := newBackend(b, kind, base, srv)
			var rtt time.Duration
			if s3, ok := store.(*s3Backend); ok { // a local repository belongs to the server's user
				rtt = roundTrip(b, s3.reached(b)) // through the proxy, as the receiver's pieces go
			}
			rcv := startReceiver(b, store, base, p, "--synchronous")
			stop = func() (int64, int64) {
				if code := rcv.stop(); code != 0 {
					b.Errorf("walship receive exited %d after SIGTERM", code)
				}
				m := regexp.MustCompile(`stopped .*pieces=(\d+) segments=(\d+)`).FindStringSubmatch(rcv.logText())
				if m == nil {
					b.Fatalf("no summary in the receiver's log:\n%s", tail(rcv.logText(), 2000))
				}
				pieces, _ := strconv.ParseInt(m[1], 10, 64)
				segments, _ := strconv.ParseInt(m[2], 10, 64)
				return pieces, segments
			}
			return "walship", rtt
		}
	}
	only := os.Getenv("WALSHIP_BENCH_ONLY") // a quick look at some rows: "standby,local"
	want := func(name string) bool { return only == "" || strings.Contains(","+only+",", ","+name+",") }
	if want("none") {
		measure("none (synchronous_commit = on, no standby)", "", func(string, *pgtest.Cluster) (string, time.Duration) { return "", 0 })
	}
	measure("streaming physical standby", "its pg_wal", func(base string, p *pgtest.Cluster) (string, time.Duration) {
		s := p.BaseBackup(base, "standby")
		s.Conf("fsync = on", "hot_standby = on",
			fmt.Sprintf("primary_conninfo = 'host=%s port=%d user=postgres application_name=standby'", p.Socket, p.Port))
		s.Touch("standby.signal")
		s.Start()
		return "standby", 0
	})
	for _, k := range []struct{ kind, store string }{{"local", "local"}, {"s3", "S3 (loopback)"}, {"s3+20ms", "S3 + 20 ms per request"}} {
		if want(k.kind) {
			measure("walship receive --synchronous", k.store, receiver(k.kind))
		}
		if k.kind == "local" && want("floor") {
			measure(floorLabel, "a preallocated file (pieces written into it and fdatasync'd; no object created)", func(base string, p *pgtest.Cluster) (string, time.Duration) {
				end := floorReceiver(b, base, p)
				stop = func() (int64, int64) { end(); return 0, 0 }
				return "walship", 0
			})
		}
	}

	var t bytes.Buffer
	fmt.Fprintf(&t, "pgbench -c 4 -j 2 -T %d, scale 10, synchronous_commit = on, fsync = on on primary and standby; insert commits: 4 clients, one single-row INSERT per transaction, pgbench's per-transaction latency. The store round trip is the median time of a 512-byte create-only PUT, made the way the receiver's pieces go (through the proxy for S3 + 20 ms).\n\n", secs)
	fmt.Fprintln(&t, "| synchronous standby | WAL durable in | tps (TPC-B-like) | vs streaming standby | INSERT commit p50 | p99 | store round trip (small PUT, median) | store requests per hour at this load |")
	fmt.Fprintln(&t, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	ref := rows[0].tps
	for _, r := range rows {
		if r.label == "streaming physical standby" {
			ref = r.tps
		}
	}
	for _, r := range rows {
		rt := ""
		if r.rtt > 0 {
			rt = msf(r.rtt)
		}
		req := ""
		if r.requests > 0 {
			req = fmt.Sprintf("%.0f", r.requests)
		}
		fmt.Fprintf(&t, "| %s | %s | %.0f | %.2fx | %s | %s | %s | %s |\n", r.label, r.store, r.tps, r.tps/ref, msf(r.p50), msf(r.p99), rt, req)
	}
	fsync, create := diskFloor(b)
	fmt.Fprintf(&t, "\nThe floor of one flush on this disk, measured alone: a write into a preallocated file and fdatasync (a standby's WAL flush) p50 %s; a create-only durable object of walship's local store (a piece: an unnamed file, fsync, link, directory fsync) p50 %s.\n", msf(fsync), msf(create))
	if want("floor") {
		fmt.Fprintln(&t, "\nThe floor experiment runs the receiver in the benchmark's process on a store that keeps objects in memory and makes each piece durable the way a standby makes its WAL durable: written into a preallocated, zero-filled file and fdatasync'd, with no new object. Nothing is recoverable from it; it separates what the receiver costs from what the durable creation of one new object per flush costs on this disk.")
	}
	if path := os.Getenv("WALSHIP_BENCH_TABLE"); path != "" {
		if err := os.WriteFile(path, t.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("\n%s", t.String())
}

// latencies reads pgbench's per-transaction logs in dir: each line's
// third field is the transaction's latency in microseconds. Sorted.
func latencies(b *testing.B, dir string) []time.Duration {
	files, _ := filepath.Glob(filepath.Join(dir, "lat*"))
	var out []time.Duration
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fs[2], 10, 64)
			if err == nil {
				out = append(out, time.Duration(us)*time.Microsecond)
			}
		}
	}
	slices.Sort(out)
	return out
}

// roundTrip is the median time of a small create-only PUT to the store
// (20 of them): what storing one piece costs at least.
func roundTrip(b *testing.B, be storage.Backend) time.Duration {
	ctx := context.Background()
	var ds []time.Duration
	for i := range 20 {
		data := []byte(strings.Repeat("x", 512))
		start := time.Now()
		if err := be.Put(ctx, fmt.Sprintf("rtt/%d", i), bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		be.Remove(ctx, fmt.Sprintf("rtt/%d", i))
	}
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// diskFloor measures, on the disk of the tests' directories, the median
// time of a 512-byte write into a preallocated file and fdatasync (as the
// server flushes WAL), and of a create-only 512-byte object of the local
// store (storage/local.Put).
func diskFloor(b *testing.B) (fsync, create time.Duration) {
	dir := pgtest.Dir(b)
	f, err := os.OpenFile(filepath.Join(dir, "wal"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := preallocate(f, 16<<20); err != nil {
		b.Fatal(err)
	}
	be := localBackend{dir: filepath.Join(dir, "store")}.store(b)
	buf := make([]byte, 512)
	var a, c []time.Duration
	for i := range 200 {
		start := time.Now()
		f.WriteAt(buf, int64(i*512))
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		a = append(a, time.Since(start))
		start = time.Now()
		if err := be.Put(context.Background(), fmt.Sprintf("p/%d", i), bytes.NewReader(buf), int64(len(buf))); err != nil {
			b.Fatal(err)
		}
		c = append(c, time.Since(start))
	}
	slices.Sort(a)
	slices.Sort(c)
	return a[len(a)/2], c[len(c)/2]
}

// msf is a duration in milliseconds with two decimals.
func msf(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
