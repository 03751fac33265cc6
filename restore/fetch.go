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
}

// Fetch restores the WAL file n into dest (%f and %p). A file that is not
// in the repository gives an error matching fs.ErrNotExist; a stored object
// that fails its checksum, size or header check (repo.Object.Copy) matches
// repo.ErrCorrupt. dest is replaced atomically: it is either untouched or
// complete.
func Fetch(ctx context.Context, r *repo.Repo, n wal.Name, dest string) (Result, error) {
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
		return Result{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var written int64
	err = atomicfile.Write(dest, atomicfile.Options{}, func(f *os.File) error {
		var err error
		if written, err = obj.Copy(f, idp); err != nil {
			return err
		}
		return ctx.Err()
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Name: n, Key: obj.Key, Bytes: written}, nil
}
