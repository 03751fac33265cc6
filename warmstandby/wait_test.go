package warmstandby_test

// These tests drive the wait the way walship-restore does, through
// restore.Run with standby options.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
	. "github.com/walship/walship/warmstandby"
)

const (
	segSize = 1 << 20
	sysID   = 7000000000000000001
)

func segName(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func segment(t *testing.T, name string) []byte {
	t.Helper()
	return waltest.Seeded(segName(t, name), sysID, segSize, 0)
}

// fixture is a repository, a data directory and a destination for %p.
type fixture struct {
	t       *testing.T
	root    string // repository directory
	backend storage.Backend
	repo    *repo.Repo
	data    string
	dest    string
	opts    Options
	logs    *bytes.Buffer
}

// newFixture makes an empty local repository in layout l (a walship one is
// claimed for the test cluster, a plain one has no identity file) and
// options with short intervals and a long safety-net poll, so that a test
// that passes on a local repository passes by file system events.
func newFixture(t *testing.T, l repo.Layout) *fixture {
	t.Helper()
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "repo"), data: t.TempDir(), logs: &bytes.Buffer{}}
	if err := os.Mkdir(f.root, 0o700); err != nil {
		t.Fatal(err)
	}
	lb, err := local.New(f.root)
	if err != nil {
		t.Fatal(err)
	}
	f.backend = storage.WithRetry(lb, storage.RetryPolicy{OpTimeout: 5 * time.Second, Budget: time.Second, FirstDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	f.repo = repo.New(f.backend, repo.Options{Layout: l})
	if l == repo.LayoutWalship {
		h, _ := wal.ParseLongHeader(segment(t, "000000010000000000000001"))
		if err := f.repo.Claim(context.Background(), h); err != nil {
			t.Fatal(err)
		}
		f.repo = repo.New(f.backend, repo.Options{Layout: l}) // as walship-restore opens it
	}
	f.dest = filepath.Join(t.TempDir(), "RECOVERYXLOG")
	f.opts = Options{DataDir: f.data, Poll: time.Hour, FirstPoll: 20 * time.Millisecond, Check: 20 * time.Millisecond,
		Settle: 300 * time.Millisecond, Log: slog.New(slog.NewTextHandler(f.logs, nil))}
	return f
}

// put archives a segment the way walship-archive does.
func (f *fixture) put(name string) []byte {
	f.t.Helper()
	data := segment(f.t, name)
	if _, err := f.repo.Put(context.Background(), segName(f.t, name), data); err != nil {
		f.t.Fatal(err)
	}
	return data
}

type result struct {
	res restore.Result
	err error
}

// start runs Fetch in the background.
func (f *fixture) start(ctx context.Context, name string) <-chan result {
	done := make(chan result, 1)
	go func() {
		opts := f.opts
		res, err := restore.Run(ctx, f.repo, restore.Request{Name: segName(f.t, name), Dest: f.dest, DataDir: f.data, Standby: &opts})
		done <- result{res, err}
	}()
	return done
}

// fetch runs Fetch and fails the test if it does not return within 10s.
func (f *fixture) fetch(name string) (restore.Result, error) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := <-f.start(ctx, name)
	if errors.Is(r.err, context.DeadlineExceeded) {
		f.t.Fatalf("Fetch(%s) was still waiting after 10s\nlog:\n%s", name, f.logs)
	}
	return r.res, r.err
}

// stillWaiting fails the test if Fetch has returned.
func (f *fixture) stillWaiting(done <-chan result, what string) {
	f.t.Helper()
	select {
	case r := <-done:
		f.t.Fatalf("Fetch returned before %s: %v\nlog:\n%s", what, r.err, f.logs)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := os.Stat(f.dest); !errors.Is(err, fs.ErrNotExist) {
		f.t.Fatalf("%s exists while still waiting (%v)", f.dest, err)
	}
}

// wait returns Fetch's result, failing the test after 10s.
func (f *fixture) wait(done <-chan result) result {
	f.t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		f.t.Fatalf("Fetch did not return within 10s\nlog:\n%s", f.logs)
	}
	return result{}
}

func (f *fixture) wantRestored(r result, want []byte) {
	f.t.Helper()
	if r.err != nil {
		f.t.Fatalf("Fetch: %v\nlog:\n%s", r.err, f.logs)
	}
	got, err := os.ReadFile(f.dest)
	if err != nil {
		f.t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		f.t.Fatalf("restored %d bytes that differ from the archived segment (%d bytes)", len(got), len(want))
	}
}

func (f *fixture) wantStop(err error, reason Reason) {
	f.t.Helper()
	var se *StopError
	if !errors.As(err, &se) || se.Reason != reason {
		f.t.Fatalf("got %v, want a StopError with reason %d\nlog:\n%s", err, reason, f.logs)
	}
	if !storage.IsNotExist(err) {
		f.t.Errorf("%v does not match fs.ErrNotExist: PostgreSQL would not be told not found", err)
	}
	if _, err := os.Stat(f.dest); !errors.Is(err, fs.ErrNotExist) {
		f.t.Errorf("%s exists after a stop (%v)", f.dest, err)
	}
}

func (f *fixture) trigger(content string) {
	f.t.Helper()
	f.opts.Trigger = filepath.Join(f.data, "trigger")
	if content == "-" {
		return // the path is set, the file not made
	}
	if err := os.WriteFile(f.opts.Trigger, []byte(content), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func TestHistoryNeverWaits(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	_, err := f.fetch("00000002.history")
	if !storage.IsNotExist(err) || errors.Is(err, ErrStopped) {
		t.Fatalf("missing history file: got %v, want a plain not found", err)
	}
	hist := []byte("1\t0/3000000\tno recovery target specified\n")
	if _, err := f.repo.Put(context.Background(), segName(t, "00000002.history"), hist); err != nil {
		t.Fatal(err)
	}
	r := <-f.start(context.Background(), "00000002.history")
	f.wantRestored(r, hist)
}

func TestSegmentAlreadyArchived(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	want := f.put("000000010000000000000003")
	res, err := f.fetch("000000010000000000000003")
	f.wantRestored(result{res, err}, want)
	if strings := f.logs.String(); bytes.Contains([]byte(strings), []byte("waiting")) {
		t.Errorf("logged a wait for a segment that was there:\n%s", strings)
	}
}

func TestWaitsByFileEventsIntoNewDirectory(t *testing.T) {
	// The segment starts a new log: its directory wal/0000000100000001/
	// does not exist while the wait begins. The safety-net poll is an hour.
	f := newFixture(t, repo.LayoutWalship)
	f.put("0000000100000000000000FF")
	done := f.start(context.Background(), "000000010000000100000000")
	f.stillWaiting(done, "the segment was archived")
	want := f.put("000000010000000100000000")
	f.wantRestored(f.wait(done), want)
	if !bytes.Contains(f.logs.Bytes(), []byte("waiting for the segment")) {
		t.Errorf("no line saying the wait began:\n%s", f.logs)
	}
}

// remote hides the local backend's file system events, as an S3 backend
// would: polling only.
func remote(b storage.Backend) storage.Backend { return &storagetest.Faulty{Backend: b} }

func TestWaitsByPollingAnyBackend(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	f.repo = repo.New(remote(f.backend), repo.Options{Layout: repo.LayoutWalship})
	f.opts.Poll = 100 * time.Millisecond
	done := f.start(context.Background(), "000000010000000000000004")
	f.stillWaiting(done, "the segment was archived")
	want := f.put("000000010000000000000004")
	f.wantRestored(f.wait(done), want)
}

func TestStorageErrorIsMoreWaiting(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	want := f.put("000000010000000000000005")
	var down atomic.Bool
	down.Store(true)
	fb := &storagetest.Faulty{Backend: f.backend, Fail: storagetest.Down(down.Load)}
	f.repo = repo.New(fb, repo.Options{Layout: repo.LayoutWalship})
	f.opts.Poll = 50 * time.Millisecond
	done := f.start(context.Background(), "000000010000000000000005")
	f.stillWaiting(done, "the storage came back")
	if calls := fb.Calls("stat") + fb.Calls("open"); calls < 3 {
		t.Errorf("only %d calls to the failing storage: it is not polled", calls)
	}
	down.Store(false)
	f.wantRestored(f.wait(done), want)
	if n := bytes.Count(f.logs.Bytes(), []byte("cannot read the archive")); n != 1 {
		t.Errorf("storage failures logged %d times, want once (rarely):\n%s", n, f.logs)
	}
}

func TestTriggerSmartRestoresArchivedThenStops(t *testing.T) {
	for _, content := range []string{"", "smart\n", "SMART", "please"} {
		t.Run(strconv.Quote(content), func(t *testing.T) {
			f := newFixture(t, repo.LayoutWalship)
			want := f.put("000000010000000000000003")
			f.trigger(content)
			res, err := f.fetch("000000010000000000000003")
			f.wantRestored(result{res, err}, want)
			os.Remove(f.dest)
			_, err = f.fetch("000000010000000000000004")
			f.wantStop(err, Triggered)
		})
	}
}

func TestTriggerFastStopsAtOnce(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	f.put("000000010000000000000003")
	f.trigger("fast\n")
	_, err := f.fetch("000000010000000000000003")
	f.wantStop(err, TriggeredFast)
}

func TestTriggerDuringWait(t *testing.T) {
	for _, tc := range []struct {
		content string
		reason  Reason
	}{{"", Triggered}, {"fast", TriggeredFast}} {
		t.Run(strconv.Quote(tc.content), func(t *testing.T) {
			f := newFixture(t, repo.LayoutWalship)
			f.trigger("-")
			done := f.start(context.Background(), "000000010000000000000003")
			f.stillWaiting(done, "the trigger file was made")
			f.trigger(tc.content)
			f.wantStop(f.wait(done).err, tc.reason)
		})
	}
}

// A smart failover looks at the archive once more before answering not
// found, even when its next poll is far away.
func TestTriggerSmartLooksAgainBeforeStopping(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	f.repo = repo.New(remote(f.backend), repo.Options{Layout: repo.LayoutWalship})
	f.opts.FirstPoll = time.Hour
	f.trigger("-")
	done := f.start(context.Background(), "000000010000000000000003")
	f.stillWaiting(done, "the segment was archived")
	want := f.put("000000010000000000000003")
	f.trigger("")
	f.wantRestored(f.wait(done), want)
}

func TestPromoteFileEndsWait(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	done := f.start(context.Background(), "000000010000000000000003")
	f.stillWaiting(done, "promotion was requested")
	if err := os.WriteFile(filepath.Join(f.data, "promote"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.wantStop(f.wait(done).err, Promoted)
}

func TestMaxWait(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	f.opts.MaxWait = 200 * time.Millisecond
	_, err := f.fetch("000000010000000000000003")
	f.wantStop(err, MaxWaitReached)
}

// A wait that ends at --max-wait while the archive cannot be read (here:
// no permission) is a read error, not "not archived within".
func TestMaxWaitOverUnreadableArchive(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	denied := &storage.Error{Op: "stat", Key: "x", Err: os.ErrPermission}
	f.repo = repo.New(&storagetest.Faulty{Backend: f.backend, Fail: func(op, key string) error {
		if key == repo.IdentityKey {
			return nil
		}
		return denied
	}}, repo.Options{Layout: repo.LayoutWalship})
	f.opts.MaxWait, f.opts.Poll = 300*time.Millisecond, 50*time.Millisecond
	_, err := f.fetch("000000010000000000000003")
	var se *StopError
	if errors.As(err, &se) || storage.IsNotExist(err) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("max-wait over an unreadable archive = %v, want the permission error, not a stop", err)
	}
	var re *restore.ReadError
	if !errors.As(err, &re) || !re.Abort {
		t.Errorf("= %#v, want a ReadError that aborts recovery (no standby.signal)", err)
	}
}

func TestContextCancelEndsWait(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	ctx, cancel := context.WithCancel(context.Background())
	done := f.start(ctx, "000000010000000000000003")
	f.stillWaiting(done, "the context ended")
	cancel()
	r := f.wait(done)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", r.err)
	}
	entries, _ := os.ReadDir(filepath.Dir(f.dest))
	if len(entries) != 0 {
		t.Errorf("left %d files beside %%p after a cancel: %v", len(entries), entries)
	}
}

func TestPostmasterDeathEndsWait(t *testing.T) {
	f := newFixture(t, repo.LayoutWalship)
	pm := exec.Command("sleep", "60")
	if err := pm.Start(); err != nil {
		t.Skipf("cannot start a stand-in postmaster: %v", err)
	}
	pidFile := strconv.Itoa(pm.Process.Pid) + "\n" + f.data + "\n1700000000\n5432\n"
	if err := os.WriteFile(filepath.Join(f.data, "postmaster.pid"), []byte(pidFile), 0o600); err != nil {
		t.Fatal(err)
	}
	done := f.start(context.Background(), "000000010000000000000003")
	f.stillWaiting(done, "the postmaster died")
	// Killed and not reaped yet: a zombie, as a postmaster whose parent
	// never reaps it stays.
	pm.Process.Kill()
	defer pm.Wait()
	f.wantStop(f.wait(done).err, ServerGone)
}

// writeSlowly writes data into path in place, in chunks, the way a cp
// archive_command does, starting with a few bytes that are not even a
// header.
func writeSlowly(t *testing.T, path string, data []byte) <-chan error {
	errc := make(chan error, 1)
	go func() {
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			errc <- err
			return
		}
		defer out.Close()
		for off := 0; off < len(data); {
			k := 64 << 10
			if off == 0 {
				k = 10
			}
			k = min(k, len(data)-off)
			if _, err := out.Write(data[off : off+k]); err != nil {
				errc <- err
				return
			}
			off += k
			time.Sleep(15 * time.Millisecond)
		}
		errc <- out.Close()
	}()
	return errc
}

func TestPlainSegmentBeingCopiedIsNotHandedOver(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run("watch="+strconv.FormatBool(watch), func(t *testing.T) {
			f := newFixture(t, repo.LayoutPlain)
			f.opts.NoWatch = !watch
			if !watch {
				f.opts.Poll = 10 * time.Millisecond
			}
			name := "000000010000000000000007"
			want := segment(t, name)
			done := f.start(context.Background(), name)
			f.stillWaiting(done, "the copy began")
			// rsync's temporary copy, complete but dot-named: not the segment.
			rsyncTmp := filepath.Join(f.root, "."+name+".Xq81Zp")
			if err := os.WriteFile(rsyncTmp, want, 0o600); err != nil {
				t.Fatal(err)
			}
			f.stillWaiting(done, "the copy began")
			os.Remove(rsyncTmp)
			copied := writeSlowly(t, filepath.Join(f.root, name), want)
			r := f.wait(done)
			if err := <-copied; err != nil {
				t.Fatal(err)
			}
			// Handed over only once complete: exactly the whole segment.
			f.wantRestored(r, want)
			if !bytes.Contains(f.logs.Bytes(), []byte("not complete yet")) {
				t.Errorf("the partial copy was never seen: the test did not race\n%s", f.logs)
			}
		})
	}
}

func TestPlainSegmentWithBadHeaderWaits(t *testing.T) {
	f := newFixture(t, repo.LayoutPlain)
	name := "000000010000000000000007"
	path := filepath.Join(f.root, name)
	// Full size, but the header has not landed (zeros) or is a recycled
	// segment's (another page address).
	if err := os.WriteFile(path, make([]byte, segSize), 0o600); err != nil {
		t.Fatal(err)
	}
	done := f.start(context.Background(), name)
	f.stillWaiting(done, "the header was written")
	if err := os.WriteFile(path, segment(t, "000000010000000000000005"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.stillWaiting(done, "the right segment was written")
	want := segment(t, name)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	f.wantRestored(f.wait(done), want)
}

func TestSmartTriggerGivesUpOnStalledPlainCopy(t *testing.T) {
	f := newFixture(t, repo.LayoutPlain)
	name := "000000010000000000000007"
	// A primary that died in the middle of cp leaves this forever.
	if err := os.WriteFile(filepath.Join(f.root, name), segment(t, name)[:segSize/3], 0o600); err != nil {
		t.Fatal(err)
	}
	f.trigger("-")
	done := f.start(context.Background(), name)
	f.stillWaiting(done, "the failover")
	f.trigger("")
	f.wantStop(f.wait(done).err, Triggered)
}

// After a failover the new primary archives timeline 2, which left
// timeline 1 in segment 3: a warm standby waiting for timeline 1's segment
// 3 or later waits no more, so that the server follows timeline 2 (it
// asks for 00000002.history once told the segment is not there), and says
// why; a segment before the switch point, which timeline 1 still owes,
// is still waited for.
func TestWaitEndsWhenANewerTimelineBranchedOff(t *testing.T) {
	// Segment 3 of 1 MiB segments is 0/300000..0/400000.
	hist := []byte("1\t0/3000A0\tno recovery target specified\n")
	f := newFixture(t, repo.LayoutWalship)
	before := f.start(context.Background(), "000000010000000000000002")
	waiting := f.start(context.Background(), "000000010000000000000003")
	f.stillWaiting(waiting, "timeline 2 appeared")
	if _, err := f.repo.Put(context.Background(), segName(t, "00000002.history"), hist); err != nil {
		t.Fatal(err)
	}
	err := f.wait(waiting).err
	f.wantStop(err, Branched)
	if !bytes.Contains(f.logs.Bytes(), []byte("timeline 2 branched off timeline 1 at 0/3000A0")) {
		t.Errorf("the log does not say why the wait ended:\n%s", f.logs)
	}
	_, err = f.fetch("000000010000000000000004")
	f.wantStop(err, Branched)
	f.stillWaiting(before, "segment 2 is archived (timeline 1 still owes it)")
	f.put("000000010000000000000002")
	if r := f.wait(before); r.err != nil {
		t.Fatalf("segment 2 before the switch point: %v", r.err)
	}
}
