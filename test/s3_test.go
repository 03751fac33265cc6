package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/repo"
	s3store "github.com/walship/walship/storage/s3"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// s3Archive is a prefix of a bucket on a real S3 server, set up the way a
// DBA would: endpoint and repository in a TOML file that archive_command and
// restore_command name with --config, credentials in the server's
// environment.
type s3Archive struct {
	srv            *s3test.Server
	bucket, prefix string
	url            string   // s3://bucket/prefix
	conf           string   // the config file, readable by the server's user
	creds          []string // AWS_* settings for the environment
}

func newS3Archive(t testing.TB, srv *s3test.Server, dir, prefix string) *s3Archive {
	t.Helper()
	a := &s3Archive{srv: srv, bucket: srv.NewBucket(t), prefix: prefix}
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
func (a *s3Archive) confFor(t testing.TB, dir, endpoint string) string {
	return confFile(t, dir, fmt.Sprintf("# walship's S3 archive; credentials come from the environment\n"+
		"repo = '%s'\ns3-endpoint = '%s'\ns3-region = '%s'\ns3-path-style = true\n", a.url, endpoint, a.srv.Region))
}

// through is the same archive reached through another endpoint (a proxy).
func (a *s3Archive) through(t testing.TB, dir, endpoint string) *s3Archive {
	c := *a
	c.conf = a.confFor(t, dir, endpoint)
	return &c
}

// line is the postgresql.conf line running prog (walship-archive or
// walship-restore) on the archive with flags.
func (a *s3Archive) line(t testing.TB, prog string, flags ...string) string {
	args := strings.Join(append([]string{pgtest.Bin(t, prog), "--config", a.conf}, flags...), " ")
	if prog == "walship-archive" {
		return fmt.Sprintf("archive_command = '%s %%p %%f'", args)
	}
	return fmt.Sprintf("restore_command = '%s %%f %%p'", args)
}

// cluster is a new cluster in base whose server has the credentials.
func (a *s3Archive) cluster(t testing.TB, base, name string) *pgtest.Cluster {
	c := pgtest.NewCluster(t, base, name, pgtest.InitOptions{})
	c.Env = a.creds
	return c
}

// repo opens the archive in the test's process, apart from the binaries.
func (a *s3Archive) repo(t *testing.T) *repo.Repo {
	t.Helper()
	pathStyle := true
	b, err := s3store.New(context.Background(), s3store.Config{Bucket: a.bucket, Prefix: a.prefix,
		Endpoint: a.srv.Endpoint, Region: a.srv.Region, PathStyle: &pathStyle,
		Credentials: credentials.NewStaticCredentialsProvider(a.srv.AccessKey, a.srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return repo.New(b, repo.LayoutAuto)
}

// segments lists the WAL segments in the archive, in order.
func (a *s3Archive) segments(t *testing.T) []wal.Name {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []wal.Name
	err := a.repo(t).List(ctx, func(e repo.Entry) error {
		if e.Name.Kind == wal.KindSegment {
			out = append(out, e.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", a.url, err)
	}
	return out
}

// objects lists every object of the bucket as key -> "size etag".
func (a *s3Archive) objects(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := map[string]string{}
	pages := awss3.NewListObjectsV2Paginator(a.srv.Client(), &awss3.ListObjectsV2Input{Bucket: aws.String(a.bucket)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing bucket %s: %v", a.bucket, err)
		}
		for _, o := range page.Contents {
			got[aws.ToString(o.Key)] = fmt.Sprintf("%d %s", aws.ToInt64(o.Size), aws.ToString(o.ETag))
		}
	}
	return got
}

// checkOnlyWAL fails the test for any object that is neither the identity
// file nor a WAL object under the archive's prefix (a temporary or partial
// upload left behind).
func (a *s3Archive) checkOnlyWAL(t *testing.T) {
	t.Helper()
	for key := range a.objects(t) {
		rel, ok := strings.CutPrefix(key, a.prefix+"/")
		if _, _, _, isWAL := repo.ParseKey(rel); !ok || (!isWAL && rel != repo.IdentityKey) {
			t.Errorf("bucket %s holds %s, which is no WAL object of %s", a.bucket, key, a.url)
		}
	}
}

// identity reads the archive's identity file from the bucket.
func (a *s3Archive) identity(t *testing.T) (repo.Identity, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := a.srv.Client().GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(a.bucket), Key: aws.String(a.prefix + "/" + repo.IdentityKey)})
	if err != nil {
		t.Fatalf("reading the identity file: %v", err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	var id repo.Identity
	if err := json.Unmarshal(data, &id); err != nil {
		t.Fatalf("identity file %q: %v", data, err)
	}
	return id, data
}

// TestS3ArchiveUnderLoadThenPITR is the core promise on S3: a primary
// archives into s3://bucket/prefix under pgbench load without a failure,
// every segment it reports archived is in the bucket and nothing else is,
// and a base backup restored with walship-restore from the bucket reaches a
// named restore point with exactly the primary's data at that point.
func TestS3ArchiveUnderLoadThenPITR(t *testing.T) {
	pgtest.Require(t)
	srv := s3test.StartServer(t)
	base := pgtest.Dir(t)
	a := newS3Archive(t, srv, base, "pg/main")
	p := a.cluster(t, base, "primary")
	p.Conf("archive_mode = on", a.line(t, "walship-archive"), "archive_timeout = 0")
	p.Start()

	p.Pgbench("-i", "-s", "5", "-q")
	backup := p.BaseBackup(base, "restored")
	backup.Env = a.creds
	p.Pgbench("-c", "4", "-j", "2", "-t", "1500", "-n")
	p.Query("CREATE TABLE marker AS SELECT count(*) AS n, sum(abalance) AS s FROM pgbench_accounts")
	want := p.Query("SELECT n || ':' || s FROM marker")
	p.Query("SELECT pg_create_restore_point('before_damage')")
	p.Query("UPDATE pgbench_accounts SET abalance = abalance + 1000000")
	p.Query("DROP TABLE pgbench_history")
	lastSeg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+lastSeg+"' FROM pg_stat_archiver", "t", 120*time.Second)

	if failed := pgStat(p, "failed_count"); failed != 0 {
		t.Errorf("pg_stat_archiver.failed_count = %d, want 0\n%s", failed, p.Log())
	}
	archived := pgStat(p, "archived_count")
	segs := map[string]bool{}
	for _, n := range a.segments(t) {
		segs[n.String()] = true
	}
	for n, _ := wal.ParseName("000000010000000000000001"); n.String() <= lastSeg; n = n.Next(segSize) {
		if !segs[n.String()] {
			t.Errorf("segment %s was archived by the server but is not in %s", n, a.url)
		}
	}
	if int64(len(segs)) > archived {
		t.Errorf("%s holds %d segments, the server archived only %d files", a.url, len(segs), archived)
	}
	a.checkOnlyWAL(t)
	if id, _ := a.identity(t); id.SystemID != sysID(t, p) || id.SegSize != segSize {
		t.Errorf("identity file %+v, want system %d with 16MB segments", id, sysID(t, p))
	}

	restoreToPoint(t, backup, a.line(t, "walship-restore"), want, 180*time.Second)
	noSecret(t, "the primary's log", p.Log(), srv.SecretKey)
	noSecret(t, "the restored server's log", backup.Log(), srv.SecretKey)
	t.Logf("archived %d files, %d segments in %s, restored %s rows:sum", archived, len(segs), a.url, want)
}

// pgbenchLoop runs pgbench against c in short rounds until the returned
// function is called (or the test ends), which waits for the last round and
// fails the test if a round failed.
func pgbenchLoop(t *testing.T, c *pgtest.Cluster) (stop func()) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan error, 1)
	args := []string{"-h", c.Socket, "-p", fmt.Sprint(c.Port), "-U", "postgres", "-c", "2", "-j", "2", "-T", "2", "-n", "postgres"}
	cmd := pgtest.Tool(t, "pgbench")
	go func() {
		for {
			select {
			case <-quit:
				done <- nil
				return
			default:
			}
			if out, err := pgtest.RunErr(t, cmd, args...); err != nil {
				done <- fmt.Errorf("pgbench: %v\n%s", err, out)
				return
			}
		}
	}()
	var once sync.Once
	var err error
	end := func() { once.Do(func() { close(quit); err = <-done }) }
	t.Cleanup(end) // a test that fails early must not leave it running
	return func() {
		t.Helper()
		if end(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestS3Outage stops the S3 server while the primary archives under
// pgbench load. walship-archive fails with exit 1 and one line in the server
// log, the server counts the failures and keeps the WAL; walship-restore
// answers "not found" (1) in a standby and aborts (255) a PITR. Once the
// store is back every segment gets archived, the archive has no gap and no
// damaged object, and a PITR from it to its end has the primary's data.
func TestS3Outage(t *testing.T) {
	pgtest.Require(t)
	srv := s3test.StartServer(t)
	base := pgtest.Dir(t)
	a := newS3Archive(t, srv, base, "outage")
	p := a.cluster(t, base, "primary")
	p.Conf("archive_mode = on", a.line(t, "walship-archive", "--op-timeout", "2s", "--retry-budget", "4s"))
	p.Start()
	p.Pgbench("-i", "-s", "2", "-q")
	backup := p.BaseBackup(base, "restored")
	backup.Env = a.creds

	stopLoad := pgbenchLoop(t, p)
	before := pgStat(p, "archived_count")
	pgtest.Eventually(t, 120*time.Second, "two segments archived under load", func() bool {
		return pgStat(p, "archived_count") >= before+2
	})
	segs := a.segments(t)
	existing := segs[len(segs)-1].String()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	failed := pgStat(p, "failed_count")
	// End the segment under way at once, as archive_timeout would, rather
	// than wait for two clients to fill it.
	p.Query("SELECT pg_switch_wal()")
	pgtest.Eventually(t, 120*time.Second, "the server to retry a failing walship-archive", func() bool {
		return pgStat(p, "failed_count") >= failed+2
	})
	if ready, _ := filepath.Glob(filepath.Join(p.Data, "pg_wal", "archive_status", "*.ready")); len(ready) == 0 {
		t.Errorf("no segment waits for archiving while the store is down")
	}
	// Reading an archived segment while the store is down.
	flags := []string{"--config", a.conf, "--op-timeout", "2s", "--retry-budget", "5s"}
	r, wrote := restoreInto(t, a.creds, true, existing, flags...)
	wantOneLine(t, "restore in a standby, store down", r, []int{1}, "walship-restore", existing)
	r2, wrote2 := restoreInto(t, a.creds, false, existing, flags...)
	wantOneLine(t, "restore in a PITR, store down", r2, []int{255}, "walship-restore", existing)
	if wrote || wrote2 {
		t.Errorf("a failed restore left pg_wal/RECOVERYXLOG behind")
	}

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	resumed := pgStat(p, "archived_count")
	pgtest.Eventually(t, 180*time.Second, "archiving to resume under load", func() bool {
		return pgStat(p, "archived_count") >= resumed+2
	})
	stopLoad()
	state := "SELECT (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts) || '/' || (SELECT count(*) FROM pgbench_history)"
	want := p.Query(state)
	lastSeg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+lastSeg+"' FROM pg_stat_archiver", "t", 180*time.Second)

	// The server saw walship-archive fail with exit 1 and one line each time.
	log := p.Log()
	if !strings.Contains(log, "archive command failed with exit code 1") {
		t.Errorf("the server log shows no archive_command failing with exit code 1")
	}
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
	walshipLines := 0
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		switch {
		case strings.HasPrefix(l, "walship-archive: "):
			walshipLines++
			if !regexp.MustCompile(`[0-9A-F]{24}`).MatchString(l) {
				t.Errorf("walship-archive's line names no WAL file: %q", l)
			}
		case !stamp.MatchString(l):
			t.Errorf("server log line from neither the server nor walship's one-line report: %q", l)
		}
	}
	if walshipLines == 0 {
		t.Errorf("walship-archive wrote no line to the server log while the store was down")
	}
	noSecret(t, "the primary's log", log, srv.SecretKey)

	// No gap, no damaged object.
	segs = a.segments(t)
	sys := sysID(t, p)
	ar := a.repo(t)
	for i, n := range segs {
		if want := wal.SegmentFromNo(1, uint64(i+1), segSize); n != want {
			t.Fatalf("archive has %s where %s belongs: a gap", n, want)
		}
		data, err := readObject(ar, n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		h, err := wal.ParseLongHeader(data)
		if err == nil {
			err = h.CheckName(n)
		}
		if err != nil || len(data) != segSize || h.SysID != sys {
			t.Errorf("%s in the archive: %d bytes, header %+v, %v; want %d bytes of system %d", n, len(data), h, err, segSize, sys)
		}
	}
	if got := segs[len(segs)-1].String(); got < lastSeg {
		t.Errorf("the archive ends at %s, before the last switched segment %s", got, lastSeg)
	}
	a.checkOnlyWAL(t)

	// A PITR to the end of the archive has all of the primary's data.
	backup.Conf(a.line(t, "walship-restore"), "archive_mode = off")
	backup.Touch("recovery.signal")
	backup.Start()
	backup.WaitQuery("SELECT pg_is_in_recovery()", "f", 180*time.Second)
	if got := backup.Query(state); got != want {
		t.Errorf("restored to the end of the archive: %s, want the primary's %s", got, want)
	}
	t.Logf("%d segments archived, %d failed attempts during the outage, restored %s", len(segs), pgStat(p, "failed_count"), want)
}

// readObject reads a WAL file from the archive in the test's process.
func readObject(r *repo.Repo, n wal.Name) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, err := r.Open(ctx, n)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	return io.ReadAll(o)
}

// TestS3BadCredentialsAndMissingBucket runs archive and restore with a wrong
// secret key, an unknown access key, no credentials at all, and a bucket
// that does not exist: each is one clear line without any secret in it, a
// non-zero exit (restore: 255 in a PITR, 1 in a standby), and the bucket is
// left as it was.
func TestS3BadCredentialsAndMissingBucket(t *testing.T) {
	pgtest.Require(t)
	srv := s3test.StartServer(t)
	dir := pgtest.Dir(t)
	a := newS3Archive(t, srv, dir, "pg")
	const sys = 7000000000000000123
	n1 := wal.SegmentFromNo(1, 1, segSize)
	n2 := n1.Next(segSize)
	src := filepath.Join(dir, "src")
	fill := func(p []byte) {
		for i := range p {
			p[i] = byte(i / 7)
		}
	}
	src1 := writeSegment(t, src, n1.String(), waltest.FakeSegment(n1, sys, segSize, fill))
	src2 := writeSegment(t, src, n2.String(), waltest.FakeSegment(n2, sys, segSize, fill))
	wantOK(t, "archive with good credentials", walshipBounded(t, runOpts{env: a.creds}, "walship-archive", "--config", a.conf, src1, n1.String()))
	before := a.objects(t)
	if len(before) != 2 {
		t.Fatalf("bucket after one archived segment: %v, want the identity file and the segment", before)
	}

	const wrongSecret = "wrong-secret-key-5f8d1c0e9a7b3d2e"
	with := func(kv ...string) []string { return append(append([]string{}, a.creds...), kv...) }
	cases := []struct {
		what string
		env  []string
		args []string
		want string
	}{
		{"wrong secret key", with("AWS_SECRET_ACCESS_KEY=" + wrongSecret), nil, "access denied"},
		{"unknown access key", with("AWS_ACCESS_KEY_ID=WALSHIPNOSUCHUSER"), nil, "access denied"},
		{"no credentials", with("AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="), nil, "no usable AWS credentials"},
		{"missing bucket", a.creds, []string{"--repo", "s3://walship-no-such-bucket/pg"}, `bucket "walship-no-such-bucket" does not exist`},
	}
	for _, c := range cases {
		args := append([]string{"--config", a.conf, "--op-timeout", "2s", "--retry-budget", "5s"}, c.args...)
		r := walshipBounded(t, runOpts{env: c.env}, "walship-archive", append(args, src2, n2.String())...)
		wantOneLine(t, c.what+": archive", r, []int{1, 2}, "walship-archive", n2.String(), c.want)
		noSecret(t, c.what+": archive", r.stderr, srv.SecretKey, wrongSecret)

		for _, standby := range []bool{false, true} {
			what, code := c.what+": restore in a PITR", 255
			if standby {
				what, code = c.what+": restore in a standby", 1
			}
			r, wrote := restoreInto(t, c.env, standby, n1.String(), args...)
			wantOneLine(t, what, r, []int{code}, "walship-restore", n1.String(), c.want)
			noSecret(t, what, r.stderr, srv.SecretKey, wrongSecret)
			if wrote {
				t.Errorf("%s: wrote pg_wal/RECOVERYXLOG", what)
			}
		}
		if after := a.objects(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: bucket changed to %v, was %v", c.what, after, before)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := srv.Client().ListBuckets(ctx, &awss3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range out.Buckets {
		if aws.ToString(b.Name) != a.bucket {
			t.Errorf("the store has a bucket %s: a failed call created it", aws.ToString(b.Name))
		}
	}
	// The control: the same calls with the right settings work.
	wantOK(t, "archive with good credentials", walshipBounded(t, runOpts{env: a.creds}, "walship-archive", "--config", a.conf, src2, n2.String()))
	if r, wrote := restoreInto(t, a.creds, false, n1.String(), "--config", a.conf); r.code != 0 || !wrote {
		t.Errorf("restore with good credentials: %s", r)
	}
}

// TestS3RefusesOtherCluster points a second cluster at the S3 prefix a
// first one archives into: the first cluster's identity file is in the
// bucket, every attempt of the second is refused with one line naming both
// system identifiers, the server keeps its WAL, and the bucket is left
// exactly as the first cluster made it.
func TestS3RefusesOtherCluster(t *testing.T) {
	pgtest.Require(t)
	srv := s3test.StartServer(t)
	base := pgtest.Dir(t)
	s3a := newS3Archive(t, srv, base, "pg/main")
	first := s3a.cluster(t, base, "primary")
	first.Conf("archive_mode = on", s3a.line(t, "walship-archive"))
	first.Start()
	a := &archiving{base: base, pg: first}
	name, orig := a.switchSegment(t)
	sysA := sysID(t, first)
	id, identity := s3a.identity(t)
	if id.SystemID != sysA || id.SegSize != segSize || id.Layout != repo.LayoutWalship {
		t.Errorf("identity file in the bucket: %s, want system %d, 16MB segments, walship layout", identity, sysA)
	}
	before := s3a.objects(t)

	b := s3a.cluster(t, base, "other")
	b.Conf("archive_mode = on", s3a.line(t, "walship-archive"))
	b.Start()
	sysB := sysID(t, b)
	if sysA == sysB {
		t.Fatalf("both clusters have system identifier %d", sysA)
	}
	b.Query("CREATE TABLE t AS SELECT generate_series(1, 1000) i")
	segB := b.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	b.Query("SELECT pg_switch_wal()")
	var failed int64
	pgtest.Eventually(t, 60*time.Second, "the second cluster's first failed archive attempt", func() bool {
		failed = pgStat(b, "failed_count")
		return failed > 0
	})
	pgtest.Eventually(t, 60*time.Second, "the second cluster to retry", func() bool {
		return pgStat(b, "failed_count") > failed
	})
	if got := pgStat(b, "archived_count"); got != 0 {
		t.Errorf("second cluster archived_count = %d, want 0", got)
	}
	if _, err := os.Stat(filepath.Join(b.Data, "pg_wal", "archive_status", segB+".ready")); err != nil {
		t.Errorf("the server should keep %s waiting for archiving: %v", segB, err)
	}
	var line string
	for _, l := range strings.Split(b.Log(), "\n") {
		if strings.HasPrefix(l, "walship-archive: ") {
			line = l
			break
		}
	}
	for _, w := range []string{fmt.Sprint(sysA), fmt.Sprint(sysB), segB, s3a.url} {
		if !strings.Contains(line, w) {
			t.Errorf("server log line of walship-archive = %q, want one naming %s", line, w)
		}
	}
	if after := s3a.objects(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("bucket changed by the refused cluster:\n%v\nwas\n%v", after, before)
	}
	if _, now := s3a.identity(t); !bytes.Equal(now, identity) {
		t.Errorf("identity file changed:\n%s\nwas:\n%s", now, identity)
	}
	// The first cluster's WAL is still served, and only to its own.
	if r, wrote := restoreInto(t, s3a.creds, false, name, "--config", s3a.conf); r.code != 0 || !wrote {
		t.Errorf("restoring %s of the first cluster: %s", name, r)
	}
	data, err := readObject(s3a.repo(t), mustName(t, name))
	if err != nil || !bytes.Equal(data, orig) {
		t.Errorf("%s in the bucket differs from what the first cluster wrote (%v)", name, err)
	}
}
