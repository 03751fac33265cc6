// Package restore fetches one WAL file from a walship repository into the
// path PostgreSQL's restore_command names, verified and written atomically.
package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
}

// Fetch restores the WAL file called name into dest (%f and %p). A file
// that is not in the repository gives an error matching fs.ErrNotExist; a
// stored object that fails its checksum, size or header check matches
// repo.ErrCorrupt. dest is replaced atomically: it is either untouched or
// complete.
func Fetch(ctx context.Context, r *repo.Repo, name, dest string) (Result, error) {
	n, err := wal.ParseName(name)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w (restore_command takes %%f %%p)", ErrInvalid, err)
	}
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
	dir := filepath.Dir(dest)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dest)+".walship-*")
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var written int64
	if repo.Compressible(n.Kind) {
		written, err = copySegment(tmp, obj, n, id, haveID)
	} else {
		written, err = copyText(tmp, obj, n)
	}
	if err != nil {
		return Result{}, err
	}
	if err := tmp.Close(); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return Result{}, err
	}
	ok = true
	return Result{Name: n, Key: obj.Key, Bytes: written}, nil
}

func corrupt(o *repo.Object, format string, args ...any) error {
	return &repo.CorruptError{Key: o.Key, Reason: fmt.Sprintf(format, args...)}
}

// copySegment copies a segment or partial segment, checking its header
// against the name and the repository, and its length against the header.
func copySegment(w io.Writer, o *repo.Object, n wal.Name, id repo.Identity, haveID bool) (int64, error) {
	head := make([]byte, wal.LongHeaderSize)
	if k, err := io.ReadFull(o, head); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, corrupt(o, "only %d bytes, shorter than a page header", k)
		}
		return 0, err
	}
	h, err := wal.ParseLongHeader(head)
	if err != nil {
		return 0, corrupt(o, "%v", err)
	}
	if err := h.CheckName(n); err != nil {
		return 0, corrupt(o, "%v", err)
	}
	if haveID && (h.SysID != id.SystemID || h.SegSize != id.SegSize) {
		return 0, corrupt(o, "WAL of system %d with %s segments, the repository holds system %d with %s segments",
			h.SysID, wal.FormatSize(h.SegSize), id.SystemID, wal.FormatSize(id.SegSize))
	}
	if _, err := w.Write(head); err != nil {
		return 0, err
	}
	rest, err := o.CopyN(w, int64(h.SegSize)-wal.LongHeaderSize)
	written := rest + wal.LongHeaderSize
	if err != nil {
		return written, err
	}
	if written != int64(h.SegSize) {
		return written, corrupt(o, "%d bytes, want the segment size %d", written, h.SegSize)
	}
	// Read on to the end: nothing may follow, and the end of an lz4 frame
	// is where its content checksum is verified.
	var one [1]byte
	if k, err := io.ReadFull(o, one[:]); k != 0 || !errors.Is(err, io.EOF) {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return written, err
		}
		return written, corrupt(o, "longer than the segment size %d", h.SegSize)
	}
	return written, nil
}

// copyText copies a history or backup history file, checking it parses.
func copyText(w io.Writer, o *repo.Object, n wal.Name) (int64, error) {
	data, err := io.ReadAll(io.LimitReader(o, 1<<20+1))
	if err != nil {
		return 0, err
	}
	if len(data) > 1<<20 {
		return 0, corrupt(o, "larger than any %s file", n.Kind)
	}
	if n.Kind == wal.KindHistory {
		if _, err := wal.ParseHistory(n.Timeline, bytes.NewReader(data)); err != nil {
			return 0, corrupt(o, "%v", err)
		}
	}
	k, err := w.Write(data)
	return int64(k), err
}
