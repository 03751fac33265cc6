package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
)

// extractor unpacks the tars of one backup and checks every file against
// the backup's manifest as it is written (pgdata.WalkBackupTar).
type extractor struct {
	check *pgdata.ManifestCheck
	bar   *progress.Bar
}

// extract unpacks the tar r into dir; prefix is where the tar's files are
// in the manifest ("" for base.tar, "pg_tblspc/<oid>/" for a tablespace).
// It reads r to its end, so that the object's checksum is checked.
func (x *extractor) extract(ctx context.Context, r io.Reader, dir, prefix string) error {
	err := pgdata.WalkBackupTar(&barReader{r: r, bar: x.bar}, prefix, x.check, func(e pgdata.TarEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(e.Name))
		h := e.Header
		mode := fs.FileMode(h.Mode).Perm() | 0o600
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, mode|0o700)
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			return os.Symlink(h.Linkname, target)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		w := &fileWriter{f: f}
		_, err = io.Copy(w, e.Content)
		if cerr := f.Close(); w.err == nil {
			w.err = cerr
		}
		if w.err != nil {
			return &writeError{target, w.err}
		}
		if err != nil {
			return err // reading the backup
		}
		return os.Chtimes(target, h.ModTime, h.ModTime)
	})
	var we *writeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		return fmt.Errorf("writing %s: %w", we.path, we.err)
	case errors.Is(err, repo.ErrCorrupt), errors.Is(err, pgdata.ErrManifest), errors.Is(err, pgdata.ErrBackupTar),
		errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
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

type barReader struct {
	r   io.Reader
	bar *progress.Bar
}

func (b *barReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.bar.Add(int64(n))
	return n, err
}

// readAhead reads r in the background, up to depth chunks ahead of the
// reader: the download and the writing of files overlap.
func readAhead(r io.Reader, depth int) io.ReadCloser {
	const chunk = 1 << 20
	ch := make(chan piece, depth)
	stop := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			b := make([]byte, chunk)
			n, err := io.ReadFull(r, b)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			select {
			case ch <- piece{b[:n], err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return &aheadReader{ch: ch, stop: stop}
}

type piece struct {
	b   []byte
	err error
}

type aheadReader struct {
	ch   <-chan piece
	stop chan struct{}
	cur  []byte
	err  error
	once sync.Once
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		pc, ok := <-a.ch
		if !ok {
			return 0, io.ErrUnexpectedEOF
		}
		a.cur, a.err = pc.b, pc.err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

func (a *aheadReader) Close() error {
	a.once.Do(func() { close(a.stop) })
	return nil
}
