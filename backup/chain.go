package backup

// An incremental backup (PostgreSQL 17 and later) holds each relation
// file that changed since its parent as INCREMENTAL.<name>: a header (a
// magic number, the number of blocks it holds, the truncation length: the
// least number of blocks the file has, then the block numbers, relative
// to the file; padded to a whole block when it holds any) and those
// blocks. Restoring it rebuilds each such file as pg_combinebackup does
// (src/bin/pg_combinebackup/reconstruct.c), without a copy of any member
// on local disk: the newest member's blocks are written into the file
// where they belong, then the members below are read in turn, newest
// first, and each gives the blocks still missing below the truncation
// length, until a member holds the file whole (which gives all it has
// below that length); blocks no member holds are zeros. A file is
// finished as soon as no block below the truncation length is missing.
//
// The visibility map is the exception. PostgreSQL 17 and 18 clear its
// bits (a page no longer all-visible after an insert, update or delete)
// without naming the map's block in the WAL record, so the WAL summary
// misses the change and an incremental backup leaves the map's block out:
// the block from an older member may say all-visible for a heap page that
// is not, and index-only scans then return rows they should not
// (pgsql-hackers, "Why clearing the VM doesn't require registering vm
// buffer in wal record", 2026; pg_combinebackup restores that stale map).
// A map page that is all zeros claims nothing and is always safe, so
// every block of a visibility map that does not come from the newest
// member is written as zeros: the next VACUUM sets the bits again.

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
)

// incrementalMagic starts every incremental file (native byte order).
const incrementalMagic = 0xd3ae1f0d

// maxRelBlocks bounds the blocks of one relation file a header may
// name (a relation segment is 1 GB: 131072 blocks of 8 kB).
const maxRelBlocks = 1 << 24

// pendingFile is one file of the restored data directory that an
// incremental file of the newest member stands for.
type pendingFile struct {
	mode   fs.FileMode
	mtime  time.Time
	trunc  uint32   // the newest member's truncation length
	length uint32   // blocks of the rebuilt file
	filled blockSet // the blocks of [0, length) written
	left   uint32   // blocks below trunc still missing
	seen   bool     // found in the member being read
	// vm: a visibility map fork, whose blocks from older members are
	// zeros (see above).
	vm bool
}

func (p *pendingFile) has(b uint32) bool { return p.filled.has(b) }
func (p *pendingFile) mark(b uint32) {
	if p.filled.add(b) && b < p.trunc {
		p.left--
	}
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

// newest handles INCREMENTAL.<name> of the newest member: its blocks are
// written, and the file waits for the rest from the members below.
func (s *stage) newest(name string, mode fs.FileMode, mtime time.Time, size int64, content io.Reader, bs int, buf []byte) error {
	h, err := readIncHeader(content, size, bs)
	if err != nil {
		return err
	}
	length := h.trunc
	for _, b := range h.blocks {
		length = max(length, b+1)
	}
	p := &pendingFile{mode: mode, mtime: mtime, trunc: h.trunc, length: length, filled: newBlockSet(length), left: h.trunc, vm: isVisibilityMap(name)}
	f, err := s.create(name, mode)
	if err != nil {
		return &writeError{name, err}
	}
	defer f.Close()
	if err := applyBlocks(f, content, h.blocks, p, bs, buf, true); err != nil {
		return err
	}
	if _, dup := s.pending[name]; dup {
		return fmt.Errorf("%w: %s twice", ErrDamaged, name)
	}
	s.pending[name] = p
	if p.left == 0 {
		return s.finishFile(name, p, f, bs, buf)
	}
	return f.Close()
}

// applyBlocks reads the blocks listed (in order) from r and writes those
// the file still lacks below its truncation length (or every one, for
// the newest member's).
func applyBlocks(f *os.File, r io.Reader, blocks []uint32, p *pendingFile, bs int, buf []byte, all bool) error {
	w := &blockWriter{f: f, bs: int64(bs), buf: buf[:0]}
	block, zero := make([]byte, bs), make([]byte, bs)
	for _, b := range blocks {
		if _, err := io.ReadFull(r, block); err != nil {
			return fmt.Errorf("reading an incremental file: %w", unexpected(err))
		}
		if (all || b < p.trunc) && !p.has(b) {
			data := block
			if p.vm && !all {
				data = zero
			}
			if err := w.add(b, data); err != nil {
				return &writeError{f.Name(), err}
			}
			p.mark(b)
		}
	}
	if err := w.flush(); err != nil {
		return &writeError{f.Name(), err}
	}
	return nil
}

// older handles one file of an older member that a pending file waits
// for: INCREMENTAL.<name> (incremental) or the file whole.
func (s *stage) older(name string, p *pendingFile, incremental bool, size int64, content io.Reader, bs int, buf []byte) error {
	p.seen = true
	f, err := s.reopen(name)
	if err != nil {
		return &writeError{name, err}
	}
	defer f.Close()
	if incremental {
		h, err := readIncHeader(content, size, bs)
		if err != nil {
			return err
		}
		if err := applyBlocks(f, content, h.blocks, p, bs, buf, false); err != nil {
			return err
		}
		if p.left > 0 {
			return f.Close()
		}
		return s.finishFile(name, p, f, bs, buf)
	}
	// The file whole: every block it has below the truncation length.
	w := &blockWriter{f: f, bs: int64(bs), buf: buf[:0]}
	block, zero := make([]byte, bs), make([]byte, bs)
	for b := uint32(0); int64(b+1)*int64(bs) <= size; b++ {
		if _, err := io.ReadFull(content, block); err != nil {
			return fmt.Errorf("reading %s: %w", name, unexpected(err))
		}
		if b < p.trunc && !p.has(b) {
			data := block
			if p.vm {
				data = zero
			}
			if err := w.add(b, data); err != nil {
				return &writeError{name, err}
			}
			p.mark(b)
		}
	}
	if err := w.flush(); err != nil {
		return &writeError{name, err}
	}
	return s.finishFile(name, p, f, bs, buf)
}

// finishFile writes zeros where no member had a block, gives the file
// its length and time, and drops it from the pending ones.
func (s *stage) finishFile(name string, p *pendingFile, f *os.File, bs int, buf []byte) error {
	delete(s.pending, name)
	s.written += int64(p.length) * int64(bs)
	w := &blockWriter{f: f, bs: int64(bs), buf: buf[:0]}
	zero := make([]byte, bs)
	for b := uint32(0); b < p.length; b++ {
		if !p.has(b) {
			if err := w.add(b, zero); err != nil {
				return &writeError{name, err}
			}
		}
	}
	err := w.flush()
	if err == nil {
		err = f.Truncate(int64(p.length) * int64(bs))
	}
	if err == nil {
		err = setMtime(f, p.mtime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &writeError{name, err}
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
