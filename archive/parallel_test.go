package archive

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// fakeWAL makes a pg_wal directory with count segments from segment 1 on,
// each marked .ready, and returns the directory and the names.
func fakeWAL(t *testing.T, count int) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	var names []string
	n := wal.SegmentFromNo(1, 1, segSize)
	for i := 0; i < count; i++ {
		data := waltest.FakeSegment(n, sysID, segSize, func(b []byte) {
			for j := range b {
				b[j] = byte(i + j/4096)
			}
		})
		if err := os.WriteFile(filepath.Join(dir, n.String()), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "archive_status", n.String()+".ready"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, n.String())
		n = n.Next(segSize)
	}
	return dir, names
}

func isStored(t *testing.T, r *repo.Repo, name string) bool {
	t.Helper()
	n, _ := wal.ParseName(name)
	_, err := r.Find(context.Background(), n)
	return err == nil
}

// remote is a repository in root, with its store calls counted.
func remote(t *testing.T, root string) (*repo.Repo, *storagetest.Faulty) {
	t.Helper()
	return remoteWith(t, root, repo.Options{})
}

// remoteFor is remote opened as walship-archive opens it for p: with the
// identity cache of p's spool.
func remoteFor(t *testing.T, root string, p Parallel) (*repo.Repo, *storagetest.Faulty) {
	t.Helper()
	return remoteWith(t, root, repo.Options{Cache: p.IdentityCache(root)})
}

// remoteWith is remote opened with o (as archiving opens it: Create).
func remoteWith(t *testing.T, root string, o repo.Options) (*repo.Repo, *storagetest.Faulty) {
	t.Helper()
	b, err := local.New(root)
	if err != nil {
		t.Fatal(err)
	}
	f := &storagetest.Faulty{Backend: b}
	o.Layout, o.Create = repo.LayoutAuto, true
	return repo.New(f, o), f
}

// lookAhead is Parallel whose worker runs in this process, to the end,
// when it is started, on a repository of its own at root.
func lookAhead(t *testing.T, root, walDir string, n int) Parallel {
	t.Helper()
	return lookAheadVia(t, walDir, n, func(p Parallel) *repo.Repo { r, _ := remoteFor(t, root, p); return r })
}

// lookAheadVia is lookAhead whose worker opens its repository with
// workerRepo.
func lookAheadVia(t *testing.T, walDir string, n int, workerRepo func(Parallel) *repo.Repo) Parallel {
	t.Helper()
	p := Parallel{N: n, Spool: filepath.Join(t.TempDir(), "spool"), Idle: 50 * time.Millisecond}
	p.Spawn = func(after wal.Name) {
		w := p
		w.Worker = true
		wr := workerRepo(w)
		if _, err := PushAhead(context.Background(), wr, filepath.Join(walDir, after.String()), after, w); err != nil {
			t.Errorf("worker: %v", err)
		}
	}
	return p
}

// The first call starts a worker that pushes every ready file after %f;
// the server's calls for those are then answered from the worker's
// records, without a single call to the store.
func TestPushAheadAnswersFromRecordsAlone(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 6)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	p := lookAhead(t, root, walDir, 4)

	res, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p)
	if err != nil {
		t.Fatalf("PushAhead(%s): %v", names[0], err)
	}
	if res.Ahead || res.Existed {
		t.Errorf("first call: Ahead=%v Existed=%v, want a fresh push", res.Ahead, res.Existed)
	}
	for _, f := range names {
		if !isStored(t, r, f) {
			t.Errorf("after the first call, %s is not stored", f)
		}
	}
	for _, f := range names[1:] {
		// As the server calls: a new process, a new Repo.
		fr, calls := remoteFor(t, root, p)
		res, err := PushAhead(ctx, fr, filepath.Join(walDir, f), name(t, f), p)
		if err != nil || !res.Ahead {
			t.Fatalf("PushAhead(%s) = Ahead %v, err %v; want answered from the record", f, res.Ahead, err)
		}
		for _, op := range []string{"open", "stat", "put", "list"} {
			if n := calls.Calls(op); n != 0 {
				t.Errorf("%s: answered from the record with %d %s call(s) to the store, want none", f, n, op)
			}
		}
	}
}

// A record is never trusted for a file that changed since, nor, once it
// is older than RecordTTL, for an object that vanished from the store.
func TestRecordNeverAnswersForChangedContentOrMissingObject(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 3)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	p := lookAhead(t, root, walDir, 3)
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}

	// names[1] changed on disk after it was pushed ahead: the record must
	// not answer, and the real push refuses the different content.
	path1 := filepath.Join(walDir, names[1])
	data, _ := os.ReadFile(path1)
	data[segSize-1] ^= 0xFF
	os.WriteFile(path1, data, 0o600)
	if _, err := PushAhead(ctx, r, path1, name(t, names[1]), p); !errors.Is(err, repo.ErrDifferent) {
		t.Errorf("changed file after a look-ahead push: err = %v, want ErrDifferent", err)
	}

	// names[2]'s object vanished from the repository, and its record is
	// old: it must not answer; the file is pushed again.
	n2, _ := wal.ParseName(names[2])
	loc, err := r.Find(ctx, n2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, loc); err != nil {
		t.Fatal(err)
	}
	sp, err := p.dir(ctx, r)
	if err != nil || sp == nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-RecordTTL - time.Minute)
	os.Chtimes(sp.Path(names[2]), old, old)
	res, err := PushAhead(ctx, r, filepath.Join(walDir, names[2]), name(t, names[2]), p)
	if err != nil || res.Ahead {
		t.Fatalf("vanished object: Ahead %v, err %v; want a real push", res.Ahead, err)
	}
	if !isStored(t, r, names[2]) {
		t.Errorf("%s not stored again", names[2])
	}
}

// Records are kept per repository identity: another repository, or the
// same location holding a new repository, never takes them.
func TestRecordsAreKeptPerRepositoryIdentity(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 3)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	p := lookAhead(t, root, walDir, 3)
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	// The repository is replaced by a new one at the same place.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	p.Spawn = func(wal.Name) {} // no worker: only the records of the old one exist
	r2, _ := remoteFor(t, root, p)
	for _, f := range names[:2] { // claims the new repository
		if _, err := Push(ctx, r2, filepath.Join(walDir, f), name(t, f)); err != nil {
			t.Fatal(err)
		}
	}
	// The cache may hold the old identity for a while.
	entries, _ := filepath.Glob(filepath.Join(p.Spool, "identity-*"))
	for _, e := range entries {
		os.Remove(e)
	}
	r3, _ := remoteFor(t, root, p)
	res, err := PushAhead(ctx, r3, filepath.Join(walDir, names[2]), name(t, names[2]), p)
	if err != nil || res.Ahead {
		t.Fatalf("a new repository at the same place: Ahead %v, err %v; want a real push", res.Ahead, err)
	}
	if !isStored(t, r3, names[2]) {
		t.Errorf("%s not in the new repository", names[2])
	}
}

// The server's call for a file a worker is pushing waits for the worker
// instead of pushing it beside it, and is answered from its record.
func TestCallWaitsForTheWorkersPush(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 2)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	p := lookAhead(t, root, walDir, 2)
	p.Spawn = func(wal.Name) {}
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	sp, err := p.dir(ctx, r)
	if err != nil || sp == nil {
		t.Fatal(err)
	}
	release, ok := sp.Claim(names[1]) // a worker at work on names[1]
	if !ok {
		t.Fatal("claim refused")
	}
	done := make(chan Result, 1)
	fr, calls := remoteFor(t, root, p)
	go func() {
		res, err := PushAhead(ctx, fr, filepath.Join(walDir, names[1]), name(t, names[1]), p)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	time.Sleep(200 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("the call did not wait for the worker's claim")
	default:
	}
	// The worker finishes: stores the file, records it, releases.
	wr, _ := remote(t, root)
	pushAhead(ctx, wr, sp, filepath.Join(walDir, names[1]), name(t, names[1]), nil)
	puts := calls.Calls("put")
	release()
	select {
	case res := <-done:
		if !res.Ahead {
			t.Errorf("answer %+v, want from the worker's record", res)
		}
		if calls.Calls("put") != puts {
			t.Errorf("the call pushed the file the worker had pushed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return after the worker released its claim")
	}
}

// A plain local repository gets look-ahead too: the worker compresses the
// next files while the store syncs the last ones.
func TestLookAheadOnALocalStore(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 3)
	root := filepath.Join(t.TempDir(), "repo")
	r := openRepo(t, root, repo.LayoutAuto)
	p := lookAheadVia(t, walDir, 4, func(Parallel) *repo.Repo { return openRepo(t, root, repo.LayoutAuto) })
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	for _, n := range names[1:] {
		if !isStored(t, r, n) {
			t.Errorf("%s was not pushed ahead into the local repository", n)
		}
		res, err := PushAhead(ctx, openRepo(t, root, repo.LayoutAuto), filepath.Join(walDir, n), name(t, n), p)
		if err != nil || !res.Ahead {
			t.Errorf("the call for %s: ahead %v, err %v; want it answered from the record", n, res.Ahead, err)
		}
	}
}

func TestReadyAfter(t *testing.T) {
	walDir, names := fakeWAL(t, 5)
	os.WriteFile(filepath.Join(walDir, "archive_status", "00000002.history.ready"), nil, 0o600)
	os.WriteFile(filepath.Join(walDir, "archive_status", names[4]+".done"), nil, 0o600)
	os.Remove(filepath.Join(walDir, "archive_status", names[4]+".ready"))
	os.WriteFile(filepath.Join(walDir, "archive_status", "garbage.ready"), nil, 0o600)
	got := readyAfter(walDir, name(t, names[1]), 10)
	want := []string{"00000002.history", names[2], names[3]}
	if len(got) != len(want) {
		t.Fatalf("readyAfter = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Fatalf("readyAfter = %v, want %v", got, want)
		}
	}
	if got := readyAfter(walDir, name(t, names[1]), 1); len(got) != 1 {
		t.Errorf("readyAfter with max 1 = %v", got)
	}
}

func TestParallelCheck(t *testing.T) {
	for _, tc := range []struct {
		p  Parallel
		ok bool
	}{
		{Parallel{N: 1}, true},
		{Parallel{N: 8, Spool: "/var/tmp/walship"}, true},
		{Parallel{N: 8}, false},
		{Parallel{N: 0}, false},
		{Parallel{N: 100, Spool: "/x"}, false},
		{Parallel{N: 4, Spool: "/var/lib/postgresql/15/main/pg_wal/spool"}, false},
	} {
		if err := tc.p.Check(); (err == nil) != tc.ok {
			t.Errorf("%+v.Check() = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

// One spool may serve look-ahead and prefetch (a standby that archives
// too): neither takes the other's files for its own.
func TestLookAheadAndPrefetchKeepApart(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 2)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	p := lookAhead(t, root, walDir, 2)
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	key, _, err := r.SpoolKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	push, _ := spool.Open(p.Spool, "push "+key)
	fetch, _ := spool.Open(p.Spool, "fetch "+key)
	if !push.Has(names[1]) || fetch.Has(names[1]) || push.Path("") == fetch.Path("") {
		t.Errorf("records in %s (has %s: %v), prefetch in %s: want them apart", push.Path(""), names[1], push.Has(names[1]), fetch.Path(""))
	}
}

// A segment the worker pushed past the switch point of a newer timeline:
// the server's call, answered from the record without a look at the
// store, still reports it (the worker's own log goes nowhere).
func TestRecordCarriesNewerTimeline(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 3)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	hist := filepath.Join(t.TempDir(), "00000002.history")
	os.WriteFile(hist, []byte("1\t0/104000\tno recovery target specified\n"), 0o600) // inside segment 1
	if _, err := PushAhead(ctx, r, hist, name(t, "00000002.history"), Parallel{N: 1}); err != nil {
		t.Fatal(err)
	}
	p := lookAhead(t, root, walDir, 4)
	if res, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil || res.Newer != nil {
		t.Fatalf("PushAhead(%s) = Newer %+v, %v; want none: segment 1 holds the switch point", names[0], res.Newer, err)
	}
	fr, calls := remoteFor(t, root, p)
	res, err := PushAhead(ctx, fr, filepath.Join(walDir, names[1]), name(t, names[1]), p)
	if err != nil || !res.Ahead {
		t.Fatalf("PushAhead(%s) = %+v, %v; want answered from the record", names[1], res, err)
	}
	if res.Newer == nil || res.Newer.Timeline != 2 || res.Newer.SwitchPoint.String() != "0/104000" {
		t.Errorf("answered from the record: Newer %+v, want timeline 2 at 0/104000", res.Newer)
	}
	if n := calls.Calls("open") + calls.Calls("stat"); n != 0 {
		t.Errorf("%d looks at the store for an answer from the record", n)
	}
}

// afterPut runs after each put of the store it wraps, once the put has
// stored what it read.
type afterPut struct {
	storage.Backend
	after func(key string)
}

func (a afterPut) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	err := a.Backend.Put(ctx, key, r, size)
	if err == nil {
		a.after(key)
	}
	return err
}

// The worker's record vouches for the bytes it stored, not for the file
// as it is once the put is done: a file that changes in between is not
// answered for from the record, and its real push refuses the content.
func TestRecordIsOfTheBytesStored(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 2)
	root := filepath.Join(t.TempDir(), "repo")
	r, _ := remote(t, root)
	path1 := filepath.Join(walDir, names[1])
	changed := false // by the first worker; the server's second call starts another
	p := lookAheadVia(t, walDir, 2, func(Parallel) *repo.Repo {
		_, f := remote(t, root)
		wr := repo.New(afterPut{Backend: f, after: func(key string) {
			if !changed && strings.Contains(key, names[1]) {
				changed = true
				data, _ := os.ReadFile(path1)
				data[segSize-1] ^= 0xFF
				os.WriteFile(path1, data, 0o600)
			}
		}}, repo.Options{Layout: repo.LayoutAuto, Create: true})
		return wr
	})
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	if !changed {
		t.Fatalf("the worker did not push %s", names[1])
	}
	res, err := PushAhead(ctx, r, path1, name(t, names[1]), p)
	if res.Ahead || !errors.Is(err, repo.ErrDifferent) {
		t.Errorf("file changed after the worker stored it: Ahead %v, err %v; want ErrDifferent from a real push", res.Ahead, err)
	}
}

// Records are made, and answer, whatever the repository stores: lz4 or
// uncompressed objects, encrypted or not (each put reads the file its own
// way; a record takes the checksum of that reading).
func TestRecordsForEveryEncoding(t *testing.T) {
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		codec   repo.Codec
		encrypt bool
	}{
		{"lz4", repo.CodecLZ4, false},
		{"none", repo.CodecNone, false},
		{"lz4 encrypted", repo.CodecLZ4, true},
		{"none encrypted", repo.CodecNone, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			walDir, names := fakeWAL(t, 4)
			root := filepath.Join(t.TempDir(), "repo")
			open := func(c repo.Codec) *repo.Repo {
				o := repo.Options{Compress: c}
				if tt.encrypt {
					o.Keys.Recipients = []age.Recipient{key.Recipient()}
				}
				r, _ := remoteWith(t, root, o)
				return r
			}
			p := lookAheadVia(t, walDir, 4, func(Parallel) *repo.Repo { return open("") })
			r := open(tt.codec)
			if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
				t.Fatal(err)
			}
			for _, f := range names[1:] {
				res, err := PushAhead(ctx, open(""), filepath.Join(walDir, f), name(t, f), p)
				if err != nil || !res.Ahead {
					t.Errorf("PushAhead(%s) = Ahead %v, err %v; want answered from the record", f, res.Ahead, err)
				}
			}
		})
	}
}

// A file the server archived itself while the worker waited for a free
// slot (its .ready file became .done) is not pushed again: a second push
// costs a whole upload, refused, and a download to compare.
func TestWorkerSkipsFilesArchivedMeanwhile(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 4)
	root := filepath.Join(t.TempDir(), "repo")
	var puts []string
	p := lookAheadVia(t, walDir, 2, func(p Parallel) *repo.Repo {
		r, f := remoteFor(t, root, p)
		f.Before = func(op, key string) {
			if op != "put" {
				return
			}
			puts = append(puts, key)
			if strings.Contains(key, names[1]) { // meanwhile the server archives names[2]
				st := filepath.Join(walDir, "archive_status", names[2])
				os.Rename(st+".ready", st+".done")
			}
		}
		return r
	})
	r, _ := remoteFor(t, root, p)
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	var pushed []string
	for _, k := range puts {
		if strings.Contains(k, names[2]) {
			pushed = append(pushed, k)
		}
	}
	if len(pushed) != 0 || !slices.ContainsFunc(puts, func(k string) bool { return strings.Contains(k, names[3]) }) {
		t.Errorf("the worker pushed %v; want nothing of %s (archived meanwhile), and %s", puts, names[2], names[3])
	}
}
