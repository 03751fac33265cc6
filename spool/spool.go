// Package spool is walship's local cache beside the server: a directory
// outside the data directory where look-ahead pushes record what they have
// stored and prefetch keeps segments fetched ahead of the server's calls.
//
// Each repository has its own subdirectory, so that what was spooled for
// one repository never answers for another. Files appear in it only by
// rename (internal/atomicfile), so a reader never sees one half-written;
// claims keep two workers off the same file. A spool is a cache: losing it
// costs only time.
package spool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/pgdata"
)

// ErrNone is returned by Open when no spool directory is given.
var ErrNone = errors.New("no spool directory given")

// StaleAfter is how old a temporary file or a claim must be before Clean
// takes it for the leftover of a killed writer: longer than any fetch or
// push takes.
const StaleAfter = 10 * time.Minute

// Check refuses a spool directory where the server's own tools would copy
// it: inside a data directory (pg_basebackup and pg_rewind copy what is
// there, and a restored copy would carry another server's cache); and one
// another user could change (ErrUntrusted). It makes the directory (0700)
// if it does not exist.
func Check(root string) error {
	if err := checkPlace(root); err != nil {
		return err
	}
	_, err := trustRoot(root)
	return err
}

// checkPlace refuses a spool directory inside a data directory.
func checkPlace(root string) error {
	if root == "" {
		return ErrNone
	}
	if strings.Contains(filepath.Clean(root)+"/", "/pg_wal/") {
		return fmt.Errorf("spool directory %s is inside pg_wal: pg_rewind and pg_basebackup would copy it", root)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		if _, err := pgdata.DataDirVersion(dir); err == nil {
			return fmt.Errorf("spool directory %s is inside the data directory %s: pg_basebackup and pg_rewind would copy it", root, dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// Dir is one repository's subdirectory of a spool.
type Dir struct{ path string }

// Open returns the subdirectory of the spool at root that belongs to the
// repository named by key (repo.Repo.SpoolKey: its location and identity),
// making both if need be. The spool, the directories above it and the
// subdirectory must be safe from every other user (ErrUntrusted; see
// trustRoot): the spool hands files to the server and removes what it
// finds there.
func Open(root, key string) (*Dir, error) {
	if err := checkPlace(root); err != nil {
		return nil, err
	}
	real, err := trustRoot(root)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(key))
	p, err := ownSub(real, hex.EncodeToString(sum[:8]))
	if err != nil {
		return nil, err
	}
	return &Dir{path: p}, nil
}

// Path is where the file called name is (or would be) kept.
func (d *Dir) Path(name string) string { return filepath.Join(d.path, name) }

// Make creates the directory (mode 0700) if it was removed since Open.
func (d *Dir) Make() error {
	err := os.Mkdir(d.path, 0o700)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return ownDir(d.path, true)
	}
	return err
}

// Has reports whether the complete file name is in the spool (a regular
// file: a link is not).
func (d *Dir) Has(name string) bool {
	fi, err := os.Lstat(d.Path(name))
	return err == nil && fi.Mode().IsRegular()
}

// Read returns the content of the file name.
func (d *Dir) Read(name string) ([]byte, error) {
	f, err := d.Open(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Open opens the file name of the spool (flag: os.O_RDONLY or os.O_RDWR),
// never through a symbolic link, and only a regular file of the running
// user.
func (d *Dir) Open(name string, flag int) (*os.File, error) { return openFile(d.Path(name), flag) }

// WriteFile stores data as the file name, atomically, replacing any
// earlier one.
func (d *Dir) WriteFile(name string, data []byte) error {
	if err := d.Make(); err != nil {
		return err
	}
	return atomicfile.WriteFile(d.Path(name), data, atomicfile.Options{})
}

// Remove deletes the file name; a missing file is not an error.
func (d *Dir) Remove(name string) {
	os.Remove(d.Path(name))
}

// Take moves the file name to dest (replacing dest): a rename, or a copy
// and a rename when the spool is on another filesystem. ok is false when
// the file is not in the spool.
func (d *Dir) Take(name, dest string) (ok bool, err error) {
	src := d.Path(name)
	if !d.Has(name) {
		return false, nil
	}
	err = os.Rename(src, dest)
	if errors.Is(err, syscall.EXDEV) {
		err = copyInto(src, dest)
		os.Remove(src)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

func copyInto(src, dest string) error {
	in, err := openFile(src, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dest, atomicfile.Options{}, func(f *os.File) error {
		_, err := io.Copy(f, in)
		return err
	})
}

// claimName is the claim file of name: dot-named, so never taken for the
// file itself.
func claimName(name string) string { return "." + name + ".claim" }

// Claim takes the exclusive right to produce the file name; ok is false
// when another process holds it. A claim is a lock the kernel drops when
// its process ends, so a killed worker never leaves one held. release
// gives it up.
func (d *Dir) Claim(name string) (release func(), ok bool) {
	if err := d.Make(); err != nil {
		return nil, false
	}
	return lockFile(d.Path(claimName(name)))
}

// Claimed reports whether another process holds the claim of name now.
func (d *Dir) Claimed(name string) bool {
	return locked(d.Path(claimName(name)))
}

// WaitClaim waits, while another process holds the claim of name, for it
// to give it up, at most max or until ctx ends; it reports whether there
// was a claim to wait for.
func (d *Dir) WaitClaim(ctx context.Context, name string, max time.Duration) bool {
	if !d.Claimed(name) {
		return false
	}
	for deadline := time.Now().Add(max); d.Claimed(name) && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Lock takes a lock of the whole directory by name (one worker of a kind
// at a time); like a claim, the kernel drops it when its process ends.
func (d *Dir) Lock(name string) (release func(), ok bool) { return d.Claim("lock-" + name) }

// Busy reports whether any claim or lock in the directory is held.
func (d *Dir) Busy() bool {
	entries, _ := os.ReadDir(d.path)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".claim") && locked(d.Path(e.Name())) {
			return true
		}
	}
	return false
}

// lockFile takes an exclusive flock on path, creating it. The file is
// removed when the lock is released; a lock taken on a file that was
// removed meanwhile (by the previous holder's release) is given up and
// taken again on the new one.
func lockFile(path string) (release func(), ok bool) {
	for range 3 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, false
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return nil, false
		}
		var held, now syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) == nil && syscall.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return func() {
				os.Remove(path)
				f.Close() // drops the lock
			}, true
		}
		f.Close() // locked a file already unlinked: try the new one
	}
	return nil, false
}

// locked reports whether some process holds the flock of path.
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return true
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// Names lists the complete files in the spool, in name order.
func (d *Dir) Names() []string {
	entries, _ := os.ReadDir(d.path)
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

// Clean removes the complete files keep does not want, temporary files
// older than StaleAfter and claim files no one holds (left by a killed
// worker).
func (d *Dir) Clean(keep func(name string) bool) {
	entries, _ := os.ReadDir(d.path)
	for _, e := range entries {
		stale := !keep(e.Name())
		switch {
		case strings.HasSuffix(e.Name(), ".claim") && strings.HasPrefix(e.Name(), "."):
			stale = !locked(d.Path(e.Name()))
		case strings.HasPrefix(e.Name(), "."):
			info, err := e.Info()
			stale = err == nil && time.Since(info.ModTime()) > StaleAfter
		}
		if stale {
			os.Remove(d.Path(e.Name()))
		}
	}
}

// Age is how long ago the file name was written; ok is false when it is
// not there.
func (d *Dir) Age(name string) (age time.Duration, ok bool) {
	fi, err := os.Lstat(d.Path(name))
	if err != nil {
		return 0, false
	}
	return time.Since(fi.ModTime()), true
}
