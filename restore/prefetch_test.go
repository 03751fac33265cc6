package restore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// segments returns count consecutive fake segments of timeline tli from
// segment 1 on, by name.
func segments(t *testing.T, tli uint32, count int) (map[string][]byte, []string) {
	t.Helper()
	files := map[string][]byte{}
	var names []string
	n := wal.SegmentFromNo(tli, 1, segSize)
	for i := 0; i < count; i++ {
		files[n.String()] = fakeSegment(t, n.String(), sysID, byte(i))
		names = append(names, n.String())
		n = n.Next(segSize)
	}
	return files, names
}

func TestPrefetchFillThenTake(t *testing.T) {
	ctx := context.Background()
	files, names := segments(t, 1, 6)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 3, Spool: t.TempDir()}
	pgWal := dataDir(t)
	dest := filepath.Join(pgWal, "RECOVERYXLOG")

	if err := p.Fill(ctx, r, parseName(t, names[0]), segSize); err != nil {
		t.Fatalf("Fill: %v", err)
	}
	for i, name := range names[1:] {
		_, err := os.Stat(filepath.Join(spoolDir(t, p, r), name))
		if got, want := err == nil, i < 3; got != want {
			t.Errorf("after Fill from %s: %s in the spool = %v, want %v", names[0], name, got, want)
		}
	}
	ok, err := p.Take(context.Background(), r, parseName(t, names[1]), dest)
	if err != nil || !ok {
		t.Fatalf("Take(%s) = %v, %v; want served from the spool", names[1], ok, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, files[names[1]]) {
		t.Fatalf("served %s differs from the archived segment", names[1])
	}
	if _, err := os.Stat(filepath.Join(spoolDir(t, p, r), names[1])); !os.IsNotExist(err) {
		t.Errorf("a served segment stays in the spool: %v", err)
	}
	if ok, _ := p.Take(context.Background(), r, parseName(t, names[5]), dest); ok {
		t.Errorf("Take of a segment never prefetched reported served")
	}
}

func TestPrefetchStopsAtFirstMissing(t *testing.T) {
	files, names := segments(t, 1, 3)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 8, Spool: t.TempDir()}
	if err := p.Fill(context.Background(), r, parseName(t, names[0]), segSize); err != nil {
		t.Fatalf("Fill past the end of the archive: %v, want nil", err)
	}
	got := dirNames(t, spoolDir(t, p, r))
	if strings.Join(got, ",") != names[1]+","+names[2] {
		t.Errorf("spool holds %v, want %v", got, names[1:])
	}
}

func TestPrefetchNeverSpoolsACorruptSegment(t *testing.T) {
	files, names := segments(t, 1, 3)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	key := repo.Key(repo.LayoutWalship, parseName(t, names[1]), repo.CodecLZ4)
	spoil(t, root, key, func(b []byte) []byte { b[len(b)/2] ^= 0xFF; return b })
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 2, Spool: t.TempDir()}
	if err := p.Fill(context.Background(), r, parseName(t, names[0]), segSize); err == nil {
		t.Errorf("Fill over a corrupt object: nil error")
	}
	for _, n := range dirNames(t, spoolDir(t, p, r)) {
		if !strings.HasPrefix(n, ".") {
			t.Errorf("spool holds %s after a corrupt fetch; nothing may be served", n)
		}
	}
	if ok, _ := p.Take(context.Background(), r, parseName(t, names[1]), filepath.Join(dataDir(t), "RECOVERYXLOG")); ok {
		t.Errorf("the corrupt segment was served from the spool")
	}
}

func TestPrefetchCleanAfterTimelineSwitch(t *testing.T) {
	files1, names1 := segments(t, 1, 4)
	files2, names2 := segments(t, 2, 4)
	for k, v := range files2 {
		files1[k] = v
	}
	root := archived(t, repo.LayoutWalship, repo.CodecNone, files1)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 3, Spool: t.TempDir()}
	if err := p.Fill(context.Background(), r, parseName(t, names1[0]), segSize); err != nil {
		t.Fatal(err)
	}
	// The server switched to timeline 2 at segment 2.
	p.Clean(context.Background(), r, parseName(t, names2[1]))
	if got := dirNames(t, spoolDir(t, p, r)); len(got) != 0 {
		t.Errorf("after a switch to timeline 2, the spool still holds %v", got)
	}
	if err := p.Fill(context.Background(), r, parseName(t, names2[1]), segSize); err != nil {
		t.Fatal(err)
	}
	// Asked for names2[2], the spool keeps it (to serve) and what follows.
	p.Clean(context.Background(), r, parseName(t, names2[2]))
	if got := dirNames(t, spoolDir(t, p, r)); strings.Join(got, ",") != names2[2]+","+names2[3] {
		t.Errorf("asked for %s, the spool holds %v, want %s and %s", names2[2], got, names2[2], names2[3])
	}
	p.Clean(context.Background(), r, parseName(t, names2[3]))
	if got := dirNames(t, spoolDir(t, p, r)); strings.Join(got, ",") != names2[3] {
		t.Errorf("asked for %s, the spool holds %v, want only it", names2[3], got)
	}
}

func TestPrefetchActive(t *testing.T) {
	p := Prefetch{N: 4, Spool: "/var/tmp/spool"}
	for _, tc := range []struct {
		name, dest string
		want       bool
	}{
		{"000000010000000000000003", "pg_wal/RECOVERYXLOG", true},
		{"000000010000000000000003", "pg_wal/000000010000000000000003", false}, // pg_rewind
		{"00000002.history", "pg_wal/RECOVERYHISTORY", false},
		{"000000010000000000000003.partial", "pg_wal/RECOVERYXLOG", false},
	} {
		if got := p.Active(parseName(t, tc.name), tc.dest); got != tc.want {
			t.Errorf("Active(%s, %s) = %v, want %v", tc.name, tc.dest, got, tc.want)
		}
	}
	if (Prefetch{N: 0, Spool: "/x"}).Active(parseName(t, "000000010000000000000003"), "pg_wal/RECOVERYXLOG") {
		t.Errorf("N=0 is active")
	}
	if err := (Prefetch{N: 4}).Check(); err == nil {
		t.Errorf("prefetch without a spool passed Check")
	}
}

func TestPrefetchNeedsFill(t *testing.T) {
	files, names := segments(t, 1, 10)
	root := archived(t, repo.LayoutWalship, repo.CodecNone, files)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 8, Spool: t.TempDir()}
	cur := parseName(t, names[0])
	dir := spoolDir(t, p, r)
	if !p.NeedsFill(context.Background(), r, cur, segSize) {
		t.Errorf("no spool yet: NeedsFill = false, want true")
	}
	os.MkdirAll(dir, 0o700)
	spool := func(names ...string) {
		t.Helper()
		for _, e := range dirNames(t, dir) {
			os.Remove(filepath.Join(dir, e))
		}
		for _, n := range names {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		what    string
		spooled []string
		want    bool
	}{
		{"empty spool", nil, true},
		{"3 of 8 ahead", names[1:4], true},
		{"4 of 8 ahead", names[1:5], false},
		{"all 8 ahead", names[1:9], false},
		{"2 ahead, then a gap", append(append([]string{}, names[1:3]...), names[4:9]...), true},
		{"only segments after a gap", names[3:9], true},
	} {
		spool(tc.spooled...)
		if got := p.NeedsFill(context.Background(), r, cur, segSize); got != tc.want {
			t.Errorf("%s: NeedsFill = %v, want %v", tc.what, got, tc.want)
		}
	}
	// A worker at work holds a claim: no second one.
	spool()
	d, err := p.dir(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	release, ok := d.Claim(names[1])
	if !ok {
		t.Fatal("claim refused")
	}
	if p.NeedsFill(context.Background(), r, cur, segSize) {
		t.Errorf("a worker is fetching: NeedsFill = true, want false")
	}
	release()
	// The claim file a killed worker leaves is held by no one: no stop.
	spool("." + names[1] + ".claim")
	if !p.NeedsFill(context.Background(), r, cur, segSize) {
		t.Errorf("a claim file no one holds: NeedsFill = false, want true")
	}
}

// spoolDir is the directory of r's prefetched segments.
func spoolDir(t *testing.T, p Prefetch, r *repo.Repo) string {
	t.Helper()
	d, err := p.dir(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Path("")
}

// After the repository at a location is replaced by another cluster's,
// nothing spooled for the old one is served: the spool is keyed to the
// repository's identity.
func TestPrefetchSpoolKeyedToIdentity(t *testing.T) {
	ctx := context.Background()
	files, names := segments(t, 1, 4)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	p := Prefetch{N: 3, Spool: t.TempDir()}
	if err := p.Fill(ctx, openRepo(t, root, repo.LayoutAuto), parseName(t, names[0]), segSize); err != nil {
		t.Fatal(err)
	}
	// Another cluster's repository in the same place, same segment names.
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	other := map[string][]byte{}
	for _, n := range names {
		other[n] = fakeSegment(t, n, sysID+1, 9)
	}
	replaced := archived(t, repo.LayoutWalship, repo.CodecLZ4, other)
	os.Rename(replaced, root)
	r := openRepo(t, root, repo.LayoutAuto)
	dest := filepath.Join(dataDir(t), "RECOVERYXLOG")
	if ok, err := p.Take(ctx, r, parseName(t, names[1]), dest); ok || err != nil {
		t.Fatalf("Take after the repository was replaced = %v, %v; want nothing served", ok, err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Errorf("%%p was written: %v", err)
	}
}

// A spooled copy that changed after it was fetched is refused (and
// removed) instead of handed to the server.
func TestPrefetchTakeChecksTheCopy(t *testing.T) {
	ctx := context.Background()
	files, names := segments(t, 1, 3)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 2, Spool: t.TempDir()}
	if err := p.Fill(ctx, r, parseName(t, names[0]), segSize); err != nil {
		t.Fatal(err)
	}
	for what, spoil := range map[string]func([]byte) []byte{
		"flipped byte":  func(b []byte) []byte { b[segSize/2] ^= 1; return b },
		"footer cut":    func(b []byte) []byte { return b[:segSize] },
		"other cluster": func(b []byte) []byte { return append(fakeSegment(t, names[1], sysID+1, 1), b[segSize:]...) },
	} {
		if err := p.Fill(ctx, r, parseName(t, names[0]), segSize); err != nil {
			t.Fatal(err)
		}
		spooled := filepath.Join(spoolDir(t, p, r), names[1])
		data, err := os.ReadFile(spooled)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(spooled, spoil(data), 0o600)
		dest := filepath.Join(dataDir(t), "RECOVERYXLOG")
		if ok, err := p.Take(ctx, r, parseName(t, names[1]), dest); ok || err == nil {
			t.Errorf("%s: Take = %v, %v; want refused with an error", what, ok, err)
		}
		if _, err := os.Stat(dest); !os.IsNotExist(err) {
			t.Errorf("%s: %%p was written", what)
		}
		if _, err := os.Stat(spooled); !os.IsNotExist(err) {
			t.Errorf("%s: the bad copy stays in the spool", what)
		}
	}
}

// A call for a segment a worker is fetching at that moment waits for the
// worker's copy rather than fetching it beside it; once the claim goes
// without a copy, it reports none, and the caller fetches.
func TestPrefetchTakeWaitsForTheWorker(t *testing.T) {
	ctx := context.Background()
	files, names := segments(t, 1, 3)
	root := archived(t, repo.LayoutWalship, repo.CodecLZ4, files)
	r := openRepo(t, root, repo.LayoutAuto)
	p := Prefetch{N: 1, Spool: t.TempDir()}
	dest := filepath.Join(dataDir(t), "RECOVERYXLOG")
	d, err := p.dir(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	release, ok := d.Claim(names[1])
	if !ok {
		t.Fatal("could not claim")
	}
	fetched := make(chan error, 1)
	go func() {
		// The worker's fetch, as Fill does it, done a moment after the
		// call began.
		time.Sleep(150 * time.Millisecond)
		_, err := fetch(ctx, openRepo(t, root, repo.LayoutAuto), parseName(t, names[1]), d.Path(names[1]), true)
		release()
		fetched <- err
	}()
	ok, err = p.Take(ctx, r, parseName(t, names[1]), dest)
	if err != nil || !ok {
		t.Fatalf("Take while a worker fetches it = %v, %v; want the worker's copy served", ok, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, files[names[1]]) {
		t.Fatal("served segment differs from the archived one")
	}
	if err := <-fetched; err != nil {
		t.Fatalf("the worker's fetch: %v", err)
	}
	// A claim given up without a copy: nothing to serve.
	release, _ = d.Claim(names[2])
	go func() { time.Sleep(100 * time.Millisecond); release() }()
	if ok, err := p.Take(ctx, r, parseName(t, names[2]), dest); ok || err != nil {
		t.Errorf("Take after a claim without a copy = %v, %v; want not served", ok, err)
	}
}
