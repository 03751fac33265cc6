// Package local stores a walship archive in a directory on a local or
// mounted filesystem. Every object is written durably and create-only: an
// unnamed file in the target's directory (O_TMPFILE), fsync, a link to its
// name that fails when the name is taken, and an fsync of the directory. A
// writer killed half-way leaves nothing: the unnamed file goes with its
// last descriptor. Where the filesystem has no unnamed files (or /proc is
// not mounted), a temporary file beside the target takes its place, with a
// rename that refuses to replace (renameat2 RENAME_NOREPLACE, or link
// where the filesystem lacks it); temporary names start with '.', so what
// a killed writer leaves is nothing List or Open would see, and puts sweep
// it away later.
//
// Files are created 0600 and directories 0700.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/internal/owner"
	"github.com/walship/walship/storage"
)

func init() {
	storage.Register("file", func(_ context.Context, u *url.URL, _ storage.Options, _ *slog.Logger) (storage.Backend, error) {
		if u.Host != "" && u.Host != "localhost" {
			// file://tmp/x is the path /x on the host "tmp".
			return nil, fmt.Errorf("repository %s: a file URL names no host: write file:///%s%s (three slashes) or the path itself", u, u.Host, u.Path)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("repository %s: a file URL takes no query or fragment", u)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("repository %s: no directory given", u)
		}
		return New(u.Path)
	})
}

// Backend is a directory holding objects as files named by their keys.
type Backend struct {
	root string
	// swept is when a put last swept a directory (dir → time.Time).
	swept sync.Map
	// named is set once the filesystem refused an unnamed file: puts
	// write named temporary files from then on.
	named atomic.Bool
}

// New returns a backend rooted at dir (made absolute). The directory need
// not exist yet: the first Put creates it.
func New(dir string) (*Backend, error) {
	if dir == "" {
		return nil, errors.New("local repository: empty path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("local repository %q: %w", dir, err)
	}
	return &Backend{root: abs}, nil
}

// Root is the backend's directory.
func (b *Backend) Root() string { return b.root }

func (b *Backend) String() string { return b.root }

func (b *Backend) path(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

func wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.EIO, unix.ESTALE, unix.EAGAIN, unix.EINTR, unix.ETIMEDOUT:
			err = storage.Transient(err)
		}
	}
	return &storage.Error{Op: op, Key: key, Err: err}
}

// StreamsPuts implements storage.Streamer: Put copies into the temporary
// file as the data arrives.
func (b *Backend) StreamsPuts() bool { return true }

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	path, err := b.path(key)
	if err != nil {
		return wrap("put", key, err)
	}
	if size < 0 || size > smallPut {
		// Not written at all when the name is taken (a retried segment);
		// a small object finds out when it is linked.
		if _, err := os.Lstat(path); err == nil {
			return wrap("put", key, fs.ErrExist)
		}
	}
	dir := filepath.Dir(path)
	tmp, named, err := b.createTemp(dir, filepath.Base(path))
	if errors.Is(err, fs.ErrNotExist) {
		if err = mkdirDurable(dir); err == nil {
			tmp, named, err = b.createTemp(dir, filepath.Base(path))
		}
	}
	if err != nil {
		return wrap("put", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			if named {
				os.Remove(tmp.Name())
			}
		}
	}()
	if err := ctx.Err(); err != nil {
		return wrap("put", key, err)
	}
	if size >= 0 {
		// Unwrapped, so that io.Copy can let the kernel copy from a file
		// (copy_file_range) or write an in-memory reader in one piece.
		if _, err := io.Copy(tmp, r); err != nil {
			return wrap("put", key, err)
		}
	} else if _, err := io.Copy(&writeBehind{f: tmp}, r); err != nil {
		// A stream of unknown length (a segment as it is compressed, a
		// base backup's tar): its pages on their way to disk as it goes.
		// io.Copy's own small buffer: a larger one costs a segment's put
		// more in fresh memory than it saves in writes.
		return wrap("put", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return wrap("put", key, err)
	}
	if err := ctx.Err(); err != nil {
		return wrap("put", key, err)
	}
	if !named {
		err := linkUnnamed(tmp, path)
		done = true
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return wrap("put", key, err)
		}
	} else {
		if err := tmp.Close(); err != nil {
			return wrap("put", key, err)
		}
		if err := renameNoReplace(tmp.Name(), path); err != nil {
			return wrap("put", key, err)
		}
		done = true
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return wrap("put", key, err)
	}
	b.sweepAfterPut(dir) // what killed writers left beside it
	return nil
}

// smallPut is the size up to which a put writes its object before it
// learns whether the name is taken.
const smallPut = 64 << 10

// createTemp makes the file an object is written into before it is put in
// place: unnamed in dir (named false) where the filesystem can, else a
// temporary file beside base.
func (b *Backend) createTemp(dir, base string) (f *os.File, named bool, err error) {
	if !b.named.Load() && procFD() {
		fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), filepath.Join(dir, "."+base+".unnamed")), false, nil
		case errors.Is(err, unix.ENOENT):
			return nil, false, fs.ErrNotExist
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EISDIR), errors.Is(err, unix.EINVAL):
			b.named.Store(true) // this filesystem (or kernel) has none
		default:
			return nil, false, err
		}
	}
	f, err = atomicfile.Create(dir, base)
	return f, true, err
}

// procFD reports whether /proc/self/fd is there: linking an unnamed file
// goes through it (linkat with AT_EMPTY_PATH needs a privilege).
var procFD = sync.OnceValue(func() bool {
	_, err := os.Stat("/proc/self/fd")
	return err == nil
})

// linkUnnamed gives the unnamed file f the name path; a name that is taken
// is fs.ErrExist, never replaced.
func linkUnnamed(f *os.File, path string) error {
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.EEXIST) {
		return fs.ErrExist
	}
	return err
}

// Open implements storage.Backend.
func (b *Backend) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	path, err := b.path(key)
	if err != nil {
		return nil, wrap("open", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, wrap("open", key, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, wrap("open", key, err)
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, wrap("open", key, fs.ErrNotExist)
	}
	return f, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (storage.Info, error) {
	path, err := b.path(key)
	if err != nil {
		return storage.Info{}, wrap("stat", key, err)
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, wrap("stat", key, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return storage.Info{}, wrap("stat", key, err)
	}
	if fi.IsDir() {
		return storage.Info{}, wrap("stat", key, fs.ErrNotExist)
	}
	return storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List implements storage.Backend. Names starting with '.' (temporary
// files, rsync's partial copies) are never listed.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	start := b.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	var items []storage.Info
	err := filepath.WalkDir(start, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == start {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == start {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(b.root, path)
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			// Skip directories that cannot hold a key with this prefix.
			if !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while listing
			}
			return err
		}
		items = append(items, storage.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return wrap("list", prefix, err)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	for _, it := range items {
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements storage.Backend.
func (b *Backend) Remove(ctx context.Context, key string) error {
	path, err := b.path(key)
	if err != nil {
		return wrap("remove", key, err)
	}
	if err := ctx.Err(); err != nil {
		return wrap("remove", key, err)
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return wrap("remove", key, err)
	}
	return wrap("remove", key, atomicfile.SyncDir(filepath.Dir(path)))
}

// Exists implements storage.Exister: the root must be a directory.
func (b *Backend) Exists(ctx context.Context) error {
	fi, err := os.Stat(b.root)
	if err != nil {
		return wrap("stat", "", err)
	}
	if !fi.IsDir() {
		return wrap("stat", "", fmt.Errorf("%s is not a directory", b.root))
	}
	return nil
}

// CheckOwner refuses to write into a repository directory that another
// user owns: what root (or anyone else) writes there, directories of mode
// 0700 and files of 0600, the repository's own user (the server's) could
// not read. A directory that does not exist yet is made by whoever writes
// first.
func (b *Backend) CheckOwner() error {
	fi, err := os.Stat(b.root)
	if err != nil {
		return nil
	}
	who, me, other := owner.Other(fi)
	if !other {
		return nil
	}
	return fmt.Errorf("%w: %s belongs to %s, and this runs as %s: run it as %s (runuser -u %s -- ...), or what it writes may be unreadable to %s",
		storage.ErrNotOwner, b.root, who, me, who, who, who)
}

var (
	_ storage.Backend  = (*Backend)(nil)
	_ storage.Exister  = (*Backend)(nil)
	_ storage.Streamer = (*Backend)(nil)
	_ storage.Watcher  = (*Backend)(nil)
	_ storage.Syncer   = (*Backend)(nil)
	_ storage.Sweeper  = (*Backend)(nil)
)

// writeBehind writes to a file and starts the writeback of every
// writeBehindChunk written (sync_file_range, without waiting), so that the
// fsync at the end of a long stream does not wait for all of it at once.
type writeBehind struct {
	f                *os.File
	written, flushed int64
}

const writeBehindChunk = 8 << 20

func (w *writeBehind) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.written += int64(n)
	if w.written-w.flushed >= writeBehindChunk {
		// Only a hint: the fsync at the end is what makes the file durable.
		unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.written-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.written
	}
	return n, err
}
