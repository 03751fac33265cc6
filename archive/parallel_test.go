package archive

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
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

func TestPushAheadPushesReadyFilesAndAnswersFromMarkers(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 6)
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), repo.LayoutAuto)
	p := Parallel{N: 4, Spool: filepath.Join(t.TempDir(), "spool")}

	res, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p)
	if err != nil {
		t.Fatalf("PushAhead(%s): %v", names[0], err)
	}
	if res.Ahead || res.Existed {
		t.Errorf("first call: Ahead=%v Existed=%v, want a fresh push", res.Ahead, res.Existed)
	}
	for i, name := range names {
		if got, want := isStored(t, r, name), i < 4; got != want {
			t.Errorf("after the first call, %s stored = %v, want %v", name, got, want)
		}
	}
	// The server's own calls for the pushed-ahead files are answered from
	// the markers; the one after them starts a new batch.
	sp, err := spool.Open(p.Spool, r.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range names[1:4] {
		res, err := PushAhead(ctx, r, filepath.Join(walDir, f), name(t, f), p)
		if err != nil || !res.Ahead {
			t.Fatalf("PushAhead(%s) = Ahead %v, err %v; want answered from the marker", f, res.Ahead, err)
		}
		if sp.Has(f) {
			t.Errorf("marker of %s not consumed", f)
		}
	}
	res, err = PushAhead(ctx, r, filepath.Join(walDir, names[4]), name(t, names[4]), p)
	if err != nil || res.Ahead {
		t.Fatalf("PushAhead(%s) = Ahead %v, err %v; want a real push", names[4], res.Ahead, err)
	}
	if !isStored(t, r, names[5]) {
		t.Errorf("%s was not pushed ahead with %s", names[5], names[4])
	}
}

func TestMarkerNeverAnswersForChangedContentOrMissingObject(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 3)
	r := openRepo(t, filepath.Join(t.TempDir(), "repo"), repo.LayoutAuto)
	p := Parallel{N: 3, Spool: filepath.Join(t.TempDir(), "spool")}
	if _, err := PushAhead(ctx, r, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}

	// names[1] changed on disk after it was pushed ahead: the marker must
	// not answer, and the real push refuses the different content.
	path1 := filepath.Join(walDir, names[1])
	data, _ := os.ReadFile(path1)
	data[segSize-1] ^= 0xFF
	os.WriteFile(path1, data, 0o600)
	if _, err := PushAhead(ctx, r, path1, name(t, names[1]), p); !errors.Is(err, repo.ErrDifferent) {
		t.Errorf("changed file after a look-ahead push: err = %v, want ErrDifferent", err)
	}

	// names[2]'s object vanished from the repository (someone pruned it):
	// the marker must not answer; the file is pushed again.
	n2, _ := wal.ParseName(names[2])
	loc, err := r.Find(ctx, n2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, loc); err != nil {
		t.Fatal(err)
	}
	res, err := PushAhead(ctx, r, filepath.Join(walDir, names[2]), name(t, names[2]), p)
	if err != nil || res.Ahead {
		t.Fatalf("vanished object: Ahead %v, err %v; want a real push", res.Ahead, err)
	}
	if !isStored(t, r, names[2]) {
		t.Errorf("%s not stored again", names[2])
	}
}

func TestMarkersAreKeptPerRepository(t *testing.T) {
	ctx := context.Background()
	walDir, names := fakeWAL(t, 2)
	spool := filepath.Join(t.TempDir(), "spool")
	r1 := openRepo(t, filepath.Join(t.TempDir(), "one"), repo.LayoutAuto)
	r2 := openRepo(t, filepath.Join(t.TempDir(), "two"), repo.LayoutAuto)
	p := Parallel{N: 2, Spool: spool}
	if _, err := PushAhead(ctx, r1, filepath.Join(walDir, names[0]), name(t, names[0]), p); err != nil {
		t.Fatal(err)
	}
	res, err := PushAhead(ctx, r2, filepath.Join(walDir, names[1]), name(t, names[1]), p)
	if err != nil || res.Ahead {
		t.Fatalf("other repository: Ahead %v, err %v; want a real push", res.Ahead, err)
	}
	if !isStored(t, r2, names[1]) {
		t.Errorf("%s not in the second repository", names[1])
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
