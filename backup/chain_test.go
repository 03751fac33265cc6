package backup

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
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

// rebuild runs one file through the chain, newest member first: the
// newest's incremental file, then each older member's file (incremental
// when it starts with the magic number), and returns the file written.
func rebuild(t *testing.T, newest []byte, older ...[]byte) ([]byte, error) {
	t.Helper()
	st, err := openStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	buf := make([]byte, 4*testBS)
	mtime := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	if err := st.newest("base/5/16384", 0o600, mtime, int64(len(newest)), bytes.NewReader(newest), testBS, buf); err != nil {
		return nil, err
	}
	for _, o := range older {
		p := st.pending["base/5/16384"]
		if p == nil {
			break
		}
		inc := len(o) >= 4 && binary.LittleEndian.Uint32(o) == incrementalMagic
		if err := st.older("base/5/16384", p, inc, int64(len(o)), bytes.NewReader(o), testBS, buf); err != nil {
			return nil, err
		}
	}
	if len(st.pending) > 0 {
		return nil, errors.New("still pending")
	}
	out, err := st.root.ReadFile("base/5/16384")
	if fi, _ := st.root.Stat("base/5/16384"); err == nil && !fi.ModTime().Equal(mtime) {
		t.Errorf("rebuilt file's time %s, want %s", fi.ModTime(), mtime)
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
		{"nothing below the length: no older member needed", incFile(0, "C", 1), nil,
			blocks(zero, block("C", 1))},
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
	if _, err := rebuild(t, good, incFile(4, "A", 1)); err == nil || !strings.Contains(err.Error(), "pending") {
		t.Errorf("a chain without a full file: %v", err)
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
	if err := st.newest("base/5/16384", 0o600, time.Time{}, int64(len(data)), bytes.NewReader(data), testBS, make([]byte, 64)); err == nil {
		t.Error("wrote an incremental file's blocks over an existing name")
	}
	if b, _ := os.ReadFile(outside); string(b) != "precious" {
		t.Errorf("the file outside holds %q", b)
	}
}

// A visibility map's blocks that come from older members are zeros (the
// server does not summarize the clearing of its bits, so they may be
// stale); those of the newest member are kept.
func TestRebuildZeroesOlderVisibilityMapBlocks(t *testing.T) {
	st, err := openStage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	buf := make([]byte, 4*testBS)
	newest, older := incFile(3, "N", 1), fullFile("F", 3)
	for _, name := range []string{"base/5/16384_vm", "base/5/16384"} {
		if err := st.newest(name, 0o600, time.Time{}, int64(len(newest)), bytes.NewReader(newest), testBS, buf); err != nil {
			t.Fatal(err)
		}
		if err := st.older(name, st.pending[name], false, int64(len(older)), bytes.NewReader(older), testBS, buf); err != nil {
			t.Fatal(err)
		}
	}
	zero := make([]byte, testBS)
	for name, want := range map[string][]byte{
		"base/5/16384_vm": blocks(zero, block("N", 1), zero),
		"base/5/16384":    blocks(block("F", 0), block("N", 1), block("F", 2)),
	} {
		if got, _ := st.root.ReadFile(name); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
	for name, want := range map[string]bool{"base/5/16384_vm": true, "pg_tblspc/1/PG_17/5/77_vm.1": true,
		"base/5/16384_fsm": false, "base/5/16384": false, "base/5/x_vm": false, "global/_vm": false} {
		if isVisibilityMap(name) != want {
			t.Errorf("isVisibilityMap(%q) = %v", name, !want)
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
