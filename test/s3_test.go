package test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

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
	a := newS3Backend(t, srv, base, "outage")
	p := newCluster(t, a, base, "primary")
	p.Conf("archive_mode = on", commandLine(t, a, "walship-archive", "--op-timeout", "2s", "--retry-budget", "4s"))
	p.Start()
	p.Pgbench("-i", "-s", "2", "-q")
	backup := p.BaseBackup(base, "restored")
	backup.Env = a.env()

	stopLoad := pgbenchLoop(t, p)
	before := pgStat(p, "archived_count")
	pgtest.Eventually(t, 120*time.Second, "two segments archived under load", func() bool {
		return pgStat(p, "archived_count") >= before+2
	})
	segs := storedSegments(t, a)
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
	flags := append(a.flags(), "--op-timeout", "2s", "--retry-budget", "5s")
	r, _, wrote := restoreInto(t, a.env(), true, existing, flags...)
	wantOneLine(t, "restore in a standby, store down", r, []int{1}, "walship-restore", existing)
	r2, _, wrote2 := restoreInto(t, a.env(), false, existing, flags...)
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

	// The server saw walship-archive fail with exit 1 and one line each
	// time, with the time and pid as the server's own lines have them.
	log := p.Log()
	if !strings.Contains(log, "archive command failed with exit code 1") {
		t.Errorf("the server log shows no archive_command failing with exit code 1")
	}
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`)
	walshipLines := 0
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		switch {
		case strings.HasPrefix(linePrefixRE.ReplaceAllString(l, ""), "walship-archive: "):
			walshipLines++
			if !linePrefixRE.MatchString(l) {
				t.Errorf("walship-archive's line has no time and pid: %q", l)
			}
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
	noSecret(t, "the primary's log", log, a.secrets()...)

	// No gap, no damaged object.
	segs = storedSegments(t, a)
	sys := sysID(t, p)
	for i, n := range segs {
		if want := wal.SegmentFromNo(1, uint64(i+1), segSize); n != want {
			t.Fatalf("archive has %s where %s belongs: a gap", n, want)
		}
		data, err := readWAL(t, a, n)
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
	if l := leftovers(t, a); len(l) > 0 {
		t.Errorf("bucket %s holds objects that are no WAL of %s: %v", a.bucket, a, l)
	}

	// A PITR to the end of the archive has all of the primary's data.
	backup.Conf(commandLine(t, a, "walship-restore"), "archive_mode = off")
	backup.Touch("recovery.signal")
	backup.Start()
	backup.WaitQuery("SELECT pg_is_in_recovery()", "f", 180*time.Second)
	if got := backup.Query(state); got != want {
		t.Errorf("restored to the end of the archive: %s, want the primary's %s", got, want)
	}
	t.Logf("%d segments archived, %d failed attempts during the outage, restored %s", len(segs), pgStat(p, "failed_count"), want)
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
	a := newS3Backend(t, srv, dir, "pg")
	const sys = 7000000000000000123
	n1 := wal.SegmentFromNo(1, 1, segSize)
	n2 := n1.Next(segSize)
	src := filepath.Join(dir, "src")
	fill := func(p []byte) {
		for i := range p {
			p[i] = byte(i / 7)
		}
	}
	seg1 := waltest.FakeSegment(n1, sys, segSize, fill)
	src1 := writeSegment(t, src, n1.String(), seg1)
	src2 := writeSegment(t, src, n2.String(), waltest.FakeSegment(n2, sys, segSize, fill))
	archive := func(path string, n wal.Name) result {
		return walshipBounded(t, runOpts{env: a.env()}, "walship-archive", append(a.flags(), path, n.String())...)
	}
	wantOK(t, "archive with good credentials", archive(src1, n1))
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
		args := append(append(a.flags(), "--op-timeout", "2s", "--retry-budget", "5s"), c.args...)
		r := walshipBounded(t, runOpts{env: c.env}, "walship-archive", append(args, src2, n2.String())...)
		wantOneLine(t, c.what+": archive", r, []int{1, 2}, "walship-archive", n2.String(), c.want)
		noSecret(t, c.what+": archive", r.stderr, append(a.secrets(), wrongSecret)...)

		for _, standby := range []bool{false, true} {
			what, code := c.what+": restore in a PITR", 255
			if standby {
				what, code = c.what+": restore in a standby", 1
			}
			r, _, wrote := restoreInto(t, c.env, standby, n1.String(), args...)
			wantOneLine(t, what, r, []int{code}, "walship-restore", n1.String(), c.want)
			noSecret(t, what, r.stderr, append(a.secrets(), wrongSecret)...)
			if wrote {
				t.Errorf("%s: wrote pg_wal/RECOVERYXLOG", what)
			}
		}
		sameObjects(t, c.what, before, a.objects(t))
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
	wantOK(t, "archive with good credentials", archive(src2, n2))
	if got := restoreFrom(t, a, n1.String()); !bytes.Equal(got, seg1) {
		t.Errorf("restore with good credentials: %d bytes, not the archived segment", len(got))
	}
}
