// Package archive pushes WAL files into a walship repository the way
// archive_command must: checked, create-only, and reported done only when
// durably stored.
package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// ErrInvalid is matched by errors about a file that must not be archived:
// a name that is not a WAL file name, or content that does not match it.
var ErrInvalid = errors.New("refusing to archive")

// maxTextFile bounds history and backup history files.
const maxTextFile = 1 << 20

// Result says what Push did.
type Result struct {
	Name    wal.Name
	Existed bool // already archived with identical content; nothing written
	Bytes   int  // size of the WAL file
}

// Push archives the file at path under the WAL file name name (%p and %f).
// It returns nil only when the file is durably in the repository, or was
// there already with identical content.
func Push(ctx context.Context, r *repo.Repo, path, name string, codec repo.Codec) (Result, error) {
	n, err := wal.ParseName(name)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w (archive_command takes %%p %%f)", ErrInvalid, err)
	}
	data, err := readFile(path, n)
	if err != nil {
		return Result{}, err
	}
	if err := check(ctx, r, n, data); err != nil {
		return Result{}, err
	}
	existed, err := r.Put(ctx, n, data, codec)
	if err != nil {
		if errors.Is(err, repo.ErrDifferent) {
			return Result{}, fmt.Errorf("%s is already archived with different content; refusing to overwrite it (%w)", n, err)
		}
		return Result{}, fmt.Errorf("storing %s in %s: %w", n, r, err)
	}
	return Result{Name: n, Existed: existed, Bytes: len(data)}, nil
}

func readFile(path string, n wal.Name) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s does not exist", ErrInvalid, path)
		}
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInvalid, path)
	}
	if !repo.Compressible(n.Kind) && fi.Size() > maxTextFile {
		return nil, fmt.Errorf("%w: %s is %d bytes, too large for a %s file", ErrInvalid, path, fi.Size(), n.Kind)
	}
	data := make([]byte, fi.Size())
	if _, err := readFull(f, data); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
}

func readFull(f *os.File, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := f.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// check validates content against the name and the repository's identity.
func check(ctx context.Context, r *repo.Repo, n wal.Name, data []byte) error {
	switch n.Kind {
	case wal.KindSegment, wal.KindPartial:
		h, err := wal.ParseLongHeader(data)
		if err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
		if len(data) != int(h.SegSize) {
			return fmt.Errorf("%w %s: file is %d bytes, its header says segments are %d", ErrInvalid, n, len(data), h.SegSize)
		}
		if err := h.CheckName(n); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
		if err := r.Claim(ctx, h); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
	case wal.KindHistory:
		if _, err := wal.ParseHistory(n.Timeline, bytes.NewReader(data)); err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
	case wal.KindBackup:
		b, err := wal.ParseBackup(bytes.NewReader(data))
		if err != nil {
			return fmt.Errorf("%w %s: %w", ErrInvalid, n, err)
		}
		id, ok, err := r.Identity(ctx)
		if err != nil {
			return err
		}
		if ok && b.Start != n.StartLSN(id.SegSize) {
			return fmt.Errorf("%w %s: backup starts at %s, the name says %s", ErrInvalid, n, b.Start, n.StartLSN(id.SegSize))
		}
	}
	return nil
}
