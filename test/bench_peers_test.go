package test

import (
	"crypto/tls"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/wal"
)

// The peers are the other archivers the benchmarks run beside walship, on
// the same storage, in the same run, each set up for throughput the way
// its documentation describes, with the same compression class and
// durability as walship where the tool allows it:
//
//   - pgBackRest (the `pgbackrest` in PATH, or $PGBACKREST_BIN):
//     archive-async=y and process-max=4 for archive-push and archive-get
//     (whose queue, archive-get-queue-max, is 128MiB by default: 8
//     segments), compress-type=lz4. A posix repository, which pgBackRest
//     always fsyncs, or S3 over HTTPS, the only protocol it speaks to S3:
//     a second S3 server with a self-signed certificate, and
//     repo1-storage-verify-tls=n.
//   - WAL-G, only when $WALG_BIN names a wal-g binary (for PostgreSQL):
//     wal-push with WALG_UPLOAD_CONCURRENCY=8, wal-fetch with
//     WALG_DOWNLOAD_CONCURRENCY=8 (the number of segments it prefetches),
//     WALG_COMPRESSION_METHOD=lz4 and WALG_PREVENT_WAL_OVERWRITE (refuse
//     different content under an archived name, as walship does). S3 over
//     plain HTTP, like walship; WAL-G only on S3.
//
// $BENCH_PEERS (default "pgbackrest walg") chooses which of them run.

// peerTool is one peer installed here.
type peerTool struct {
	name string // the sub-benchmark's name: pgbackrest, walg
	bin  string
}

// peerTools lists the peers that are installed and asked for, and logs
// once why each of the others is left out.
func peerTools(t testing.TB) []peerTool {
	want := strings.Fields(os.Getenv("BENCH_PEERS"))
	if _, set := os.LookupEnv("BENCH_PEERS"); !set {
		want = []string{"pgbackrest", "walg"}
	}
	var out []peerTool
	if slices.Contains(want, "pgbackrest") {
		if bin, err := pgBackRestBin(); err != nil {
			peerNote(t, "pgBackRest left out: %v", err)
		} else {
			peerNote(t, "pgBackRest %s (%s)", pgBackRestVersion(bin), bin)
			out = append(out, peerTool{"pgbackrest", bin})
		}
	}
	if slices.Contains(want, "walg") {
		if bin, err := walgBin(); err != nil {
			peerNote(t, "WAL-G left out: %v", err)
		} else {
			peerNote(t, "WAL-G %s (WALG_BIN=%s)", walgVersion(bin), bin)
			out = append(out, peerTool{"walg", bin})
		}
	}
	return out
}

var peerNotes sync.Map

// peerNote prints a line (once per test process) for the bench scripts,
// which copy it under the tables. Call it before any sub-benchmark runs
// (go test prints a benchmark's name before its figures, on one line).
func peerNote(t testing.TB, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if _, seen := peerNotes.LoadOrStore(msg, true); !seen {
		fmt.Printf("peer-note: %s\n", msg)
	}
}

func pgBackRestBin() (string, error) {
	if p := os.Getenv("PGBACKREST_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("pgbackrest")
	if err != nil {
		return "", fmt.Errorf("no pgbackrest in PATH (Debian package pgbackrest; scripts/install-peers.sh installs it)")
	}
	return p, nil
}

func walgBin() (string, error) {
	p := os.Getenv("WALG_BIN")
	if p == "" {
		return "", fmt.Errorf("WALG_BIN does not name a wal-g binary")
	}
	if out, err := exec.Command(p, "--version").CombinedOutput(); err != nil {
		return "", fmt.Errorf("WALG_BIN=%s: %v: %s", p, err, strings.TrimSpace(string(out)))
	}
	return p, nil
}

// supports says whether a peer runs on a benchmark's target.
func (p peerTool) supports(kind string) bool {
	return p.name == "pgbackrest" || kind != "local" // WAL-G only on S3
}

// benchServers are the S3 servers of one benchmark: walship and WAL-G
// speak plain HTTP to one, pgBackRest HTTPS to the other (on the same
// machine, started when first needed).
type benchServers struct {
	plain func() *s3test.Server
	t     testing.TB
	https *s3test.Server
}

func newBenchServers(t testing.TB) *benchServers {
	return &benchServers{plain: s3Server(t), t: t}
}

func (s *benchServers) tls() *s3test.Server {
	if s.https == nil {
		cert, key := s3test.SelfSignedCert(s.t, s.t.TempDir())
		s.https = s3test.StartTLSServer(s.t, cert, key)
	}
	return s.https
}

// peerRepo is one peer's fresh archive for the benchmarks: the commands
// PostgreSQL (or archsim) runs and the environment they need.
type peerRepo struct {
	tool  peerTool
	kind  string
	where string // the bucket, or the local directory
	// archive and restore are archive_command (%p) and restore_command
	// (%f, %p) for the cluster in dataDir, as argv.
	archive, restore func(dataDir string) []string
	// env is what these commands need in their environment.
	env func(dataDir string) []string
	// create prepares the archive for the cluster in dataDir (pgBackRest's
	// stanza-create); asServer runs it as the server's user.
	create func(t testing.TB, dataDir string, asServer bool)
	// prefetched is where the look-ahead of restore leaves files (for the
	// cluster in dataDir): a recovery that did not create it did not
	// prefetch.
	prefetched func(dataDir string) string
	// stored counts the WAL segments in the archive, compressed with lz4.
	stored func(t testing.TB) int
	// push stores one WAL file (an absolute path) of the cluster in
	// dataDir, serially and synchronously, as the server's user: how the
	// recovery benchmark fills the archive.
	push func(t testing.TB, dataDir, path string)
}

// archiveCommand and restoreCommand are the postgresql.conf lines.
func (r *peerRepo) archiveCommand(dataDir string) string {
	return fmt.Sprintf("archive_command = '%s'", strings.Join(r.archive(dataDir), " "))
}

func (r *peerRepo) restoreCommand(dataDir string) string {
	return fmt.Sprintf("restore_command = '%s'", strings.Join(r.restore(dataDir), " "))
}

// newPeerRepo is a fresh archive of tool on kind (local, s3, s3+<N>ms),
// its files in base (owned by the server's user).
func newPeerRepo(t testing.TB, tool peerTool, kind, base string, srv *benchServers) *peerRepo {
	t.Helper()
	return peerRepoIn(t, tool, kind, base, srv, "")
}

// through is the same archive as r (on S3: the same bucket; locally: the
// same directory) reached as kind (s3+20ms: through a proxy), with its own
// configuration, spool and logs in base.
func (r *peerRepo) through(t testing.TB, kind, base string, srv *benchServers) *peerRepo {
	t.Helper()
	if (r.kind == "local") != (kind == "local") {
		t.Fatalf("%s on %s cannot be reached as %s", r.tool.name, r.kind, kind)
	}
	return peerRepoIn(t, r.tool, kind, base, srv, r.where)
}

// peerRepoIn is newPeerRepo in the archive where (a bucket, a local
// directory) when it is not empty.
func peerRepoIn(t testing.TB, tool peerTool, kind, base string, srv *benchServers, where string) *peerRepo {
	t.Helper()
	switch tool.name {
	case "pgbackrest":
		return newPgBackRestRepo(t, tool, kind, base, srv, where)
	case "walg":
		return newWALGRepo(t, tool, kind, base, srv, where)
	}
	t.Fatalf("no peer %q", tool.name)
	return nil
}

// peerEndpoint is where a peer reaches the archive of kind on srv: the
// server itself, or a proxy adding the kind's latency.
func peerEndpoint(t testing.TB, kind string, srv *s3test.Server) string {
	t.Helper()
	if d, ok := kindLatency(kind); ok {
		if strings.HasPrefix(srv.Endpoint, "https:") {
			return latencyProxyTLS(t, srv.Endpoint, d)
		}
		return latencyProxy(t, srv.Endpoint, d)
	}
	if kind != "s3" {
		t.Fatalf("no S3 kind %q", kind)
	}
	return srv.Endpoint
}

func newPgBackRestRepo(t testing.TB, tool peerTool, kind, base string, srv *benchServers, where string) *peerRepo {
	t.Helper()
	dir := pgtest.Mkdir(t, filepath.Join(base, "pgbackrest"))
	spool := pgtest.Mkdir(t, filepath.Join(dir, "spool"))
	conf := []string{
		"[global]",
		"compress-type=lz4",
		"archive-async=y",
		"process-max=4",
		"spool-path=" + spool,
		"lock-path=" + pgtest.Mkdir(t, filepath.Join(dir, "lock")),
		"log-path=" + pgtest.Mkdir(t, filepath.Join(dir, "log")),
		"log-level-console=warn",
		"log-level-file=off",
	}
	var stored func(t testing.TB) int
	if kind == "local" {
		if where == "" {
			where = pgtest.Mkdir(t, filepath.Join(dir, "repo"))
		}
		conf = append(conf, "repo1-path="+where)
		stored = func(t testing.TB) int { return localLZ4Segments(t, where) }
	} else {
		s := srv.tls()
		u, err := url.Parse(peerEndpoint(t, kind, s))
		if err != nil {
			t.Fatal(err)
		}
		if where == "" {
			where = s.NewBucket(t)
		}
		bucket := where
		stored = func(t testing.TB) int { return bucketLZ4Segments(t, s, bucket) }
		conf = append(conf, "repo1-type=s3", "repo1-path=/pgbackrest",
			"repo1-s3-bucket="+where, "repo1-s3-endpoint="+u.Hostname(), "repo1-storage-port="+u.Port(),
			"repo1-s3-region="+s.Region, "repo1-s3-uri-style=path", "repo1-storage-verify-tls=n",
			"repo1-s3-key="+s.AccessKey, "repo1-s3-key-secret="+s.SecretKey)
	}
	conf = append(conf, "", "[main]", "")
	file := filepath.Join(dir, "pgbackrest.conf")
	if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := func(dataDir string, more ...string) []string {
		return append([]string{tool.bin, "--config=" + file, "--stanza=main", "--pg1-path=" + dataDir}, more...)
	}
	return &peerRepo{
		tool:    tool,
		kind:    kind,
		where:   where,
		archive: func(d string) []string { return argv(d, "archive-push", "%p") },
		restore: func(d string) []string { return argv(d, "archive-get", "%f", "%p") },
		env:     func(string) []string { return nil },
		stored:  stored,
		// archive-get's queue
		prefetched: func(string) string { return filepath.Join(spool, "archive", "main", "in") },
		create: func(t testing.TB, d string, asServer bool) {
			runPeer(t, asServer, nil, argv(d, "--no-online", "stanza-create")...)
		},
		push: func(t testing.TB, d, path string) {
			runPeer(t, true, nil, argv(d, "--no-archive-async", "archive-push", path)...)
		},
	}
}

var pgBackRestVersions sync.Map

func pgBackRestVersion(bin string) string {
	if v, ok := pgBackRestVersions.Load(bin); ok {
		return v.(string)
	}
	out, _ := exec.Command(bin, "version").Output()
	v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "pgBackRest"))
	pgBackRestVersions.Store(bin, v)
	return v
}

func newWALGRepo(t testing.TB, tool peerTool, kind, base string, srv *benchServers, bucket string) *peerRepo {
	t.Helper()
	if kind == "local" {
		t.Fatal("WAL-G runs on S3 only here")
	}
	s := srv.plain()
	if bucket == "" {
		bucket = s.NewBucket(t)
	}
	env := []string{
		"WALG_S3_PREFIX=s3://" + bucket + "/walg",
		"AWS_ENDPOINT=" + peerEndpoint(t, kind, s),
		"AWS_S3_FORCE_PATH_STYLE=true",
		"AWS_REGION=" + s.Region,
		"WALG_COMPRESSION_METHOD=lz4",
		"WALG_UPLOAD_CONCURRENCY=8",
		"WALG_DOWNLOAD_CONCURRENCY=8",
		"WALG_PREVENT_WAL_OVERWRITE=true",
	}
	for _, kv := range s.Env() {
		if strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	withData := func(d string) []string { return append(slices.Clone(env), "PGDATA="+d) }
	return &peerRepo{
		tool:    tool,
		kind:    kind,
		where:   bucket,
		archive: func(string) []string { return []string{tool.bin, "wal-push", "%p"} },
		restore: func(string) []string { return []string{tool.bin, "wal-fetch", "%f", "%p"} },
		env:     withData,
		stored:  func(t testing.TB) int { return bucketLZ4Segments(t, s, bucket) },
		// WAL-G's default prefetch directory, beside %p
		prefetched: func(d string) string { return filepath.Join(d, "pg_wal", ".wal-g", "prefetch") },
		create:     func(testing.TB, string, bool) {},
		push: func(t testing.TB, d, path string) {
			runPeer(t, true, append(withData(d), "WALG_UPLOAD_CONCURRENCY=1"), tool.bin, "wal-push", path)
		},
	}
}

var walgVersions sync.Map

func walgVersion(bin string) string {
	if v, ok := walgVersions.Load(bin); ok {
		return v.(string)
	}
	out, _ := exec.Command(bin, "--version").Output()
	v := ""
	for _, f := range strings.Fields(string(out)) {
		if strings.HasPrefix(f, "v") && strings.Count(f, ".") >= 2 {
			v = f
			break
		}
	}
	walgVersions.Store(bin, v)
	return v
}

// isLZ4Segment says whether an object's name is a WAL segment's, with the
// .lz4 suffix (and perhaps a checksum: pgBackRest's NAME-SHA1.lz4).
func isLZ4Segment(key string) bool {
	base, ok := strings.CutSuffix(path.Base(key), ".lz4")
	if len(base) < 24 || !ok {
		return false
	}
	_, err := wal.ParseName(base[:24])
	return err == nil && (len(base) == 24 || base[24] == '-')
}

// localLZ4Segments counts the lz4 segments under dir.
func localLZ4Segments(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && isLZ4Segment(p) {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// bucketLZ4Segments counts the lz4 segments in a bucket of srv.
func bucketLZ4Segments(t testing.TB, srv *s3test.Server, bucket string) int {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	n := 0
	pages := awss3.NewListObjectsV2Paginator(srv.Client(), &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing bucket %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			if isLZ4Segment(aws.ToString(o.Key)) {
				n++
			}
		}
	}
	return n
}

// runPeer runs a peer's command with env, as the server's user when
// asServer (else as the test process), and fails the test if it fails.
func runPeer(t testing.TB, asServer bool, env []string, argv ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if asServer {
		cmd = pgtest.Command(t, argv[0], argv[1:]...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// latencyProxyTLS is latencyProxy for an HTTPS server: it serves HTTPS
// itself (with httptest's certificate) and does not verify the server's.
func latencyProxyTLS(t testing.TB, target string, d time.Duration) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	rp.Transport = tr
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(d)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
