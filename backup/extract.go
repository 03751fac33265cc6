package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
)

// extractor unpacks the tars of one backup and checks every file against
// the backup's manifest as it is written. Manifest checks are shared by the
// tars (which may be unpacked at once).
type extractor struct {
	mu    sync.Mutex
	check *pgdata.ManifestCheck
	bar   *progress.Bar
}

// extract unpacks the tar r into dir; prefix is where the tar's files are
// in the manifest ("" for base.tar, "pg_tblspc/<oid>/" for a tablespace).
// It reads r to its end, past the end of the tar, so that the object's
// checksum (at the end of its frame) is checked.
func (x *extractor) extract(ctx context.Context, r io.Reader, dir, prefix string) error {
	tr := tar.NewReader(r)
	links := map[string]bool{} // symbolic links made: nothing is written through them
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: reading the tar: %w", ErrDamaged, err)
			}
			return fmt.Errorf("reading the tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !filepath.IsLocal(name) || name == "." {
			return fmt.Errorf("%w: the tar holds %q, outside the data directory", ErrDamaged, h.Name)
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if links[d] {
				return fmt.Errorf("%w: the tar holds %q, inside its symbolic link %s", ErrDamaged, h.Name, d)
			}
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		mode := fs.FileMode(h.Mode).Perm() | 0o600
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := x.file(tr, h, target, prefix+name, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
			links[name] = true
		default:
			return fmt.Errorf("%w: the tar holds %q of type %q, which a base backup does not", ErrDamaged, h.Name, h.Typeflag)
		}
	}
	// The rest of the stream: the end of the object, where its checksum is.
	if _, err := io.Copy(io.Discard, r); err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			return fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return err
	}
	return nil
}

// file writes one file and checks it against the manifest.
func (x *extractor) file(tr io.Reader, h *tar.Header, target, manifestPath string, mode fs.FileMode) error {
	x.mu.Lock()
	sum, err := x.check.File(manifestPath)
	x.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.MultiWriter(f, sum), &barReader{r: tr, bar: x.bar})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if errors.Is(err, repo.ErrCorrupt) {
			return fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return fmt.Errorf("writing %s: %w", target, err)
	}
	if n != h.Size {
		return fmt.Errorf("%w: %s: %d bytes of %d in the tar", ErrDamaged, manifestPath, n, h.Size)
	}
	x.mu.Lock()
	err = sum.Close()
	x.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return os.Chtimes(target, h.ModTime, h.ModTime)
}

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
