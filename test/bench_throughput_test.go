package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal"
)

// readyCount is the number of WAL files waiting for archive_command.
func readyCount(c *pgtest.Cluster) int {
	entries, _ := os.ReadDir(filepath.Join(c.Data, "pg_wal", "archive_status"))
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ready") {
			n++
		}
	}
	return n
}

// walBytesSince is how much WAL the server wrote since lsn.
func walBytesSince(t testing.TB, c *pgtest.Cluster, lsn string) float64 {
	t.Helper()
	out := c.Query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '" + lsn + "')")
	v, err := strconv.ParseFloat(out, 64)
	if err != nil {
		t.Fatalf("WAL written since %s: %q: %v", lsn, out, err)
	}
	return v
}

// benchLoad is how long pgbench runs at full speed in
// BenchmarkPrimaryBacklog (BENCH_LOAD_SECONDS, default 30).
func benchLoad() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("BENCH_LOAD_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 30 * time.Second
}

// BenchmarkPrimaryBacklog runs a real primary at full speed (pgbench, 4
// clients, synchronous_commit off, TPC-B-like transactions mixed with bulk
// inserts, one in four) for a fixed time with archive_mode on, archiving
// with walship-archive serially and with --parallel 8, with pgBackRest and
// WAL-G (see peerTools) where installed, and locally also with cp + sync +
// mv, to a local directory, to a real S3 server and to the same server
// behind 20 and 50 ms of latency per request. It samples
// pg_wal/archive_status every 250 ms and reports the WAL rate, the
// archiving rate, the largest and the final ready backlog, its growth over
// the load (the slope of a least-squares line), and how long the backlog
// takes to drain after the load. The server must never see an
// archive_command failure.
func BenchmarkPrimaryBacklog(b *testing.B) {
	pgtest.Require(b)
	servers := newBenchServers(b) // the same for every sub-benchmark
	tools := peerTools(b)
	dur := benchLoad()
	run := func(name string, setup backlogSetup) {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				primaryBacklog(b, dur, setup)
			}
		})
	}
	for _, kind := range []string{"local", "s3", "s3+20ms", "s3+50ms"} {
		for _, par := range []int{1, 8} {
			run(fmt.Sprintf("%s/parallel=%d", kind, par), func(b *testing.B, base string, p *pgtest.Cluster) string {
				store := newBackend(b, kind, base, servers.plain)
				p.Env = store.env()
				spool := pgtest.Mkdir(b, filepath.Join(base, "spool"))
				b.Cleanup(waitForWorkers) // before the spool goes
				return commandLine(b, store, "walship-archive", "--parallel", strconv.Itoa(par), "--spool", spool)
			})
		}
		for _, tool := range tools {
			if !tool.supports(kind) {
				continue
			}
			run(kind+"/"+tool.name, func(b *testing.B, base string, p *pgtest.Cluster) string {
				r := newPeerRepo(b, tool, kind, base, servers)
				r.create(b, p.Data, true)
				p.Env = r.env(p.Data)
				return r.archiveCommand(p.Data)
			})
		}
		if kind == "local" {
			run("local/cpsyncmv", func(b *testing.B, base string, p *pgtest.Cluster) string {
				repo := pgtest.Mkdir(b, filepath.Join(base, "repo"))
				script := filepath.Join(base, "cpsyncmv.sh")
				if err := os.WriteFile(script, []byte("#!/bin/sh\n"+cpSyncMv(repo)+"\n"), 0o755); err != nil {
					b.Fatal(err)
				}
				return fmt.Sprintf("archive_command = '%s %%p %%f'", script)
			})
		}
	}
}

// backlogSetup points the primary p (initialised, not started) at a fresh
// archive with its files in base, and returns its archive_command line.
type backlogSetup func(b *testing.B, base string, p *pgtest.Cluster) string

// bulkInsert is the pgbench script that makes a primary write WAL as fast
// as a loading job does: 500 rows of 500 bytes per transaction.
const bulkInsert = "INSERT INTO bulk SELECT g, repeat('walship-', 62) FROM generate_series(1, 500) g;\n"

// newFullSpeed prepares p (initialized by pgbench -i) for a load at full
// speed and returns the function that runs it for a time: pgbench with 4
// clients, TPC-B-like transactions mixed with bulk inserts, one in four.
func newFullSpeed(b *testing.B, p *pgtest.Cluster, base string) func(time.Duration) {
	b.Helper()
	p.Query("CREATE TABLE bulk (id int, payload text)")
	script := filepath.Join(base, "bulk.sql")
	if err := os.WriteFile(script, []byte(bulkInsert), 0o644); err != nil {
		b.Fatal(err)
	}
	return func(d time.Duration) {
		p.Pgbench("-n", "-c", "4", "-j", "2", "-T", strconv.Itoa(int(d.Seconds())), "-b", "tpcb-like@3", "-f", script+"@1")
	}
}

// segNo is the number of the segment the server writes now.
func segNo(t testing.TB, c *pgtest.Cluster) int64 {
	t.Helper()
	return c.Int("SELECT floor(pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') / 16777216)::bigint")
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy, sxx, sxy = sx+x[i], sy+y[i], sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	if d := n*sxx - sx*sx; d != 0 {
		return (n*sxy - sx*sy) / d
	}
	return 0
}

func primaryBacklog(b *testing.B, dur time.Duration, setup backlogSetup) {
	b.StopTimer()
	base := pgtest.Dir(b)
	p := pgtest.NewCluster(b, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", setup(b, base, p), "synchronous_commit = off", "max_wal_size = 2GB")
	p.Start()
	p.Pgbench("-i", "-s", "10", "-q")
	load := newFullSpeed(b, p, base)
	pgtest.Eventually(b, 10*time.Minute, "the backlog of pgbench -i to drain", func() bool { return readyCount(p) == 0 })

	syscall.Sync() // no writeback of earlier runs in this one
	// The sampler records the backlog from the start of the load to its end.
	var mu sync.Mutex
	var at, ready []float64
	var maxReady int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	t0 := time.Now()
	go func() {
		defer wg.Done()
		for {
			n := readyCount(p)
			mu.Lock()
			at, ready = append(at, time.Since(t0).Seconds()), append(ready, float64(n))
			maxReady = max(maxReady, n)
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	seg0 := segNo(b, p)
	b.StartTimer()
	load(dur)
	elapsed := time.Since(t0)
	endReady := readyCount(p)
	// Written: the segments completed during the load; archived: those of
	// them whose .ready is gone (the backlog was empty at the start).
	// pg_stat_archiver counts only the server's own calls, and WAL-G marks
	// files .done itself.
	written := float64(segNo(b, p) - seg0)
	archived := written - float64(endReady)
	close(stop)
	wg.Wait()
	t1 := time.Now()
	pgtest.Eventually(b, 20*time.Minute, "the backlog to drain", func() bool { return readyCount(p) == 0 })
	drain := time.Since(t1)
	b.StopTimer()

	if failed := pgStat(p, "failed_count"); failed != 0 {
		b.Errorf("pg_stat_archiver.failed_count = %d, want 0", failed)
	}
	b.ReportMetric(written/elapsed.Seconds(), "wal-seg/s")
	b.ReportMetric(archived/elapsed.Seconds(), "archived-seg/s")
	b.ReportMetric(float64(max(maxReady, endReady)), "max-ready")
	b.ReportMetric(float64(endReady), "end-ready")
	b.ReportMetric(slope(at, ready), "ready-growth-seg/s")
	b.ReportMetric(drain.Seconds(), "drain-s")
	p.Stop("immediate")
	os.RemoveAll(p.Data)
}

// benchRecoveryWAL is how much WAL BenchmarkRecovery replays
// (BENCH_RECOVERY_MB, default 1024).
func benchRecoveryWAL() float64 {
	if s, err := strconv.Atoi(os.Getenv("BENCH_RECOVERY_MB")); err == nil && s > 0 {
		return float64(s) * (1 << 20)
	}
	return 1 << 30
}

// BenchmarkRecovery writes 1 GiB of pgbench WAL on a primary archiving
// with plain cp into a local directory, fills a walship repository on a
// real S3 server and the peers' archives (see peerTools) with the same
// files, then recovers a base backup over all of it (archive recovery to
// the end of the archive, then promotion) with `cp` from the local
// directory (the reference), with walship-restore with and without
// --prefetch 8 from S3, directly and through 20 ms of latency per request,
// and with pgBackRest (async archive-get) from a posix repository and
// from S3, and WAL-G from S3. It reports seconds from pg_ctl start until
// the server leaves recovery, and checks the recovered data equals the
// primary's.
func BenchmarkRecovery(b *testing.B) {
	pgtest.Require(b)
	servers := newBenchServers(b)
	tools := peerTools(b)
	base := pgtest.Dir(b)
	bare := pgtest.Mkdir(b, filepath.Join(base, "bare"))
	p := pgtest.NewCluster(b, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", fmt.Sprintf("archive_command = 'cp %%p %s/%%f'", bare),
		"synchronous_commit = off", "max_wal_size = 2GB")
	p.Start()
	p.Pgbench("-i", "-s", "10", "-q")
	load := newFullSpeed(b, p, base)
	golden := p.BaseBackup(base, "golden")
	start := p.Query("SELECT pg_current_wal_lsn()")
	target := benchRecoveryWAL()
	for walBytesSince(b, p, start) < target {
		load(5 * time.Second)
	}
	walBytes := walBytesSince(b, p, start)
	want := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts")
	last := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 20*time.Minute)
	p.Stop("fast")

	// Every archive gets the same WAL, the bare copies, pushed one by one.
	entries, err := os.ReadDir(bare)
	if err != nil {
		b.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if n, err := wal.ParseName(e.Name()); err == nil && n.Kind == wal.KindSegment {
			files = append(files, e.Name())
		}
	}
	a := newS3Backend(b, servers.plain(), base, "pg/main")
	for _, f := range files {
		cmd := pgtest.Command(b, pgtest.Bin(b, "walship-archive"), append(a.flags(), filepath.Join(bare, f), f)...)
		cmd.Env = append(cmd.Env, a.env()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("walship-archive %s: %v\n%s", f, err, out)
		}
	}
	peerRepos := map[string]*peerRepo{}
	for _, tool := range tools {
		for _, kind := range []string{"local", "s3"} {
			if !tool.supports(kind) {
				continue
			}
			r := newPeerRepo(b, tool, kind, pgtest.Mkdir(b, filepath.Join(base, tool.name+"-"+kind)), servers)
			r.create(b, p.Data, true)
			for _, f := range files {
				r.push(b, p.Data, filepath.Join(bare, f))
			}
			peerRepos[tool.name+"/"+kind] = r
		}
	}
	os.RemoveAll(p.Data)

	walshipStores := map[string]archiveBackend{
		"s3":      a,
		"s3+20ms": a.through(b, base, latencyProxy(b, a.srv.Endpoint, 20*time.Millisecond)),
	}
	run := 0
	bench := func(name string, restore func(b *testing.B, c *pgtest.Cluster, dir string) func(log string)) {
		b.Run(name, func(b *testing.B) {
			var secs float64
			for i := 0; i < b.N; i++ {
				run++
				secs += recoverAll(b, golden, base, fmt.Sprintf("run%d", run), want, restore)
			}
			b.ReportMetric(secs/float64(b.N), "recovery-s")
			b.ReportMetric(walBytes/(1<<20)/(secs/float64(b.N)), "MB/s")
			b.ReportMetric(walBytes/(1<<20), "wal-MB")
		})
	}
	bench("local/cp", func(b *testing.B, c *pgtest.Cluster, dir string) func(string) {
		c.Conf(fmt.Sprintf("restore_command = 'cp %s/%%f %%p'", bare))
		return nil
	})
	for _, kind := range []string{"s3", "s3+20ms"} {
		for _, prefetch := range []int{0, 8} {
			bench(fmt.Sprintf("%s/prefetch=%d", kind, prefetch), func(b *testing.B, c *pgtest.Cluster, dir string) func(string) {
				return walshipRestore(b, c, dir, walshipStores[kind], prefetch)
			})
		}
	}
	for _, tool := range tools {
		for _, kind := range []string{"local", "s3", "s3+20ms"} {
			if !tool.supports(kind) {
				continue
			}
			shared := peerRepos[tool.name+"/local"]
			if kind != "local" {
				shared = peerRepos[tool.name+"/s3"]
			}
			bench(kind+"/"+tool.name, func(b *testing.B, c *pgtest.Cluster, dir string) func(string) {
				r := shared.through(b, kind, pgtest.Mkdir(b, dir), servers)
				c.Env = r.env(c.Data)
				c.Conf(r.restoreCommand(c.Data))
				return func(string) {
					if _, err := os.Stat(r.prefetched(c.Data)); err != nil {
						b.Errorf("%s did not prefetch: %v", tool.name, err)
					}
				}
			})
		}
	}
}

// walshipRestore makes c restore from store with walship-restore (with
// --prefetch when prefetch > 0, its spool in dir) and returns the check of
// the server log after the recovery, which reports from the spool and
// fetched.
func walshipRestore(b *testing.B, c *pgtest.Cluster, dir string, store archiveBackend, prefetch int) func(string) {
	c.Env = store.env()
	flags := []string{"-v"}
	if prefetch > 0 {
		spool := pgtest.Mkdir(b, filepath.Join(dir, "spool"))
		flags = append(flags, "--prefetch", strconv.Itoa(prefetch), "--spool", spool)
	}
	c.Conf(commandLine(b, store, "walship-restore", flags...))
	return func(log string) {
		fromSpool := strings.Count(log, "restored from the prefetch spool")
		direct := strings.Count(log, "walship-restore: restored file=")
		if prefetch > 0 && fromSpool == 0 {
			b.Errorf("--prefetch %d served no segment from the spool (%d fetched directly)", prefetch, direct)
		}
		b.ReportMetric(float64(fromSpool), "from-spool")
		b.ReportMetric(float64(direct), "fetched")
	}
}

// redoUsage finds the CPU time of the startup process in its "redo done"
// line: replaying takes at least that long however fast WAL arrives.
var redoUsage = regexp.MustCompile(`redo done at .* CPU: user: ([0-9.]+) s, system: ([0-9.]+) s`)

// recoverAll recovers a copy of golden over the whole archive with the
// restore_command that restore sets up (its files in a directory of its
// own) and returns the seconds it took; restore may return a check of the
// server log.
func recoverAll(b *testing.B, golden *pgtest.Cluster, base, name, want string, restore func(b *testing.B, c *pgtest.Cluster, dir string) func(log string)) float64 {
	b.StopTimer()
	c := pgtest.Attach(b, base, name)
	pgtest.Run(b, "cp", "-a", golden.Data, c.Data)
	c.Conf()
	check := restore(b, c, filepath.Join(base, name+"-restore"))
	c.Conf("recovery_target_action = 'promote'", "archive_mode = off")
	c.Touch("recovery.signal")
	syscall.Sync() // no writeback of earlier runs (or of filling the archives) in this one
	b.StartTimer()
	t0 := time.Now()
	c.Start()
	c.WaitQuery("SELECT pg_is_in_recovery()", "f", 60*time.Minute)
	secs := time.Since(t0).Seconds()
	b.StopTimer()
	if got := c.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"); got != want {
		b.Errorf("recovered accounts = %s, want the primary's %s", got, want)
	}
	log := c.Log()
	if check != nil {
		check(log)
	}
	if m := redoUsage.FindStringSubmatch(log); m != nil {
		user, _ := strconv.ParseFloat(m[1], 64)
		sys, _ := strconv.ParseFloat(m[2], 64)
		b.ReportMetric(user+sys, "redo-cpu-s")
	}
	c.Stop("immediate")
	os.RemoveAll(c.Data)
	return secs
}
