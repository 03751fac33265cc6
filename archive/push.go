// Package archive pushes WAL files into a walship repository the way
// archive_command must: checked, create-only, and reported done only when
// durably stored.
package archive

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// ErrInvalid is matched by errors about a file that must not be archived:
// a name that is not a WAL file name, or content that does not match it.
var ErrInvalid = errors.New("refusing to archive")

// Result says what Push did.
type Result struct {
	Name    wal.Name
	Key     string // where it is stored, when known
	Existed bool   // already archived with identical content; nothing written
	Ahead   bool   // answered from a look-ahead push's marker
	Bytes   int    // size of the WAL file
	// Newer is set when a newer timeline in the repository branched off
	// this segment's timeline before the segment: another server has been
	// promoted from this cluster's WAL (see Branch).
	Newer *Branch
}

// Push archives the file at path as the WAL file n (%p and %f). It returns
// nil only when the file is durably in the repository, or was there already
// with identical content.
func Push(ctx context.Context, r *repo.Repo, path string, n wal.Name) (Result, error) {
	return push(ctx, r, path, n, nil)
}

// push is Push, logging through log.
func push(ctx context.Context, r *repo.Repo, path string, n wal.Name, log *slog.Logger) (Result, error) {
	res, _, err := pushRead(ctx, r, path, n, false, log)
	return res, err
}

// pushRead is Push; with sum it also returns the file as the put read it, to
// tell the checksum of the bytes stored (or compared with the stored
// object).
func pushRead(ctx context.Context, r *repo.Repo, path string, n wal.Name, sum bool, log *slog.Logger) (res Result, read *summing, err error) {
	f, size, err := openFile(path, n)
	if err != nil {
		return Result{}, nil, err
	}
	defer f.Close()
	segSize, err := check(ctx, r, n, f, size)
	if err != nil {
		return Result{}, nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Result{}, nil, err
	}
	// Asked alongside the put, so that it costs no time.
	newer := make(chan *Branch, 1)
	if n.Kind == wal.KindSegment {
		go func() { newer <- branchedBefore(ctx, r, n, segSize, logx.Or(log)) }()
	} else {
		newer <- nil
	}
	var src io.ReadSeeker = f
	if sum {
		read = &summing{f: f, h: crc32.New(repo.Castagnoli), ok: true}
		src = read
	}
	key, existed, err := r.PutFrom(ctx, n, src, size)
	branch := <-newer
	if err != nil {
		if errors.Is(err, repo.ErrDifferent) {
			return Result{}, nil, fmt.Errorf("%s is already archived with different content; refusing to overwrite it (%w)", n, err)
		}
		return Result{}, nil, fmt.Errorf("storing %s in %s: %w", n, r, err)
	}
	return Result{Name: n, Key: key, Existed: existed, Bytes: int(size), Newer: branch}, read, nil
}

// summing is a file (at its start) whose reads since the last rewind to
// the start are checksummed, while they follow each other from there.
type summing struct {
	f   *os.File
	h   hash.Hash32
	off int64 // where the next read starts
	ok  bool  // every byte before off was read since the rewind, in order
}

// Sum is the CRC-32C of the file's size bytes as they were last read from
// its start to its end, in order; ok is false when they were not (a put
// that rewinds to retry counts its last reading).
func (s *summing) Sum(size int64) (crc uint32, ok bool) { return s.h.Sum32(), s.ok && s.off == size }

func (s *summing) Read(p []byte) (int, error) {
	k, err := s.f.Read(p)
	s.h.Write(p[:k])
	s.off += int64(k)
	return k, err
}

func (s *summing) Seek(offset int64, whence int) (int64, error) {
	pos, err := s.f.Seek(offset, whence)
	switch {
	case err == nil && pos == 0:
		s.h.Reset()
		s.off, s.ok = 0, true
	case err != nil || pos != s.off:
		s.off, s.ok = pos, false
	}
	return pos, err
}

// openFile opens the file to archive and returns its size.
func openFile(path string, n wal.Name) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("%w: %s does not exist", ErrInvalid, path)
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, path)
	}
	if !repo.Compressible(n.Kind) && fi.Size() > repo.MaxTextFile {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is %d bytes, too large for a %s file", ErrInvalid, path, fi.Size(), n.Kind)
	}
	return f, fi.Size(), nil
}

// check validates content against the name and the repository's identity
// (repo.CheckHeader, repo.ParseText). Segments are checked by their header,
// which gives their size; text files are read whole.
func check(ctx context.Context, r *repo.Repo, n wal.Name, f *os.File, size int64) (segSize uint32, err error) {
	switch n.Kind {
	case wal.KindSegment, wal.KindPartial:
		head := make([]byte, wal.LongHeaderSize)
		if k, err := f.ReadAt(head, 0); err != nil && !(errors.Is(err, io.EOF) && k == len(head)) {
			head = head[:k]
		}
		h, err := repo.CheckHeader(head, n, nil)
		if err != nil {
			return 0, fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
		if size != int64(h.SegSize) {
			return 0, fmt.Errorf("%w %s: file is %d bytes, its header says segments are %d", ErrInvalid, n, size, h.SegSize)
		}
		if err := r.Claim(ctx, h); err != nil {
			if errors.Is(err, wal.ErrOtherCluster) {
				return 0, fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
			}
			// The store could not be read: not a refusal, PostgreSQL retries.
			return 0, fmt.Errorf("checking the identity of %s for %s: %w", r, n, err)
		}
		return h.SegSize, nil
	case wal.KindHistory, wal.KindBackup:
		data := make([]byte, size)
		if _, err := io.ReadFull(f, data); err != nil {
			return 0, fmt.Errorf("reading %s: %w", n, err)
		}
		var idp *repo.Identity
		if n.Kind == wal.KindBackup {
			id, ok, err := r.Identity(ctx)
			if err != nil {
				return 0, err
			}
			if ok {
				idp = &id
			}
		}
		if _, err := repo.ParseText(n, data, idp); err != nil {
			return 0, fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
	}
	return 0, nil
}
