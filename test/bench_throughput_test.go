package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/internal/testenv/s3test"
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
// inserts, one in four) for a fixed time with archive_mode on
// and walship-archive as archive_command, serially and with --parallel 8,
// to a local repository, to a real S3 server and to the same server behind
// 20 ms of latency. It samples pg_wal/archive_status every 250 ms and
// reports the WAL rate, the archiving rate, the largest and the final
// ready backlog, and how long the backlog takes to drain after the load.
// The server must never see an archive_command failure.
func BenchmarkPrimaryBacklog(b *testing.B) {
	pgtest.Require(b)
	server := s3Server(b) // one for every sub-benchmark
	dur := benchLoad()
	for _, kind := range []string{"local", "s3", "s3+20ms"} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/parallel=%d", kind, par), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					primaryBacklog(b, kind, par, dur, server)
				}
			})
		}
	}
}

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

func primaryBacklog(b *testing.B, kind string, par int, dur time.Duration, srv func() *s3test.Server) {
	b.StopTimer()
	base := pgtest.Dir(b)
	spool := pgtest.Mkdir(b, filepath.Join(base, "spool"))
	store := newBackend(b, kind, base, srv)
	p := newCluster(b, store, base, "primary")
	p.Conf("archive_mode = on", commandLine(b, store, "walship-archive", "--parallel", strconv.Itoa(par), "--spool", spool),
		"synchronous_commit = off", "max_wal_size = 2GB")
	p.Start()
	p.Pgbench("-i", "-s", "10", "-q")
	load := newFullSpeed(b, p, base)
	pgtest.Eventually(b, 10*time.Minute, "the backlog of pgbench -i to drain", func() bool { return readyCount(p) == 0 })

	var maxReady atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if n := int64(readyCount(p)); n > maxReady.Load() {
				maxReady.Store(n)
			}
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	start := p.Query("SELECT pg_current_wal_lsn()")
	archived0 := pgStat(p, "archived_count")
	b.StartTimer()
	t0 := time.Now()
	load(dur)
	elapsed := time.Since(t0)
	endReady := readyCount(p)
	archived := pgStat(p, "archived_count") - archived0
	walBytes := walBytesSince(b, p, start)
	t1 := time.Now()
	pgtest.Eventually(b, 20*time.Minute, "the backlog to drain", func() bool { return readyCount(p) == 0 })
	drain := time.Since(t1)
	b.StopTimer()
	close(stop)
	wg.Wait()

	if failed := pgStat(p, "failed_count"); failed != 0 {
		b.Errorf("pg_stat_archiver.failed_count = %d, want 0", failed)
	}
	segs := walBytes / (16 << 20)
	b.ReportMetric(segs/elapsed.Seconds(), "wal-seg/s")
	b.ReportMetric(float64(archived)/elapsed.Seconds(), "archived-seg/s")
	b.ReportMetric(float64(max(maxReady.Load(), int64(endReady))), "max-ready")
	b.ReportMetric(float64(endReady), "end-ready")
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

// BenchmarkRecovery archives 1 GiB of pgbench WAL into a real S3 server,
// then recovers a base backup over all of it (archive recovery to the end
// of the archive, then promotion), with and without --prefetch 8, straight
// from the server and through 20 ms of latency. It reports seconds from
// pg_ctl start until the server leaves recovery, and checks the recovered
// data equals the primary's.
func BenchmarkRecovery(b *testing.B) {
	pgtest.Require(b)
	srv := s3test.StartServer(b)
	base := pgtest.Dir(b)
	a := newS3Backend(b, srv, base, "pg/main")
	p := newCluster(b, a, base, "primary")
	spool := pgtest.Mkdir(b, filepath.Join(base, "archive-spool"))
	p.Conf("archive_mode = on", commandLine(b, a, "walship-archive", "--parallel", "4", "--spool", spool),
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
	os.RemoveAll(p.Data)

	stores := map[string]archiveBackend{
		"s3":      a,
		"s3+20ms": a.through(b, base, latencyProxy(b, srv.Endpoint, 20*time.Millisecond)),
	}
	run := 0
	for _, kind := range []string{"s3", "s3+20ms"} {
		for _, prefetch := range []int{0, 8} {
			b.Run(fmt.Sprintf("%s/prefetch=%d", kind, prefetch), func(b *testing.B) {
				var secs float64
				for i := 0; i < b.N; i++ {
					run++
					secs += recoverAll(b, golden, base, fmt.Sprintf("run%d", run), stores[kind], prefetch, want)
				}
				b.ReportMetric(secs/float64(b.N), "recovery-s")
				b.ReportMetric(walBytes/(1<<20)/(secs/float64(b.N)), "MB/s")
				b.ReportMetric(walBytes/(1<<20), "wal-MB")
			})
		}
	}
}

// redoUsage finds the CPU time of the startup process in its "redo done"
// line: replaying takes at least that long however fast WAL arrives.
var redoUsage = regexp.MustCompile(`redo done at .* CPU: user: ([0-9.]+) s, system: ([0-9.]+) s`)

// recoverAll recovers a copy of golden over the whole archive and returns
// the seconds it took.
func recoverAll(b *testing.B, golden *pgtest.Cluster, base, name string, store archiveBackend, prefetch int, want string) float64 {
	b.StopTimer()
	c := pgtest.Attach(b, base, name)
	pgtest.Run(b, "cp", "-a", golden.Data, c.Data)
	c.Conf()
	c.Env = store.env()
	flags := []string{"-v"}
	if prefetch > 0 {
		spool := pgtest.Mkdir(b, filepath.Join(base, name+"-spool"))
		flags = append(flags, "--prefetch", strconv.Itoa(prefetch), "--spool", spool)
	}
	c.Conf(commandLine(b, store, "walship-restore", flags...), "recovery_target_action = 'promote'", "archive_mode = off")
	c.Touch("recovery.signal")
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
	fromSpool := strings.Count(log, "restored from the prefetch spool")
	direct := strings.Count(log, "msg=restored ")
	if prefetch > 0 && fromSpool == 0 {
		b.Errorf("--prefetch %d served no segment from the spool (%d fetched directly)", prefetch, direct)
	}
	if m := redoUsage.FindStringSubmatch(log); m != nil {
		user, _ := strconv.ParseFloat(m[1], 64)
		sys, _ := strconv.ParseFloat(m[2], 64)
		b.ReportMetric(user+sys, "redo-cpu-s")
	}
	b.ReportMetric(float64(fromSpool), "from-spool")
	b.ReportMetric(float64(direct), "fetched")
	c.Stop("immediate")
	os.RemoveAll(c.Data)
	return secs
}
