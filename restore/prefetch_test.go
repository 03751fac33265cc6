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
	ok, err := p.Take(r, parseName(t, names[1]), dest)
	if err != nil || !ok {
		t.Fatalf("Take(%s) = %v, %v; want served from the spool", names[1], ok, err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, files[names[1]]) {
		t.Fatalf("served %s differs from the archived segment", names[1])
	}
	if _, err := os.Stat(filepath.Join(spoolDir(t, p, r), names[1])); !os.IsNotExist(err) {
		t.Errorf("a served segment stays in the spool: %v", err)
	}
	if ok, _ := p.Take(r, parseName(t, names[5]), dest); ok {
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
	if ok, _ := p.Take(r, parseName(t, names[1]), filepath.Join(dataDir(t), "RECOVERYXLOG")); ok {
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
	p.Clean(r, parseName(t, names2[1]))
	if got := dirNames(t, spoolDir(t, p, r)); len(got) != 0 {
		t.Errorf("after a switch to timeline 2, the spool still holds %v", got)
	}
	if err := p.Fill(context.Background(), r, parseName(t, names2[1]), segSize); err != nil {
		t.Fatal(err)
	}
	// Asked for names2[2], the spool keeps it (to serve) and what follows.
	p.Clean(r, parseName(t, names2[2]))
	if got := dirNames(t, spoolDir(t, p, r)); strings.Join(got, ",") != names2[2]+","+names2[3] {
		t.Errorf("asked for %s, the spool holds %v, want %s and %s", names2[2], got, names2[2], names2[3])
	}
	p.Clean(r, parseName(t, names2[3]))
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
	if !p.NeedsFill(r, cur, segSize) {
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
		{"a worker is fetching", []string{"." + names[1] + ".claim"}, false},
	} {
		spool(tc.spooled...)
		if got := p.NeedsFill(r, cur, segSize); got != tc.want {
			t.Errorf("%s: NeedsFill = %v, want %v", tc.what, got, tc.want)
		}
	}
	// A claim left by a killed worker does not stop prefetch for long.
	spool("." + names[1] + ".claim")
	old := time.Now().Add(-2 * busyClaim)
	os.Chtimes(filepath.Join(dir, "."+names[1]+".claim"), old, old)
	if !p.NeedsFill(r, cur, segSize) {
		t.Errorf("an old claim: NeedsFill = false, want true")
	}
}

// spoolDir is the directory of r's prefetched segments.
func spoolDir(t *testing.T, p Prefetch, r *repo.Repo) string {
	t.Helper()
	d, err := p.dir(r)
	if err != nil {
		t.Fatal(err)
	}
	return d.Path("")
}
