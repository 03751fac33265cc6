package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/archsim"
	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// benchArchiverSegments is how many ready segments BenchmarkArchiver
// archives per run (BENCH_ARCHIVER_SEGMENTS, default 200).
func benchArchiverSegments() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ARCHIVER_SEGMENTS")); err == nil && n > 0 {
		return n
	}
	return 200
}

// walMagic is the WAL page magic of each major version (pgBackRest checks
// that a segment's header matches the cluster's version).
var walMagic = map[int]uint16{12: 0xD101, 13: 0xD106, 14: 0xD10D, 15: 0xD110, 16: 0xD113, 17: 0xD116, 18: 0xD118}

// newBenchData is a data directory for the archiver simulation: pg_wal
// with n 16MB segments, and the PG_VERSION and global/pg_control of a
// cluster made with initdb, whose system identifier and version the
// segments' headers carry (pgBackRest reads pg_control and checks the
// headers). The content is WAL-like: compressible, not trivially so. It
// is removed when b ends; resetReady marks every segment ready again.
func newBenchData(b *testing.B, n int) string {
	b.Helper()
	ctl := pgtest.NewCluster(b, pgtest.Dir(b), "control", pgtest.InitOptions{})
	sysID, err := pgdata.SystemID(ctl.Data)
	if err != nil {
		b.Fatal(err)
	}
	version, err := pgdata.ReadVersion(ctl.Data)
	if err != nil {
		b.Fatal(err)
	}
	magic, ok := walMagic[version.Major]
	if !ok {
		b.Fatalf("no WAL magic known for PostgreSQL %s", version)
	}
	dir, err := os.MkdirTemp("", "walship-bench-wal-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	walDir := filepath.Join(dir, "pg_wal")
	os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
	os.MkdirAll(filepath.Join(dir, "global"), 0o700)
	for _, f := range []string{"PG_VERSION", "global/pg_control"} {
		data, err := os.ReadFile(filepath.Join(ctl.Data, f))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	const segSize = 16 << 20
	rng := rand.New(rand.NewPCG(5, 6))
	name := wal.SegmentFromNo(1, 1, segSize)
	for i := 0; i < n; i++ {
		seg := waltest.FakeSegment(name, sysID, segSize, func(p []byte) {
			for j := 0; j < len(p); j += 24 {
				p[j], p[j+1], p[j+2] = byte(rng.IntN(256)), byte(i), byte(j>>13)
			}
		})
		h, err := wal.ParseLongHeader(seg)
		if err != nil {
			b.Fatal(err)
		}
		h.Magic = magic
		h.Encode(seg)
		if err := os.WriteFile(filepath.Join(walDir, name.String()), seg, 0o600); err != nil {
			b.Fatal(err)
		}
		name = name.Next(segSize)
	}
	return dir
}

// resetReady marks every segment of the data directory ready, and nothing
// else (a peer's own files in pg_wal are removed).
func resetReady(b *testing.B, data string) {
	b.Helper()
	walDir := filepath.Join(data, "pg_wal")
	statusDir := filepath.Join(walDir, "archive_status")
	entries, err := os.ReadDir(walDir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			os.RemoveAll(filepath.Join(walDir, e.Name()))
		}
	}
	os.MkdirAll(statusDir, 0o700)
	for _, e := range entries {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			if err := os.WriteFile(filepath.Join(statusDir, e.Name()+".ready"), nil, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// latencyProxy forwards to target after delaying each request by d, the
// round trip to a real object store that a loopback server lacks.
func latencyProxy(t testing.TB, target string, d time.Duration) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkArchiver drives an archive command exactly like PostgreSQL's
// archiver over a pg_wal with 200 ready 16MB segments (one process per
// segment, in order, .ready renamed to .done on success; see archsim):
// walship-archive serially and with --parallel 8, pgBackRest and WAL-G
// (see peerTools) where installed, to a local directory and to a real S3
// server, also behind a proxy adding 20 or 50 ms to every request, and,
// locally, cp + sync + mv, the durable floor of a shell archive_command.
// It reports segments per second.
func BenchmarkArchiver(b *testing.B) {
	pgtest.Require(b)
	bin := pgtest.Bin(b, "walship-archive")
	servers := newBenchServers(b) // the same for every sub-benchmark
	n := benchArchiverSegments()
	data := newBenchData(b, n)
	tools := peerTools(b)
	// run archives everything ready with the command that newCmd makes
	// for a fresh directory, then checks with stored (when not nil) that
	// the archive holds every segment.
	run := func(b *testing.B, newCmd func(b *testing.B, dir string) (archsim.Command, func(testing.TB) int)) {
		var segs, secs float64
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			resetReady(b, data)
			cmd, stored := newCmd(b, b.TempDir())
			syscall.Sync() // no writeback of earlier runs in this one
			b.StartTimer()
			st, err := archsim.Run(context.Background(), data, cmd)
			b.StopTimer()
			waitForWorkers() // look-ahead's, before the next run and before its spool goes
			if err != nil {
				b.Fatal(err)
			}
			if ready, _ := archsim.Ready(filepath.Join(data, "pg_wal")); st.Archived+st.Skipped != n || len(ready) != 0 {
				b.Fatalf("archived %d and skipped %d, %d still ready; want %d done", st.Archived, st.Skipped, len(ready), n)
			}
			if stored != nil {
				if got := stored(b); got != n {
					b.Fatalf("the archive holds %d lz4 segments, want %d", got, n)
				}
			}
			segs += float64(n)
			secs += st.Elapsed.Seconds()
		}
		b.ReportMetric(segs/secs, "segments/s")
	}
	withEnv := func(argv archsim.Command, env []string) archsim.Command {
		return func(ctx context.Context, dataDir, p, f string) *exec.Cmd {
			c := argv(ctx, dataDir, p, f)
			c.Env = append(os.Environ(), env...)
			return c
		}
	}
	// Runs that follow each other on one machine are not alike (the
	// writeback and the freeing of the one before): scripts/bench-archiver.sh
	// alternates the order of serial and parallel between its rounds.
	order := []int{1, 8}
	if os.Getenv("BENCH_ARCHIVER_REVERSE") == "1" {
		order = []int{8, 1}
	}
	for _, kind := range []string{"local", "s3", "s3+20ms", "s3+50ms"} {
		for _, par := range order {
			b.Run(fmt.Sprintf("%s/parallel=%d", kind, par), func(b *testing.B) {
				run(b, func(b *testing.B, dir string) (archsim.Command, func(testing.TB) int) {
					store := newBackend(b, kind, dir, servers.plain)
					spool := filepath.Join(dir, "spool")
					argv := append(append([]string{bin}, store.flags()...), "--parallel", fmt.Sprint(par), "--spool", spool, "%p", "%f")
					return withEnv(archsim.Argv(argv...), store.env()), func(t testing.TB) int { return len(storedSegments(t, store)) }
				})
			})
		}
		for _, tool := range tools {
			if !tool.supports(kind) {
				continue
			}
			b.Run(kind+"/"+tool.name, func(b *testing.B) {
				run(b, func(b *testing.B, dir string) (archsim.Command, func(testing.TB) int) {
					r := newPeerRepo(b, tool, kind, dir, servers)
					r.create(b, data, false)
					return withEnv(archsim.Argv(r.archive(data)...), r.env(data)), r.stored
				})
			})
		}
		if kind == "local" {
			b.Run("local/cpsyncmv", func(b *testing.B) {
				run(b, func(b *testing.B, dir string) (archsim.Command, func(testing.TB) int) {
					repo := filepath.Join(dir, "repo")
					os.MkdirAll(repo, 0o755)
					return archsim.Argv("sh", "-c", cpSyncMv(repo), "sh", "%p", "%f"), nil
				})
			})
		}
	}
}

// cpSyncMv is the shell body of the durable, atomic cp-based
// archive_command (%p and %f as $1 and $2), archiving into dir.
func cpSyncMv(dir string) string {
	return fmt.Sprintf(`test ! -f %[1]s/"$2" && cp "$1" %[1]s/"$2".tmp && sync %[1]s/"$2".tmp && mv %[1]s/"$2".tmp %[1]s/"$2"`, dir)
}
