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
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/archsim"
	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

const benchSegments = 200

var (
	benchWALOnce sync.Once
	benchWALDir  string
)

// benchDataDir is a data directory whose pg_wal holds benchSegments 16MB
// segments, made once per test process and reset to "all ready" on each
// call. The content is WAL-like: compressible, not trivially so.
func benchDataDir(b *testing.B) string {
	b.Helper()
	benchWALOnce.Do(func() {
		dir, err := os.MkdirTemp("", "walship-bench-wal-")
		if err != nil {
			b.Fatal(err)
		}
		walDir := filepath.Join(dir, "pg_wal")
		os.MkdirAll(filepath.Join(walDir, "archive_status"), 0o700)
		const segSize = 16 << 20
		rng := rand.New(rand.NewPCG(5, 6))
		n := wal.SegmentFromNo(1, 1, segSize)
		for i := 0; i < benchSegments; i++ {
			seg := waltest.FakeSegment(n, 7000000000000000002, segSize, func(p []byte) {
				for j := 0; j < len(p); j += 24 {
					p[j], p[j+1], p[j+2] = byte(rng.IntN(256)), byte(i), byte(j>>13)
				}
			})
			if err := os.WriteFile(filepath.Join(walDir, n.String()), seg, 0o600); err != nil {
				b.Fatal(err)
			}
			n = n.Next(segSize)
		}
		benchWALDir = dir
	})
	statusDir := filepath.Join(benchWALDir, "pg_wal", "archive_status")
	os.RemoveAll(statusDir)
	os.MkdirAll(statusDir, 0o700)
	entries, _ := os.ReadDir(filepath.Join(benchWALDir, "pg_wal"))
	for _, e := range entries {
		if !e.IsDir() {
			os.WriteFile(filepath.Join(statusDir, e.Name()+".ready"), nil, 0o600)
		}
	}
	return benchWALDir
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

// BenchmarkArchiver drives walship-archive exactly like PostgreSQL's
// archiver over a pg_wal with 200 ready 16MB segments (one process per
// segment, in order, .ready renamed to .done on success), serially and
// with --parallel 8, to a local repository and to a real S3 server (also
// behind a proxy adding a real region's round trip). It reports segments
// per second.
func BenchmarkArchiver(b *testing.B) {
	bin := pgtest.Bin(b, "walship-archive")
	server := s3Server(b) // one for every sub-benchmark
	for _, kind := range []string{"local", "s3", "s3+20ms"} {
		for _, par := range []int{1, 8} {
			b.Run(fmt.Sprintf("%s/parallel=%d", kind, par), func(b *testing.B) {
				var segs, secs float64
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					data := benchDataDir(b)
					dir := b.TempDir()
					store := newBackend(b, kind, dir, server)
					spool := filepath.Join(dir, "spool")
					argv := archsim.Argv(append(append([]string{bin}, store.flags()...), "--parallel", fmt.Sprint(par), "--spool", spool, "%p", "%f")...)
					cmd := func(ctx context.Context, dataDir, p, f string) *exec.Cmd {
						c := argv(ctx, dataDir, p, f)
						c.Env = append(os.Environ(), store.env()...)
						return c
					}
					b.StartTimer()
					st, err := archsim.Run(context.Background(), data, cmd)
					if err != nil {
						b.Fatal(err)
					}
					if st.Archived != benchSegments {
						b.Fatalf("archived %d, want %d", st.Archived, benchSegments)
					}
					segs += float64(st.Archived)
					secs += st.Elapsed.Seconds()
				}
				b.ReportMetric(segs/secs, "segments/s")
			})
		}
	}
}
