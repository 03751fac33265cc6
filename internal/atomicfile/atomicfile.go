// Package atomicfile is how walship writes a file that must never be seen
// half-written: a temporary file beside it, named "." + the final name +
// ".tmp-" + a random suffix, then a rename. Readers skip names that start
// with '.', and IsTemp tells leftovers of a killed writer apart.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Create makes a new temporary file (mode 0600) in dir for the final name
// base.
func Create(dir, base string) (*os.File, error) {
	return os.CreateTemp(dir, "."+base+".tmp-*")
}

// IsTemp reports whether a file name is one Create makes.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// StaleAfter is how old a temporary file must be before it is taken for
// the leftover of a killed writer: far longer than any write takes.
const StaleAfter = time.Hour

// Stale reports whether the directory entry e is a temporary file older
// than StaleAfter; it returns its size too.
func Stale(e fs.DirEntry) (bool, int64) {
	if !IsTemp(e.Name()) || !e.Type().IsRegular() {
		return false, 0
	}
	info, err := e.Info()
	if err != nil || time.Since(info.ModTime()) < StaleAfter {
		return false, 0
	}
	return true, info.Size()
}

// Options say how durable a write is.
type Options struct {
	// Sync fsyncs the file before the rename.
	Sync bool
	// SyncDir fsyncs the directory after the rename, so the new name
	// survives a crash.
	SyncDir bool
	// Mode is the file's permissions; 0 keeps Create's 0600.
	Mode fs.FileMode
}

// Write creates or replaces path atomically with what fill writes into the
// temporary file. On any error the temporary file is removed and path is
// untouched.
func Write(path string, o Options, fill func(f *os.File) error) error {
	dir := filepath.Dir(path)
	tmp, err := Create(dir, filepath.Base(path))
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if o.Mode != 0 {
		if err := tmp.Chmod(o.Mode); err != nil {
			return err
		}
	}
	if o.Sync {
		if err := tmp.Sync(); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	done = true
	if o.SyncDir {
		return SyncDir(dir)
	}
	return nil
}

// WriteFile is Write of data.
func WriteFile(path string, data []byte, o Options) error {
	return Write(path, o, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// SyncDir fsyncs a directory, so that entries just made in it survive a
// crash. Filesystems that cannot sync a directory (EINVAL) are taken as
// done.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

// ReplaceIn replaces the file name of root with content durably: a
// temporary file beside it (written, given the mode, synced), renamed
// over it, the directory synced. The mode of a regular file there is
// kept (0600 otherwise, whatever the umask); whatever else has that name
// (a symbolic link planted there) is replaced, never followed, and
// nothing outside root is touched. On an error name is as it was.
func ReplaceIn(root *os.Root, name string, content []byte) error {
	mode := fs.FileMode(0o600)
	if fi, err := root.Lstat(name); err == nil && fi.Mode().IsRegular() {
		mode = fi.Mode().Perm()
	}
	tmp := fmt.Sprintf(".%s.tmp-%d", name, os.Getpid())
	err := func() error {
		f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = f.Write(content)
		if err == nil {
			err = f.Chmod(mode)
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = root.Rename(tmp, name)
		}
		return err
	}()
	if err != nil {
		root.Remove(tmp)
		return err
	}
	if d, err := root.Open("."); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
