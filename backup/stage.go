package backup

// Every write of a restore goes through an os.Root: the staging directory
// inside NEWDIR (or inside a tablespace's directory) while the files
// arrive, the directory itself when they are moved into place. Whatever
// the stored tars hold (a name with "..", an absolute name, a symbolic
// link pointing out followed by an entry of the same name or one under
// it), nothing is created, written, chmodded or renamed outside it: the
// tar walker refuses such entries, and the root refuses to leave itself
// even if one got through.

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// stage is the staging directory of one destination, opened as a root.
type stage struct {
	root    *os.Root
	dirs    map[string]*os.Root // directories inside it, opened once
	written int64               // bytes of the files made
}

func openStage(dir string) (*stage, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &stage{root: r, dirs: map[string]*os.Root{}}, nil
}

func (s *stage) close() {
	for _, d := range s.dirs {
		d.Close()
	}
	s.dirs = map[string]*os.Root{}
	s.root.Close()
}

// dir opens the directory d of the stage (made when missing).
func (s *stage) dir(d string) (*os.Root, error) {
	if d == "." || d == "" {
		return s.root, nil
	}
	if r := s.dirs[d]; r != nil {
		return r, nil
	}
	r, err := s.root.OpenRoot(d)
	if errors.Is(err, fs.ErrNotExist) {
		if err = s.root.MkdirAll(d, 0o700); err == nil {
			r, err = s.root.OpenRoot(d)
		}
	}
	if err != nil {
		return nil, err
	}
	s.dirs[d] = r
	return r, nil
}

// mkdir makes the directory name with mode (the owner keeps every right).
func (s *stage) mkdir(name string, mode fs.FileMode) error {
	if err := s.root.MkdirAll(name, 0o700); err != nil {
		return err
	}
	return s.root.Chmod(name, mode.Perm()|0o700)
}

// symlink makes name a symbolic link to target (never followed here).
func (s *stage) symlink(target, name string) error {
	d, err := s.dir(path.Dir(name))
	if err != nil {
		return err
	}
	return d.Symlink(target, path.Base(name))
}

// create makes the new file name (it must not exist).
func (s *stage) create(name string, mode fs.FileMode) (*os.File, error) {
	d, err := s.dir(path.Dir(name))
	if err != nil {
		return nil, err
	}
	return d.OpenFile(path.Base(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
}

// reopen opens a file the stage made, for writing more of it.
func (s *stage) reopen(name string) (*os.File, error) {
	d, err := s.dir(path.Dir(name))
	if err != nil {
		return nil, err
	}
	return d.OpenFile(path.Base(name), os.O_WRONLY, 0)
}

// writeFile writes the file name whole: content copied with buf.
// Counted says the file is final (not one a newer member goes on to
// rebuild), so its bytes count as written.
func (s *stage) writeFile(name string, mode fs.FileMode, mtime time.Time, content io.Reader, buf []byte, counted bool) error {
	f, err := s.create(name, mode)
	if err != nil {
		return &writeError{name, err}
	}
	w := &fileWriter{f: f}
	n, err := io.CopyBuffer(w, content, buf)
	if counted {
		s.written += n
	}
	if w.err == nil {
		w.err = setMtime(f, mtime)
	}
	if cerr := f.Close(); w.err == nil {
		w.err = cerr
	}
	if w.err != nil {
		return &writeError{name, w.err}
	}
	return err // reading the backup
}

// setMtime gives an open file its modification time.
func setMtime(f *os.File, t time.Time) error {
	if t.IsZero() {
		return nil
	}
	tv := unix.NsecToTimeval(t.UnixNano())
	return unix.Futimes(int(f.Fd()), []unix.Timeval{tv, tv})
}

// readRegular reads the regular file name of root; a missing file, or
// one that is not a regular file (a symbolic link), reads as absent.
func readRegular(root *os.Root, name string) ([]byte, bool, error) {
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.Mode().IsRegular()) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	b, err := root.ReadFile(name)
	return b, err == nil, err
}

// fileWriter remembers its own failure, told apart from the reader's.
type fileWriter struct {
	f   *os.File
	err error
}

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// writeError is a failure to write a restored file (the disk, not the backup).
type writeError struct {
	path string
	err  error
}

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// copyBufs are the buffers files are copied with: large writes, few calls.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// isIncremental tells an incremental file of a backup (INCREMENTAL.<relfile>)
// and returns the name of the file it stands for (name itself for any
// other file).
func isIncremental(name string) (string, bool) {
	dir, base := path.Split(name)
	rest, ok := strings.CutPrefix(base, incrementalPrefix)
	if !ok || rest == "" {
		return name, false
	}
	return dir + rest, true
}

const incrementalPrefix = "INCREMENTAL."
