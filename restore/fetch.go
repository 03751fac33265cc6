// Package restore serves PostgreSQL's restore_command: it fetches one WAL
// file from a walship repository into the path the server names, verified
// and written atomically (Fetch); keeps the next segments ready in a spool
// (Prefetch); and decides, for a whole call, between one fetch and the
// warm-standby wait, and what a failure means for the server (Run).
package restore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// ErrInvalid is matched by errors about the request itself (a name that is
// not a WAL file name, an unusable destination).
var ErrInvalid = errors.New("invalid request")

// Result says what Fetch did.
type Result struct {
	Name  wal.Name
	Key   string
	Bytes int64
	// Spooled: served from the prefetch spool.
	Spooled bool
	// Streamed: the streamed bytes of a segment not stored whole (Bytes
	// of them), zeros after them (FetchStreamed).
	Streamed bool
}

// DestError is a failure to write the restored file where it was asked
// for (%p): a directory that does not exist, no permission, a full disk.
// It deliberately does not match fs.ErrNotExist: a destination that
// cannot be written is not a file missing from the archive.
type DestError struct {
	Path string
	Err  error
}

func (e *DestError) Error() string { return fmt.Sprintf("cannot write %s: %v", e.Path, e.Err) }

// Fetch restores the WAL file n into dest (%f and %p). A file that is not
// in the repository gives an error matching fs.ErrNotExist; a stored object
// that fails its checksum, size or header check (repo.Object.Copy) matches
// repo.ErrCorrupt; a destination that cannot be written is a *DestError.
// dest is replaced atomically: it is either untouched or complete.
func Fetch(ctx context.Context, r *repo.Repo, n wal.Name, dest string) (Result, error) {
	return fetch(ctx, r, n, dest, false)
}

// fetch is Fetch; with seal, the file is followed by the checksum footer
// of its content (a spooled segment, checked again when it is taken).
func fetch(ctx context.Context, r *repo.Repo, n wal.Name, dest string, seal bool) (Result, error) {
	if dest == "" {
		return Result{}, fmt.Errorf("%w: empty destination path", ErrInvalid)
	}
	obj, err := r.Open(ctx, n)
	if err != nil {
		return Result{}, err
	}
	defer obj.Close()
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return Result{}, err
	}
	var idp *repo.Identity
	if haveID {
		idp = &id
	}
	if _, err := os.Stat(filepath.Dir(dest)); err != nil {
		return Result{}, &DestError{Path: dest, Err: err}
	}
	var written int64
	var readErr error // a failure of the archive, not of dest
	err = atomicfile.Write(dest, atomicfile.Options{}, func(f *os.File) error {
		w := &destWriter{f: f}
		h := crc32.New(repo.Castagnoli)
		var out io.Writer = w
		if seal {
			out = io.MultiWriter(w, h)
		}
		var err error
		written, err = obj.Copy(out, idp)
		if w.err != nil {
			return w.err
		}
		if err != nil {
			readErr = err
			return err
		}
		if seal {
			if _, err := w.Write(repo.Footer(h.Sum32())); err != nil {
				return err
			}
		}
		readErr = ctx.Err()
		return readErr
	})
	if err != nil {
		if readErr != nil && errors.Is(err, readErr) {
			return Result{}, err
		}
		return Result{}, &DestError{Path: dest, Err: err}
	}
	return Result{Name: n, Key: obj.Key, Bytes: written}, nil
}

// destWriter remembers a failure to write the destination, so that it is
// told apart from a failure to read the archive.
type destWriter struct {
	f   *os.File
	err error
}

func (w *destWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}
