package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrUntrusted is matched when a spool directory, or a directory in it,
// could be changed by another user than the one running (it belongs to
// someone else, or others may write into it), or is a symbolic link where
// a directory of walship's own is expected. What such a directory holds
// cannot be trusted: another user could plant a segment there for the
// server, or swap a directory for a link that makes the spool's cleanup
// delete files elsewhere.
var ErrUntrusted = errors.New("spool directory not safe")

// trustRoot makes the spool directory root (mode 0700) if it does not
// exist, and checks that it and every directory above it can be changed
// by no other user than the one running (and root): owned by one of them,
// and writable by others only with the sticky bit (/tmp). The root may be
// reached through symbolic links; the directory they lead to is checked.
// It returns that directory.
func trustRoot(root string) (string, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return "", fmt.Errorf("spool directory %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("spool directory %s: %w", root, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", err
	}
	if err := ownDir(real, true); err != nil {
		return "", err
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		if err := ownDir(dir, false); err != nil {
			return "", err
		}
		if dir == filepath.Dir(dir) {
			return real, nil
		}
	}
}

// ownDir checks one directory: a directory (not a link), owned by the
// running user or root; with mine, owned by the running user, writable by
// no one else; otherwise writable by others only with the sticky bit.
func ownDir(dir string, mine bool) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory (a symbolic link?)", ErrUntrusted, dir)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	euid := uint32(os.Geteuid())
	switch {
	case mine && st.Uid != euid:
		return fmt.Errorf("%w: %s belongs to uid %d, not to the user running (uid %d): use a spool directory of your own", ErrUntrusted, dir, st.Uid, euid)
	case !mine && st.Uid != euid && st.Uid != 0:
		return fmt.Errorf("%w: %s, above the spool, belongs to uid %d, who could replace the spool", ErrUntrusted, dir, st.Uid)
	case mine && fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%w: others may write into %s (mode %04o): make it 0700", ErrUntrusted, dir, fi.Mode().Perm())
	case !mine && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
		return fmt.Errorf("%w: others may write into %s (mode %04o), above the spool, and replace it", ErrUntrusted, dir, fi.Mode().Perm())
	}
	return nil
}

// ownSub makes the subdirectory name of the trusted directory dir (mode
// 0700), or checks the one there: a directory of the running user that
// no one else may write into, never a link.
func ownSub(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	err := os.Mkdir(p, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("spool directory %s: %w", p, err)
	}
	if err := ownDir(p, true); err != nil {
		return "", err
	}
	return p, nil
}

// openFile opens a file of the spool for reading (or, with flag, for
// writing) without following a symbolic link, and checks it is a regular
// file of the running user.
func openFile(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%w: %s is not a regular file", ErrUntrusted, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && ok && st.Uid != uint32(os.Geteuid()) {
		err = fmt.Errorf("%w: %s belongs to uid %d", ErrUntrusted, path, st.Uid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
