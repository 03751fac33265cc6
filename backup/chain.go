package backup

// An incremental backup (PostgreSQL 17 and later) holds each relation
// file that changed since its parent as INCREMENTAL.<name>: a header (a
// magic number, the number of blocks it holds, the truncation length: the
// least number of blocks the file has, then the block numbers, relative
// to the file; padded to a whole block when it holds any) and those
// blocks. Restoring it rebuilds each such file as pg_combinebackup does
// (src/bin/pg_combinebackup/reconstruct.c): a block of the rebuilt file is
// the newest member's when it has one; below the newest truncation length,
// else the block of the newest member below that has it (an incremental
// file's, or a whole file's); blocks nobody has are zeros, and the file is
// as long as the truncation length or the newest block.
//
// The members are read oldest first, each tar once, without a copy of any
// member on local disk and without remembering blocks: the member that
// holds a file whole writes it, each newer member writes its incremental
// blocks over it, and the newest member cuts the file at its truncation
// length before writing its own and filling what is left with zeros. The
// last writer of a block is the newest member that has it, which is the
// block pg_combinebackup takes; what a restore holds is one plan entry
// per file, whatever the size of the files or of their changes. Which
// member holds each file whole, and that every member above it has the
// incremental file, is known from the manifests before any tar is read.
//
// The visibility map is the exception. PostgreSQL 17 and 18 clear its
// bits (a page no longer all-visible after an insert, update or delete)
// without naming the map's block in the WAL record, so the WAL summary
// misses the change and an incremental backup leaves the map's block out:
// the block from an older member may say all-visible for a heap page that
// is not, and index-only scans then return rows they should not
// (pgsql-hackers, "Why clearing the VM doesn't require registering vm
// buffer in wal record", 2026; pg_combinebackup restores that stale map).
// A map page that is all zeros claims nothing and is always safe, so a
// visibility map the newest member holds as an incremental file is made
// from that member's blocks alone, zeros elsewhere: the next VACUUM sets
// the bits again.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/pgdata"
	"golang.org/x/sys/unix"
)

// incrementalMagic starts every incremental file (native byte order).
const incrementalMagic = 0xd3ae1f0d

// maxRelBlocks bounds the blocks of one relation file a header may
// name (a relation segment is 1 GB: 131072 blocks of 8 kB).
const maxRelBlocks = 1 << 24

// source is where one file of the restored data directory comes from.
type source struct {
	whole int  // the member that holds it whole (the newest, for most files)
	inc   bool // the members above whole hold it as an incremental file
	vm    bool // a visibility map made from the newest member's blocks alone
}

// chainPlan says, for every file of the newest member's manifest (by its
// path in the manifest), which member of the chain writes it first.
type chainPlan struct {
	files  map[string]source
	newest int // the newest member's index
	first  int // the oldest member any file needs
}

// planChain plans the restore of chain (the full backup first) from the
// members' manifests. A file incremental in a member must be in the
// member below, whole or incremental, down to one that holds it whole;
// a chain where it is not is damaged.
func planChain(chain []*catalog.Record, mans []*pgdata.Manifest) (*chainPlan, error) {
	newest := len(chain) - 1
	p := &chainPlan{files: map[string]source{}, newest: newest, first: newest}
	has := make([]map[string]bool, newest)
	for i := range has {
		has[i] = make(map[string]bool, len(mans[i].Files))
		for _, e := range mans[i].Files {
			has[i][e.Path] = true
		}
	}
	for _, e := range mans[newest].Files {
		name, inc := isIncremental(e.Path)
		if _, dup := p.files[name]; dup {
			return nil, fmt.Errorf("%w: backup %s holds %s both whole and as an incremental file", ErrDamaged, chain[newest].ID, name)
		}
		if !inc {
			p.files[name] = source{whole: newest}
			continue
		}
		if newest == 0 {
			return nil, fmt.Errorf("%w: a full backup holding the incremental file %s", ErrDamaged, e.Path)
		}
		s := source{whole: -1, inc: true, vm: isVisibilityMap(name)}
		for i := newest - 1; i >= 0 && s.whole < 0; i-- {
			switch {
			case has[i][name]:
				s.whole = i
			case i == 0:
				return nil, fmt.Errorf("%w: %s is incremental down to the full backup %s", ErrDamaged, name, chain[0].ID)
			case !has[i][e.Path]:
				return nil, fmt.Errorf("%w: backup %s, which backup %s builds on, lacks %s", ErrDamaged, chain[i].ID, chain[newest].ID, name)
			}
		}
		p.files[name] = s
		if !s.vm {
			p.first = min(p.first, s.whole)
		}
	}
	return p, nil
}

// use says whether member i writes the entry at path (its path in the
// manifest, INCREMENTAL.<name> for an incremental file).
func (p *chainPlan) use(i int, path string) bool {
	name, inc := isIncremental(path)
	s, ok := p.files[name]
	switch {
	case !ok:
		return false
	case i == p.newest:
		return true
	case s.vm:
		return false
	case inc:
		return s.inc && s.whole < i
	}
	return s.whole == i
}

// lacking lists the entries member i should have given (by the plan) but
// its tars did not hold: missing, the manifest's paths that were never
// checked.
func (p *chainPlan) lacking(i int, missing []string) []string {
	var out []string
	for _, m := range missing {
		if p.use(i, m) {
			out = append(out, m)
		}
	}
	return out
}

// incHeader is the header of an incremental file.
type incHeader struct {
	blocks []uint32 // relative block numbers, in the order of the blocks
	trunc  uint32
}

// readIncHeader reads an incremental file's header (and its padding) from
// r, the file's content, and checks it against the file's size.
func readIncHeader(r io.Reader, size int64, blockSize int) (incHeader, error) {
	var fixed [12]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return incHeader{}, fmt.Errorf("%w: an incremental file shorter than its header", ErrDamaged)
	}
	magic := binary.LittleEndian.Uint32(fixed[0:])
	n := binary.LittleEndian.Uint32(fixed[4:])
	h := incHeader{trunc: binary.LittleEndian.Uint32(fixed[8:])}
	switch {
	case magic != incrementalMagic:
		return h, fmt.Errorf("%w: an incremental file with the magic number %#x, not %#x", ErrDamaged, magic, incrementalMagic)
	case n > maxRelBlocks || h.trunc > maxRelBlocks:
		return h, fmt.Errorf("%w: an incremental file of %d blocks, truncated at %d", ErrDamaged, n, h.trunc)
	}
	hdr := int64(12 + 4*n)
	if n > 0 && hdr%int64(blockSize) != 0 {
		hdr += int64(blockSize) - hdr%int64(blockSize)
	}
	if want := hdr + int64(n)*int64(blockSize); size != want {
		return h, fmt.Errorf("%w: an incremental file of %d blocks has %d bytes, not %d (block size %d)", ErrDamaged, n, size, want, blockSize)
	}
	raw := make([]byte, hdr-12)
	if _, err := io.ReadFull(r, raw); err != nil {
		return h, fmt.Errorf("%w: an incremental file shorter than its header", ErrDamaged)
	}
	h.blocks = make([]uint32, n)
	for i := range h.blocks {
		h.blocks[i] = binary.LittleEndian.Uint32(raw[4*i:])
		if h.blocks[i] >= maxRelBlocks {
			return h, fmt.Errorf("%w: an incremental file names block %d", ErrDamaged, h.blocks[i])
		}
	}
	return h, nil
}

// blockWriter writes blocks of one file at their places, runs of
// neighbours in one call.
type blockWriter struct {
	f     io.WriterAt
	bs    int64
	start uint32 // the block buf starts at
	buf   []byte // whole blocks, at most cap(buf)
}

func (w *blockWriter) add(b uint32, data []byte) error {
	if len(w.buf) > 0 && (int64(b) != int64(w.start)+int64(len(w.buf))/w.bs || len(w.buf)+len(data) > cap(w.buf)) {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(w.buf) == 0 {
		w.start = b
	}
	w.buf = append(w.buf, data...)
	return nil
}

func (w *blockWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.f.WriteAt(w.buf, int64(w.start)*w.bs)
	w.buf = w.buf[:0]
	return err
}

// writeBlocks reads the blocks an incremental file lists (in order) from
// r and writes each at its place in f.
func writeBlocks(f *os.File, r io.Reader, blocks []uint32, bs int, buf []byte) error {
	w := &blockWriter{f: f, bs: int64(bs), buf: buf[:0]}
	block := make([]byte, bs)
	for _, b := range blocks {
		if _, err := io.ReadFull(r, block); err != nil {
			return fmt.Errorf("reading an incremental file: %w", unexpected(err))
		}
		if err := w.add(b, block); err != nil {
			return &writeError{f.Name(), err}
		}
	}
	if err := w.flush(); err != nil {
		return &writeError{f.Name(), err}
	}
	return nil
}

// applyIncremental writes the blocks of a member's incremental file over
// the file an older member began (a member between the one that holds it
// whole and the newest).
func (s *stage) applyIncremental(name string, size int64, content io.Reader, bs int, buf []byte) error {
	h, err := readIncHeader(content, size, bs)
	if err != nil {
		return err
	}
	f, err := s.reopen(name)
	if err != nil {
		return &writeError{name, err}
	}
	defer f.Close()
	if err := writeBlocks(f, content, h.blocks, bs, buf); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return &writeError{name, err}
	}
	return nil
}

// finishIncremental finishes a file from the newest member's incremental
// file: what the older members wrote is cut at the truncation length, the
// newest blocks are written, and every block still unwritten below the
// file's length is written as zeros. fresh makes the file (a visibility
// map, which takes nothing from older members) instead of finishing the
// one older members wrote.
func (s *stage) finishIncremental(name string, mode fs.FileMode, mtime time.Time, size int64, content io.Reader, bs int, buf []byte, fresh bool) error {
	h, err := readIncHeader(content, size, bs)
	if err != nil {
		return err
	}
	length := h.trunc
	for _, b := range h.blocks {
		length = max(length, b+1)
	}
	var f *os.File
	if fresh {
		f, err = s.create(name, mode)
	} else {
		f, err = s.reopen(name)
	}
	if err != nil {
		return &writeError{name, err}
	}
	defer f.Close()
	if err := f.Truncate(int64(h.trunc) * int64(bs)); err != nil {
		return &writeError{name, err}
	}
	if err := writeBlocks(f, content, h.blocks, bs, buf); err != nil {
		return err // reading the backup, or a writeError
	}
	end := int64(length) * int64(bs)
	err = f.Truncate(end)
	if err == nil {
		err = fillHoles(f, end)
	}
	if err == nil {
		err = f.Chmod(mode.Perm() | 0o600)
	}
	if err == nil {
		err = setMtime(f, mtime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &writeError{name, err}
	}
	s.written += end
	return nil
}

// zeros is a run of zero bytes to fill holes with.
var zeros = make([]byte, 256<<10)

// fillHoles writes zeros where f has a hole below end (blocks no member
// had, and what a truncation extended), so that the rebuilt file has its
// space as one the server extended has, not less. A file system that
// does not report holes has none to fill.
func fillHoles(f *os.File, end int64) error {
	fd := int(f.Fd())
	for off := int64(0); off < end; {
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return nil
			}
			return err
		}
		if hole >= end {
			return nil
		}
		data, err := unix.Seek(fd, hole, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) || (err == nil && data > end) {
			data, err = end, nil
		}
		if err != nil {
			return err
		}
		for at := hole; at < data; {
			n := min(int64(len(zeros)), data-at)
			if _, err := f.WriteAt(zeros[:n], at); err != nil {
				return err
			}
			at += n
		}
		off = data
	}
	return nil
}

// isVisibilityMap tells a visibility map fork by its name: <relfilenode>_vm,
// or a further segment of one (<relfilenode>_vm.<n>).
func isVisibilityMap(name string) bool {
	base := path.Base(name)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	rel, ok := strings.CutSuffix(base, "_vm")
	if !ok || rel == "" {
		return false
	}
	return strings.Trim(rel, "0123456789") == ""
}

// unexpected is io.ErrUnexpectedEOF for a content that ends early.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
