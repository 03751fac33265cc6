package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
)

const testBS = 16 // a small block size keeps the files readable

// block is the content of one test block: its source and number.
func block(src string, b int) []byte {
	return []byte(fmt.Sprintf("%-*s", testBS, fmt.Sprintf("%s%d", src, b)))
}

// incFile is an incremental file as the server writes it.
func incFile(trunc uint32, src string, blocks ...uint32) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, []uint32{incrementalMagic, uint32(len(blocks)), trunc})
	binary.Write(&b, binary.LittleEndian, blocks)
	if len(blocks) > 0 {
		for b.Len()%testBS != 0 {
			b.WriteByte(0)
		}
	}
	for _, n := range blocks {
		b.Write(block(src, int(n)))
	}
	return b.Bytes()
}

func fullFile(src string, n int) []byte {
	var b bytes.Buffer
	for i := range n {
		b.Write(block(src, i))
	}
	return b.Bytes()
}

// rebuild runs one file through the chain as a restore does, oldest
// member first: older lists the members below the newest, newest first
// (incremental when it starts with the magic number; the last must be
// whole), then the newest's incremental file finishes it. It returns the
// file written.
func rebuild(t *testing.T, newest []byte, older ...[]byte) ([]byte, error) {
	t.Helper()
	st, err := openStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	buf := make([]byte, 4*testBS)
	mtime := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	const name = "base/5/16384"
	for i := len(older) - 1; i >= 0; i-- {
		o := older[i]
		if len(o) >= 4 && binary.LittleEndian.Uint32(o) == incrementalMagic {
			if i == len(older)-1 {
				return nil, errors.New("no member holds the file whole")
			}
			err = st.applyIncremental(name, int64(len(o)), bytes.NewReader(o), testBS, buf)
		} else {
			err = st.writeFile(name, 0o600, time.Time{}, bytes.NewReader(o), buf, false)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := st.finishIncremental(name, 0o600, mtime, int64(len(newest)), bytes.NewReader(newest), testBS, buf, false); err != nil {
		return nil, err
	}
	out, err := st.root.ReadFile(name)
	if fi, _ := st.root.Stat(name); err == nil && !fi.ModTime().Equal(mtime) {
		t.Errorf("rebuilt file's time %s, want %s", fi.ModTime(), mtime)
	}
	if st.written != int64(len(out)) {
		t.Errorf("counted %d bytes written, the file has %d", st.written, len(out))
	}
	return out, err
}

func blocks(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Each file is rebuilt as pg_combinebackup's reconstruct.c does: the
// newest member's blocks first, then, member by member down the chain,
// the blocks still missing below the newest truncation length, from a
// full file all it has below it; blocks nobody has are zeros, and the file
// is as long as the truncation length or the newest block.
func TestRebuildFromChain(t *testing.T) {
	zero := make([]byte, testBS)
	for _, c := range []struct {
		name   string
		newest []byte
		older  [][]byte
		want   []byte
	}{
		{"unchanged since the full backup", incFile(4, "X"), [][]byte{fullFile("F", 4)},
			fullFile("F", 4)},
		{"changed blocks over the full backup's", incFile(4, "B", 1, 3), [][]byte{fullFile("F", 4)},
			blocks(block("F", 0), block("B", 1), block("F", 2), block("B", 3))},
		{"truncated: the full backup's blocks past the length go", incFile(2, "B"), [][]byte{fullFile("F", 6)},
			fullFile("F", 2)},
		{"extended: new blocks past the length, a gap of zeros", incFile(2, "B", 4), [][]byte{fullFile("F", 2)},
			blocks(fullFile("F", 2), zero, zero, block("B", 4))},
		{"shorter full file: zeros below the length", incFile(4, "B", 0), [][]byte{fullFile("F", 2)},
			blocks(block("B", 0), block("F", 1), zero, zero)},
		{"a chain: newest first, then each below the newest length", incFile(8, "C", 3),
			[][]byte{incFile(6, "B", 2, 7, 9), fullFile("F", 10)},
			blocks(block("F", 0), block("F", 1), block("B", 2), block("C", 3), block("F", 4), block("F", 5), block("F", 6), block("B", 7))},
		{"a middle member truncated to nothing", incFile(3, "C"),
			[][]byte{incFile(0, "B", 0, 1, 2), fullFile("F", 5)},
			blocks(block("B", 0), block("B", 1), block("B", 2))},
		{"nothing below the length: the older blocks all go", incFile(0, "C", 1), [][]byte{fullFile("F", 3)},
			blocks(zero, block("C", 1))},
		{"a middle member's block past the newest length goes", incFile(2, "C", 0),
			[][]byte{incFile(5, "B", 4), fullFile("F", 3)},
			blocks(block("C", 0), block("F", 1))},
		{"a middle member's block past the full file, below the newest length", incFile(6, "C"),
			[][]byte{incFile(6, "B", 4), fullFile("F", 2)},
			blocks(fullFile("F", 2), zero, zero, block("B", 4), zero)},
	} {
		got, err := rebuild(t, c.newest, c.older...)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// A damaged incremental file is refused: another magic number, a size
// that does not match its block count, a block number past any file.
func TestRebuildRefusesDamage(t *testing.T) {
	good := incFile(4, "B", 1)
	bad := map[string][]byte{
		"magic":   append([]byte{1, 2, 3, 4}, good[4:]...),
		"size":    good[:len(good)-1],
		"header":  good[:8],
		"too big": incFile(maxRelBlocks+1, "B"),
	}
	for name, data := range bad {
		if _, err := rebuild(t, data, fullFile("F", 4)); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want a damaged backup", name, err)
		}
	}
}

// The files are written through the stage's root: an incremental file
// whose rebuilt file exists already (a tar holding both) is refused, and
// nothing is written through a symbolic link.
func TestRebuildStaysInStage(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(outside, []byte("precious"), 0o600)
	os.MkdirAll(filepath.Join(dir, "base", "5"), 0o700)
	os.Symlink(outside, filepath.Join(dir, "base", "5", "16384"))
	st, err := openStage(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	data := incFile(2, "B", 0)
	if err := st.finishIncremental("base/5/16384", 0o600, time.Time{}, int64(len(data)), bytes.NewReader(data), testBS, make([]byte, 64), true); err == nil {
		t.Error("made a visibility map over an existing name")
	}
	if err := st.finishIncremental("base/5/16384", 0o600, time.Time{}, int64(len(data)), bytes.NewReader(data), testBS, make([]byte, 64), false); err == nil {
		t.Error("finished an incremental file through a symbolic link")
	}
	if err := st.applyIncremental("base/5/16384", int64(len(data)), bytes.NewReader(data), testBS, make([]byte, 64)); err == nil {
		t.Error("wrote an incremental file's blocks through a symbolic link")
	}
	if b, _ := os.ReadFile(outside); string(b) != "precious" {
		t.Errorf("the file outside holds %q", b)
	}
}

// A visibility map the newest member holds as an incremental file is
// made from its blocks alone, zeros elsewhere (the server does not
// summarize the clearing of its bits, so older blocks may be stale); the
// plan has no older member write it.
func TestRebuildZeroesOlderVisibilityMapBlocks(t *testing.T) {
	st, err := openStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	newest := incFile(3, "N", 1)
	if err := st.finishIncremental("base/5/16384_vm", 0o600, time.Time{}, int64(len(newest)), bytes.NewReader(newest), testBS, make([]byte, 4*testBS), true); err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, testBS)
	if got, _ := st.root.ReadFile("base/5/16384_vm"); !bytes.Equal(got, blocks(zero, block("N", 1), zero)) {
		t.Errorf("visibility map:\n got %q", got)
	}
	for name, want := range map[string]bool{"base/5/16384_vm": true, "pg_tblspc/1/PG_17/5/77_vm.1": true,
		"base/5/16384_fsm": false, "base/5/16384": false, "base/5/x_vm": false, "global/_vm": false} {
		if isVisibilityMap(name) != want {
			t.Errorf("isVisibilityMap(%q) = %v", name, !want)
		}
	}
}

// chainOf makes the records and manifests of a chain, the full backup
// first, each member holding the files named.
func chainOf(members ...[]string) ([]*catalog.Record, []*pgdata.Manifest) {
	var recs []*catalog.Record
	var mans []*pgdata.Manifest
	for i, files := range members {
		recs = append(recs, &catalog.Record{ID: repo.BackupID(fmt.Sprintf("20261207T00%02d00Z", i))})
		m := &pgdata.Manifest{}
		for _, f := range files {
			m.Files = append(m.Files, pgdata.ManifestEntry{Path: f})
		}
		mans = append(mans, m)
	}
	return recs, mans
}

// The plan has each file written first by the newest member that holds it
// whole, then by every member above with its incremental file; a visibility
// map only by the newest member; a file the newest member lacks (dropped)
// by nobody. A chain where a member lacks an incremental file's older
// version, or no member holds it whole, is damaged before any tar is read.
func TestPlanChain(t *testing.T) {
	recs, mans := chainOf(
		[]string{"PG_VERSION", "base/5/16384", "base/5/16384_vm", "base/5/16390", "base/5/99999"},
		[]string{"PG_VERSION", "base/5/INCREMENTAL.16384", "base/5/INCREMENTAL.16384_vm", "base/5/16390"},
		[]string{"PG_VERSION", "base/5/INCREMENTAL.16384", "base/5/INCREMENTAL.16384_vm", "base/5/INCREMENTAL.16390"},
	)
	p, err := planChain(recs, mans)
	if err != nil {
		t.Fatal(err)
	}
	if p.first != 0 {
		t.Errorf("first member needed %d, want 0", p.first)
	}
	for _, c := range []struct {
		member int
		path   string
		want   bool
	}{
		{0, "base/5/16384", true}, {0, "base/5/16384_vm", false}, {0, "base/5/16390", false},
		{0, "base/5/99999", false}, {0, "PG_VERSION", false},
		{1, "base/5/INCREMENTAL.16384", true}, {1, "base/5/INCREMENTAL.16384_vm", false},
		{1, "base/5/16390", true}, {1, "PG_VERSION", false},
		{2, "base/5/INCREMENTAL.16384", true}, {2, "base/5/INCREMENTAL.16384_vm", true},
		{2, "base/5/INCREMENTAL.16390", true}, {2, "PG_VERSION", true},
	} {
		if got := p.use(c.member, c.path); got != c.want {
			t.Errorf("member %d writes %s: %v, want %v", c.member, c.path, got, c.want)
		}
	}
	if lack := p.lacking(1, []string{"base/5/16390", "PG_VERSION", "base/5/INCREMENTAL.16384_vm"}); !slices.Equal(lack, []string{"base/5/16390"}) {
		t.Errorf("lacking = %v, want the file member 1 should have written", lack)
	}

	// The newest member holds everything whole but one file: the members
	// below the one holding it are not read at all.
	recs, mans = chainOf([]string{"PG_VERSION", "base/5/1"}, []string{"PG_VERSION", "base/5/1"},
		[]string{"PG_VERSION", "base/5/INCREMENTAL.1"})
	if p, err := planChain(recs, mans); err != nil || p.first != 1 {
		t.Errorf("plan %+v, %v: want the chain read from member 1", p, err)
	}

	for name, members := range map[string][][]string{
		"a middle member lacks the file": {{"base/5/1"}, {"PG_VERSION"}, {"base/5/INCREMENTAL.1"}},
		"incremental down to the full":   {{"base/5/INCREMENTAL.1"}, {"base/5/INCREMENTAL.1"}},
		"both whole and incremental":     {{"base/5/1"}, {"base/5/1", "base/5/INCREMENTAL.1"}},
	} {
		recs, mans := chainOf(members...)
		if _, err := planChain(recs, mans); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: %v, want a damaged chain", name, err)
		}
	}
}

// A NEWDIR that holds only what an interrupted restore left (its staging
// directories, after a kill -9) counts as empty, and is cleaned up; one
// that holds anything else is refused, untouched.
func TestLeftoverStagingIsCleanedUp(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, stagingPrefix+"20240501T020000Z", "base", "1"), 0o700)
	os.WriteFile(filepath.Join(dir, stagingPrefix+"20240501T020000Z", "base", "1", "1259"), []byte("x"), 0o600)
	if err := emptyOrAbsent(dir, nil); err != nil {
		t.Fatalf("a directory with an interrupted restore's staging only: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
	os.Mkdir(filepath.Join(dir, stagingPrefix+"x"), 0o700)
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("17\n"), 0o600)
	if err := emptyOrAbsent(dir, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("a directory with a file of its own: %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(dir, stagingPrefix+"x")); err != nil {
		t.Errorf("the refused directory was touched: %v", err)
	}
}

// An incremental backup is rebuilt only on the parent its backup_label
// was taken relative to (as pg_combinebackup checks): a record altered to
// name another parent, or a parent of another timeline, is refused as
// damaged, before any block of it is used.
func TestBuiltOn(t *testing.T) {
	label := func(from string, tli int) []byte {
		return []byte("START WAL LOCATION: 0/9000028 (file 000000010000000000000009)\n" +
			"CHECKPOINT LOCATION: 0/9000080\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n" +
			"START TIME: 2026-12-07 00:00:00 UTC\nLABEL: x\nSTART TIMELINE: 1\n" +
			fmt.Sprintf("INCREMENTAL FROM LSN: %s\nINCREMENTAL FROM TLI: %d\n", from, tli))
	}
	parent := &pgdata.Manifest{WALRanges: []pgdata.WALRange{{Timeline: 1, Start: 0x5000028, End: 0x5000100}}}
	m := &catalog.Record{ID: "20261207T000900Z", Parent: "20261207T000500Z"}
	if err := builtOn(m, label("0/5000028", 1), parent); err != nil {
		t.Errorf("the incremental taken on its parent: %v", err)
	}
	for _, c := range []struct {
		name  string
		label []byte
	}{
		{"taken on another backup", label("0/3000028", 1)},
		{"taken on the same position of another timeline", label("0/5000028", 2)},
		{"a label that is no backup_label", []byte("LABEL: x\n")},
	} {
		err := builtOn(m, c.label, parent)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), string(m.ID)) {
			t.Errorf("%s: builtOn = %v; want ErrDamaged naming %s", c.name, err, m.ID)
		}
	}
}

// Two restores into one directory: a restore that runs holds its staging
// directory locked, and a second one refuses the directory instead of
// removing that staging as an interrupted restore's; once the first is
// gone (killed: its lock goes with it), the leftover is removed. Two that
// claim their staging at the same moment see each other and refuse.
func TestConcurrentRestoresRefused(t *testing.T) {
	dir := t.TempDir()
	first := &dest{dir: dir}
	if err := first.claimStaging("20261207T000000Z"); err != nil {
		t.Fatal(err)
	}
	defer first.stage.close()
	if err := os.WriteFile(filepath.Join(first.staging, "PG_VERSION"), []byte("17\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := emptyOrAbsent(dir, nil); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "another walship backup restore") {
		t.Errorf("a second restore while the first runs: %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(first.staging, "PG_VERSION")); err != nil {
		t.Errorf("the running restore's staging was touched: %v", err)
	}
	second := &dest{dir: dir}
	if err := second.claimStaging("20261207T000000Z"); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("a second restore claiming its staging beside the first's: %v, want refused", err)
	}
	if second.staging == first.staging {
		t.Errorf("two restores share the staging directory %s", first.staging)
	}
	second.lock.Close()
	os.RemoveAll(second.staging)
	first.lock.Close() // the first is killed
	if err := emptyOrAbsent(dir, nil); err != nil {
		t.Errorf("after the first restore died: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left %v", ents)
	}
}
