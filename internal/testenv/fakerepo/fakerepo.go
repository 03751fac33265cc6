// Package fakerepo fills a local walship repository with fake WAL files
// (wal.FakeSegment contents, real history and backup history text) for
// the tests of the packages that read whole repositories: inspect, prune.
package fakerepo

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/local"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// SysID is the database system identifier of every fake cluster.
const SysID uint64 = 7229286521432618453

// SegSize is the segment size of the fake cluster: PostgreSQL's smallest,
// to keep tests quick.
const SegSize uint32 = 1 << 20

// Repo is a local repository under construction.
type Repo struct {
	t     testing.TB
	Dir   string
	B     storage.Backend // the directory's backend, under R
	R     *repo.Repo
	Codec repo.Codec
	plain bool // bare files without an identity file, as cp writes them
}

// New makes an empty repository in the walship layout whose identity file
// is written by the first segment.
func New(t testing.TB) *Repo {
	t.Helper()
	return NewAt(t, t.TempDir())
}

// NewAt is New in the directory dir.
func NewAt(t testing.TB, dir string) *Repo {
	t.Helper()
	b, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := repo.New(b, repo.Options{Layout: repo.LayoutAuto, Create: true})
	return &Repo{t: t, Dir: dir, B: b, R: r, Codec: repo.CodecLZ4}
}

// NewPlain makes a repository of bare uncompressed files with no identity
// file, as `cp %p /archive/%f` leaves.
func NewPlain(t testing.TB) *Repo {
	f := New(t)
	f.plain, f.Codec = true, repo.CodecNone
	f.R = repo.New(f.B, repo.Options{Layout: repo.LayoutPlain})
	return f
}

// Open returns a fresh repo.Repo on the same directory (nothing cached), in
// the given layout.
func (f *Repo) Open(layout repo.Layout) *repo.Repo {
	f.t.Helper()
	b, err := local.New(f.Dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return repo.New(storage.WithRetry(b, storage.RetryPolicy{OpTimeout: 10 * time.Second, Budget: time.Second, FirstDelay: time.Millisecond, MaxDelay: time.Millisecond}), repo.Options{Layout: layout})
}

func (f *Repo) put(n wal.Name, data []byte) {
	f.t.Helper()
	if f.plain {
		if err := os.WriteFile(filepath.Join(f.Dir, n.String()), data, 0o600); err != nil {
			f.t.Fatal(err)
		}
		return
	}
	ctx := context.Background()
	w := repo.New(f.B, repo.Options{Layout: repo.LayoutAuto, Create: true, Compress: f.Codec})
	if n.Kind == wal.KindSegment || n.Kind == wal.KindPartial {
		h, err := wal.ParseLongHeader(data)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := w.Claim(ctx, h); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := w.Put(ctx, n, data); err != nil {
		f.t.Fatalf("storing %s: %v", n, err)
	}
}

// Name parses a WAL file name or fails the test.
func Name(t testing.TB, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Seg is the name of segment segno on timeline tli.
func Seg(tli uint32, segno uint64) wal.Name { return wal.SegmentFromNo(tli, segno, SegSize) }

// Segments stores segments from..to (inclusive) of timeline tli.
func (f *Repo) Segments(tli uint32, from, to uint64) {
	f.t.Helper()
	for s := from; s <= to; s++ {
		n := Seg(tli, s)
		f.put(n, waltest.FakeSegment(n, SysID, SegSize, nil))
	}
}

// Partial stores the .partial segment segno of timeline tli.
func (f *Repo) Partial(tli uint32, segno uint64) wal.Name {
	f.t.Helper()
	n := Seg(tli, segno)
	n.Kind = wal.KindPartial
	f.put(n, waltest.FakeSegment(n, SysID, SegSize, nil))
	return n
}

// History stores the history file of timeline tli: each pair is a parent
// timeline and the segment number where it was left (switch point in the
// middle of that segment).
func (f *Repo) History(tli uint32, parents ...[2]uint64) {
	f.t.Helper()
	var text string
	for _, p := range parents {
		text += fmt.Sprintf("%d\t%s\tno recovery target specified\n", p[0], SwitchPoint(p[1]))
	}
	f.put(wal.Name{Kind: wal.KindHistory, Timeline: tli}, []byte(text))
}

// SwitchPoint is the LSN fake history files put in segment segno.
func SwitchPoint(segno uint64) wal.LSN { return wal.LSN(segno*uint64(SegSize) + 0x4000) }

// Backup stores the backup history file of a base backup on timeline tli
// from segment start to segment stop, taken at time at. It returns the
// file's name.
func (f *Repo) Backup(tli uint32, start, stop uint64, at time.Time) wal.Name {
	f.t.Helper()
	startLSN := wal.LSN(start*uint64(SegSize) + 0x28)
	stopLSN := wal.LSN(stop*uint64(SegSize) + 0x100)
	n := Seg(tli, start)
	n.Kind, n.Offset = wal.KindBackup, 0x28
	ts := wal.FormatBackupTime(at)
	text := fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\n"+
		"CHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s\n"+
		"LABEL: fake\nSTART TIMELINE: %d\nSTOP TIME: %s\nSTOP TIMELINE: %d\n",
		startLSN, Seg(tli, start), stopLSN, Seg(tli, stop), startLSN+0x38, ts, tli, ts, tli)
	f.put(n, []byte(text))
	return n
}

// Put stores a file with arbitrary content (for damaged files), behind
// the repository's back: no checks, no identity claimed.
func (f *Repo) Put(n wal.Name, data []byte) {
	f.t.Helper()
	if f.plain {
		f.put(n, data)
		return
	}
	c := f.Codec
	if !repo.Compressible(n.Kind) {
		c = repo.CodecNone
	}
	obj, err := repo.Encode(c, data, true) // the walship layout: uncompressed objects are sealed
	if err != nil {
		f.t.Fatal(err)
	}
	p := filepath.Join(f.Dir, filepath.FromSlash(repo.Key(repo.LayoutWalship, n, c)))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, obj, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// Path is the file that holds n, or "" if it is not stored.
func (f *Repo) Path(n wal.Name) string {
	f.t.Helper()
	for _, loc := range repo.Candidates(repo.LayoutAuto, n) {
		p := filepath.Join(f.Dir, filepath.FromSlash(loc.Key))
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// Has reports whether n is stored.
func (f *Repo) Has(n wal.Name) bool { f.t.Helper(); return f.Path(n) != "" }

// Delete removes n's file behind the repository's back.
func (f *Repo) Delete(n wal.Name) {
	f.t.Helper()
	p := f.Path(n)
	if p == "" {
		f.t.Fatalf("%s is not stored", n)
	}
	if err := os.Remove(p); err != nil {
		f.t.Fatal(err)
	}
}

// Age sets the modification time (the archive time the listing reports)
// of n's file.
func (f *Repo) Age(n wal.Name, at time.Time) {
	f.t.Helper()
	if err := os.Chtimes(f.Path(n), at, at); err != nil {
		f.t.Fatal(err)
	}
}

// Names lists the WAL files stored, sorted, plus walship.json if present.
func (f *Repo) Names() []string {
	f.t.Helper()
	var out []string
	err := filepath.WalkDir(f.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(f.Dir, path)
		if rel == repo.IdentityKey {
			out = append(out, rel)
			return nil
		}
		if n, _, _, ok := repo.ParseKey(filepath.ToSlash(rel)); ok {
			out = append(out, n.String())
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// BackupFiles are the files of a fake base backup.
var BackupFiles = map[string]string{
	"backup_label":      "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: fake\n",
	"PG_VERSION":        "15\n",
	"global/pg_control": strings.Repeat("\x01", 8192),
}

// StoredBackup stores a base backup as walship backup create does (a
// base.tar of BackupFiles, its manifest, and its record, written last) on
// timeline tli from segment start to segment stop, taken at time at from
// "primary" or "standby". A backup from a primary also gets its backup
// history file, as PostgreSQL archives one. It returns the backup's ID.
func (f *Repo) StoredBackup(tli uint32, start, stop uint64, at time.Time, from string) repo.BackupID {
	f.t.Helper()
	return f.storedBackup(tli, start, stop, at, from, BackupFiles, "")
}

// StoredIncremental is StoredBackup of an incremental backup taken from a
// standby relative to parent.
func (f *Repo) StoredIncremental(tli uint32, start, stop uint64, at time.Time, parent repo.BackupID) repo.BackupID {
	f.t.Helper()
	return f.storedBackup(tli, start, stop, at, "standby", BackupFiles, parent)
}

// StoredBackupMismatch is StoredBackup whose base.tar holds other content
// than its manifest lists: PG_VERSION says 16 (same size, other checksum).
func (f *Repo) StoredBackupMismatch(tli uint32, start, stop uint64, at time.Time) repo.BackupID {
	f.t.Helper()
	files := map[string]string{}
	for k, v := range BackupFiles {
		files[k] = v
	}
	files["PG_VERSION"] = "16\n"
	return f.storedBackup(tli, start, stop, at, "standby", files, "")
}

func (f *Repo) storedBackup(tli uint32, start, stop uint64, at time.Time, from string, tarFiles map[string]string, parent repo.BackupID) repo.BackupID {
	f.t.Helper()
	names := make([]string, 0, len(BackupFiles))
	for n := range BackupFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	var entries []TarFile
	for _, n := range names {
		entries = append(entries, TarFile{Header: tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o600}, Content: tarFiles[n], Listed: BackupFiles[n]})
	}
	return f.StoredBackupTar(tli, start, stop, at, from, entries, parent)
}

// TarFile is one entry of a fake backup's base.tar. The manifest lists a
// regular file with the content Listed (Content when Listed is "" and
// the entry is not Unlisted).
type TarFile struct {
	Header   tar.Header // Size is set from Content for a regular file
	Content  string
	Listed   string
	Unlisted bool
}

// StoredBackupTar is StoredBackup of a base.tar holding exactly entries,
// in this order, whatever they are (a test's crafted tar).
func (f *Repo) StoredBackupTar(tli uint32, start, stop uint64, at time.Time, from string, entries []TarFile, parent repo.BackupID) repo.BackupID {
	f.t.Helper()
	ctx := context.Background()
	id := repo.NewBackupID(at)
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	var man strings.Builder
	man.WriteString("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n")
	listed := 0
	for _, e := range entries {
		h := e.Header
		if h.ModTime.IsZero() {
			h.ModTime = at
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Content))
		}
		if err := tw.WriteHeader(&h); err != nil {
			f.t.Fatal(err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		io.WriteString(tw, e.Content)
		if e.Unlisted {
			continue
		}
		content := e.Listed
		if content == "" {
			content = e.Content
		}
		var crc [4]byte
		binary.LittleEndian.PutUint32(crc[:], crc32.Checksum([]byte(content), crc32.MakeTable(crc32.Castagnoli)))
		if listed > 0 {
			man.WriteString(",\n")
		}
		listed++
		fmt.Fprintf(&man, "{ \"Path\": %q, \"Size\": %d, \"Last-Modified\": \"2024-05-01 02:00:00 GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"%s\" }",
			h.Name, len(content), hex.EncodeToString(crc[:]))
	}
	if err := tw.Close(); err != nil {
		f.t.Fatal(err)
	}
	startLSN, stopLSN := wal.LSN(start*uint64(SegSize)+0x28), wal.LSN(stop*uint64(SegSize)+0x100)
	fmt.Fprintf(&man, "\n],\n\"WAL-Ranges\": [\n{ \"Timeline\": %d, \"Start-LSN\": \"%s\", \"End-LSN\": \"%s\" }\n],\n", tli, startLSN, stopLSN)
	sum := sha256.Sum256([]byte(man.String()))
	manSum := hex.EncodeToString(sum[:])
	fmt.Fprintf(&man, "\"Manifest-Checksum\": \"%s\"}\n", manSum)

	m := catalog.Record{ID: id, Label: "fake", From: from, SystemID: SysID, PGVersion: "15.4", PGVersionNum: 150004,
		SegSize: SegSize, Start: startLSN, StartTimeline: tli, Stop: stopLSN, StopTimeline: tli, Checkpoint: startLSN + 0x38,
		StartTime: at.UTC().Truncate(time.Second), StopTime: at.UTC().Truncate(time.Second).Add(time.Minute),
		Manifest: &catalog.ManifestInfo{Checksum: manSum, Algorithm: "CRC32C"}, Files: listed, Parent: parent}
	for _, p := range []struct {
		part repo.BackupPart
		data []byte
	}{{repo.BasePart, tarBuf.Bytes()}, {repo.ManifestPart, []byte(man.String())}} {
		info, err := f.R.PutStream(ctx, repo.BackupObject{ID: id, Part: p.part}, bytes.NewReader(p.data))
		if err != nil {
			f.t.Fatal(err)
		}
		m.Objects = append(m.Objects, catalog.RecordObject{Name: p.part.String(), Size: info.Raw, Stored: info.Stored})
		m.Size += info.Raw
		m.Stored += info.Stored
	}
	if err := catalog.PutRecord(ctx, f.R, m); err != nil {
		f.t.Fatal(err)
	}
	if from == "primary" {
		f.Backup(tli, start, stop, at)
	}
	return id
}

// IncompleteBackup stores the base.tar of a backup without its record, as
// an interrupted backup leaves it, last written at time at.
func (f *Repo) IncompleteBackup(id repo.BackupID, at time.Time) string {
	f.t.Helper()
	o := repo.BackupObject{ID: id, Part: repo.BasePart}
	if _, err := f.R.PutStream(context.Background(), o, bytes.NewReader([]byte("half a tar"))); err != nil {
		f.t.Fatal(err)
	}
	p := filepath.Join(f.Dir, filepath.FromSlash(o.Key()))
	if err := os.Chtimes(p, at, at); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// BackupPath is the file of one object of a stored backup.
func (f *Repo) BackupPath(id repo.BackupID, part repo.BackupPart) string {
	return filepath.Join(f.Dir, filepath.FromSlash(repo.BackupObject{ID: id, Part: part}.Key()))
}
