package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	s3store "github.com/walship/walship/storage/s3"
	"github.com/walship/walship/wal"
)

// archiveBackend is one archive the end-to-end scenarios run on: a local
// directory or a prefix of an S3 bucket, set up the way a DBA would. A
// scenario is written once against it (with the helpers below) and run on
// every backend by forEachBackend.
type archiveBackend interface {
	// String is how walship names the archive in its messages: the
	// directory, or s3://bucket/prefix.
	String() string
	// flags point a walship binary at the archive: --repo DIR, or
	// --config FILE (the endpoint and repository in a TOML file).
	flags() []string
	// env is what the server's environment (and so archive_command and
	// restore_command) needs to reach the archive: S3 credentials.
	env() []string
	// secrets are values that must never show in a log line.
	secrets() []string
	// repo opens the archive in the test's process, apart from the binaries.
	repo(t testing.TB) *repo.Repo
	// store is the storage backend under repo, for what is not WAL.
	store(t testing.TB) storage.Backend
	// objects lists everything stored, below the storage layer (temporary
	// and partial files included), as key -> a state that changes whenever
	// the object does. Keys are relative to the archive's root, directories
	// end in "/", and an object outside the root is named by its full
	// location, which no WAL key matches.
	objects(t testing.TB) map[string]string
}

// backends are the kinds every scenario runs on, as subtests of these names.
var backends = []string{"local", "s3"}

// forEachBackend runs scenario as one subtest per backend, each in a fresh
// directory base (owned by the server's user) with a fresh, empty archive.
// The s3 subtest starts its own S3 server; without one it is skipped, and
// under CI=true it fails.
func forEachBackend(t *testing.T, scenario func(t *testing.T, base string, store archiveBackend)) {
	for _, kind := range backends {
		t.Run(kind, func(t *testing.T) {
			pgtest.Require(t)
			base := pgtest.Dir(t)
			scenario(t, base, newBackend(t, kind, base, s3Server(t)))
		})
	}
}

// newBackend is a fresh, empty archive of the named kind: "local" (the
// directory base/repo, not created in advance), "s3" (a new bucket on
// srv()) or "s3+20ms", "s3+50ms", ... (the same through a proxy that
// delays each request by that long, the round trip a loopback server
// lacks). Files the archive needs (the S3 config file) go in base.
func newBackend(t testing.TB, kind, base string, srv func() *s3test.Server) archiveBackend {
	t.Helper()
	switch d, ok := kindLatency(kind); {
	case kind == "local":
		return localBackend{dir: filepath.Join(base, "repo")}
	case kind == "s3":
		return newS3Backend(t, srv(), base, "pg/main")
	case ok:
		s := srv()
		return newS3Backend(t, s, base, "pg/main").through(t, base, latencyProxy(t, s.Endpoint, d))
	}
	t.Fatalf("no archive backend %q", kind)
	return nil
}

// kindLatency is the round trip a backend kind "s3+<N>ms" adds to every
// request (N milliseconds); ok is false for any other kind.
func kindLatency(kind string) (d time.Duration, ok bool) {
	ms, ok := strings.CutPrefix(kind, "s3+")
	if !ok {
		return 0, false
	}
	ms, ok = strings.CutSuffix(ms, "ms")
	n, err := strconv.Atoi(ms)
	if !ok || err != nil || n <= 0 {
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// s3Server starts one S3 server for t the first time it is called, and
// returns the same one after that.
func s3Server(t testing.TB) func() *s3test.Server {
	var srv *s3test.Server
	return func() *s3test.Server {
		t.Helper()
		if srv == nil {
			srv = s3test.StartServer(t)
		}
		return srv
	}
}

// commandLine is the postgresql.conf line running prog (walship-archive
// or walship-restore) on the archive with flags.
func commandLine(t testing.TB, store archiveBackend, prog string, flags ...string) string {
	args := strings.Join(append(append([]string{pgtest.Bin(t, prog)}, store.flags()...), flags...), " ")
	if prog == "walship-archive" {
		return fmt.Sprintf("archive_command = '%s %%p %%f'", args)
	}
	return fmt.Sprintf("restore_command = '%s %%f %%p'", args)
}

// newCluster is a new cluster in base whose server can reach the archive.
func newCluster(t testing.TB, store archiveBackend, base, name string) *pgtest.Cluster {
	t.Helper()
	c := pgtest.NewCluster(t, base, name, pgtest.InitOptions{})
	c.Env = store.env()
	return c
}

// archivingPrimary is a started cluster that archives every segment with
// walship-archive into store (archive_timeout off: segments switch when a
// test says so), with archiveFlags added to the command.
func archivingPrimary(t testing.TB, store archiveBackend, base, name string, archiveFlags ...string) *pgtest.Cluster {
	t.Helper()
	c := newCluster(t, store, base, name)
	c.Conf("archive_mode = on", commandLine(t, store, "walship-archive", archiveFlags...), "archive_timeout = 0")
	c.Start()
	return c
}

// ioContext bounds one in-process look at an archive.
func ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// storedSegments lists the WAL segments in the archive, in order.
func storedSegments(t testing.TB, store archiveBackend) []wal.Name {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	var out []wal.Name
	err := store.repo(t).List(ctx, func(e repo.Entry) error {
		if e.Name.Kind == wal.KindSegment {
			out = append(out, e.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", store, err)
	}
	return out
}

// segmentSet is storedSegments as a set of names.
func segmentSet(t testing.TB, store archiveBackend) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, n := range storedSegments(t, store) {
		got[n.String()] = true
	}
	return got
}

// readWAL reads a WAL file from the archive in the test's process
// (decoded and checksummed by the repo package).
func readWAL(t testing.TB, store archiveBackend, n wal.Name) ([]byte, error) {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	o, err := store.repo(t).Open(ctx, n)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// readIdentity reads the archive's identity file, parsed and as stored.
func readIdentity(t testing.TB, store archiveBackend) (repo.Identity, []byte) {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	rc, err := store.store(t).Open(ctx, repo.IdentityKey)
	if err != nil {
		t.Fatalf("reading the identity file of %s: %v", store, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading the identity file of %s: %v", store, err)
	}
	var id repo.Identity
	if err := json.Unmarshal(data, &id); err != nil {
		t.Fatalf("identity file %q of %s: %v", data, store, err)
	}
	return id, data
}

// leftovers lists what the archive holds besides its identity file and
// WAL objects: temporary or partial files, objects outside its root.
func leftovers(t testing.TB, store archiveBackend) []string {
	t.Helper()
	var out []string
	for key := range store.objects(t) {
		if strings.HasSuffix(key, "/") || key == repo.IdentityKey {
			continue
		}
		if _, _, _, ok := repo.ParseKey(key); !ok {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

// sameObjects fails the test for every object that appeared, disappeared
// or changed between two listings of objects.
func sameObjects(t testing.TB, what string, before, after map[string]string) {
	t.Helper()
	for k, b := range before {
		if a, ok := after[k]; !ok {
			t.Errorf("%s: %s disappeared", what, k)
		} else if a != b {
			t.Errorf("%s: %s changed: %s, was %s", what, k, a, b)
		}
	}
	for k, a := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: %s appeared (%s)", what, k, a)
		}
	}
}

// restoreFrom runs walship-restore for name from the archive as the server
// would (in a data directory, into pg_wal/RECOVERYXLOG) and returns the
// restored bytes.
func restoreFrom(t *testing.T, store archiveBackend, name string) []byte {
	t.Helper()
	r, data, wrote := restoreInto(t, store.env(), false, name, store.flags()...)
	wantOK(t, "walship-restore "+name+" from "+store.String(), r)
	if !wrote {
		t.Errorf("walship-restore %s from %s wrote no pg_wal/RECOVERYXLOG", name, store)
	}
	return data
}

// localBackend is a repository in a local directory.
type localBackend struct{ dir string }

func (b localBackend) String() string    { return b.dir }
func (b localBackend) flags() []string   { return []string{"--repo", b.dir} }
func (b localBackend) env() []string     { return nil }
func (b localBackend) secrets() []string { return nil }

func (b localBackend) repo(t testing.TB) *repo.Repo {
	t.Helper()
	return repo.New(b.store(t), repo.Options{Layout: repo.LayoutAuto})
}

func (b localBackend) store(t testing.TB) storage.Backend {
	t.Helper()
	lb, err := local.New(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	return lb
}

// objects lists every file and directory, dot-files included; the state is
// mode, size and modification time.
func (b localBackend) objects(t testing.TB) map[string]string {
	t.Helper()
	got := map[string]string{}
	for rel, st := range snapshot(t, b.dir) {
		key := filepath.ToSlash(rel)
		if st.mode.IsDir() {
			key += "/"
		}
		got[key] = fmt.Sprintf("%v %d bytes %s", st.mode, st.size, st.mtime.Format(time.RFC3339Nano))
	}
	return got
}

// s3Backend is a prefix of a bucket on a real S3 server, set up the way a
// DBA would: endpoint and repository in a TOML file that archive_command
// and restore_command name with --config, credentials in the server's
// environment.
type s3Backend struct {
	srv            *s3test.Server
	bucket, prefix string
	url            string   // s3://bucket/prefix
	conf           string   // the config file, readable by the server's user
	creds          []string // AWS_* settings for the environment
	endpoint       string   // where the programs reach it (a proxy), when not the server
}

// newS3Backend is prefix of a new bucket on srv, its config file in dir.
func newS3Backend(t testing.TB, srv *s3test.Server, dir, prefix string) *s3Backend {
	t.Helper()
	a := &s3Backend{srv: srv, bucket: srv.NewBucket(t), prefix: prefix}
	a.url = "s3://" + a.bucket + "/" + prefix
	a.conf = a.confFor(t, dir, srv.Endpoint)
	for _, kv := range srv.Env() {
		if strings.HasPrefix(kv, "AWS_") {
			a.creds = append(a.creds, kv)
		}
	}
	return a
}

// confFor writes the config file that reaches the archive at endpoint.
func (a *s3Backend) confFor(t testing.TB, dir, endpoint string) string {
	return confFile(t, dir, fmt.Sprintf("# walship's S3 archive; credentials come from the environment\n"+
		"repo = '%s'\ns3-endpoint = '%s'\ns3-region = '%s'\ns3-path-style = true\n", a.url, endpoint, a.srv.Region))
}

// through is the same archive reached through another endpoint (a proxy).
func (a *s3Backend) through(t testing.TB, dir, endpoint string) *s3Backend {
	c := *a
	c.conf = a.confFor(t, dir, endpoint)
	c.endpoint = endpoint
	return &c
}

func (a *s3Backend) String() string    { return a.url }
func (a *s3Backend) flags() []string   { return []string{"--config", a.conf} }
func (a *s3Backend) env() []string     { return a.creds }
func (a *s3Backend) secrets() []string { return []string{a.srv.SecretKey} }

func (a *s3Backend) repo(t testing.TB) *repo.Repo {
	t.Helper()
	return repo.New(a.store(t), repo.Options{Layout: repo.LayoutAuto})
}

func (a *s3Backend) store(t testing.TB) storage.Backend {
	t.Helper()
	return a.storeAt(t, a.srv.Endpoint)
}

// reached is the store as the programs reach it: through the proxy when
// there is one (store goes to the server straight).
func (a *s3Backend) reached(t testing.TB) storage.Backend {
	t.Helper()
	if a.endpoint == "" {
		return a.store(t)
	}
	return a.storeAt(t, a.endpoint)
}

func (a *s3Backend) storeAt(t testing.TB, endpoint string) storage.Backend {
	t.Helper()
	pathStyle := true
	b, err := s3store.New(context.Background(), s3store.Config{Bucket: a.bucket, Prefix: a.prefix,
		Endpoint: endpoint, Region: a.srv.Region, PathStyle: &pathStyle,
		Credentials: credentials.NewStaticCredentialsProvider(a.srv.AccessKey, a.srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// objects lists every object of the whole bucket; the state is size and
// ETag. Objects outside the prefix are named s3://bucket/key.
func (a *s3Backend) objects(t testing.TB) map[string]string {
	t.Helper()
	ctx, cancel := ioContext()
	defer cancel()
	got := map[string]string{}
	pages := awss3.NewListObjectsV2Paginator(a.srv.Client(), &awss3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing bucket %s: %v", a.bucket, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			rel, ok := strings.CutPrefix(key, a.prefix+"/")
			if !ok {
				rel = "s3://" + a.bucket + "/" + key
			}
			got[rel] = fmt.Sprintf("%d bytes, ETag %s", aws.ToInt64(o.Size), aws.ToString(o.ETag))
		}
	}
	return got
}
