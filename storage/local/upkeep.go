package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/atomicfile"
)

// Upkeep beyond the Backend contract: making an object durable, sweeping
// what killed writers left, telling whether the directory is nearby.

// Sync implements storage.Syncer: the file and its directory are synced,
// so that an object an earlier writer renamed into place but did not live
// to sync survives a crash.
func (b *Backend) Sync(ctx context.Context, key string) error {
	path, err := b.path(key)
	if err != nil {
		return wrap("sync", key, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return wrap("sync", key, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return wrap("sync", key, err)
	}
	return wrap("sync", key, atomicfile.SyncDir(filepath.Dir(path)))
}

// sweepDir finds (and with remove, deletes) the stale temporary files of
// one directory.
// sweepEvery is how often puts into one directory sweep it: a temporary
// file is stale only after atomicfile.StaleAfter, so sweeping at every put
// would only read the directory again; a long-running writer (walship
// receive stores many small pieces side by side) would read thousands of
// names for each.
const sweepEvery = time.Minute

// sweepAfterPut sweeps dir unless this backend swept it less than
// sweepEvery ago: a one-shot writer (an archive_command call) sweeps the
// directory it writes into once.
func (b *Backend) sweepAfterPut(dir string) {
	now := time.Now()
	if last, ok := b.swept.Load(dir); ok && now.Sub(last.(time.Time)) < sweepEvery {
		return
	}
	b.swept.Store(dir, now)
	sweepDir(dir, true)
}

func sweepDir(dir string, remove bool) (count int, bytes int64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if stale, size := atomicfile.Stale(e); stale {
			if remove && os.Remove(filepath.Join(dir, e.Name())) != nil {
				continue
			}
			count++
			bytes += size
		}
	}
	return count, bytes
}

// Sweep implements storage.Sweeper: every directory of the repository.
func (b *Backend) Sweep(ctx context.Context, remove bool) (count int, bytes int64, err error) {
	err = filepath.WalkDir(b.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == b.root {
				return fs.SkipAll
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path != b.root && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		c, n := sweepDir(path, remove)
		count, bytes = count+c, bytes+n
		return nil
	})
	return count, bytes, wrap("sweep", "", err)
}

// renameNoReplace moves tmp to path unless path exists (fs.ErrExist).
func renameNoReplace(tmp, path string) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EEXIST):
		os.Remove(tmp)
		return fs.ErrExist
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.ENOTSUP):
		// The filesystem cannot rename without replacing: a hard link
		// fails atomically when the target exists.
		err := os.Link(tmp, path)
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return err
	}
	return err
}

// mkdirDurable creates dir and any missing parents (0700), fsyncing each
// parent of a directory it created so that the new entries survive a crash.
func mkdirDurable(dir string) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return atomicfile.SyncDir(parent)
}
