package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
)

// unpacker unpacks the tars of a backup's chain into the stages, checking
// every file it uses against the manifest of the member it comes from as
// its content streams by (pgdata.WalkBackupTar).
type unpacker struct {
	bar *progress.Bar
	bs  int // block size of the relation files
}

// newest unpacks the tar r of the newest member (the backup restored)
// into st: every file whole, and every incremental file finished over
// what the older members wrote (plan is nil for a full backup). prefix
// is where the tar's files are in the manifest ("" for base.tar,
// "pg_tblspc/<oid>/" for a tablespace). It reads r to its end, so that
// the object's checksum is checked.
func (u *unpacker) newest(ctx context.Context, r io.Reader, st *stage, prefix string, check *pgdata.ManifestCheck, plan *chainPlan) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	err := pgdata.WalkBackupTar(&barReader{r: r, bar: u.bar}, prefix, check, func(e pgdata.TarEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := e.Header
		mode := fs.FileMode(h.Mode)
		switch h.Typeflag {
		case tar.TypeDir:
			return wrapWrite(e.Name, st.mkdir(e.Name, mode))
		case tar.TypeSymlink:
			return wrapWrite(e.Name, st.symlink(h.Linkname, e.Name))
		}
		if name, ok := isIncremental(e.Name); ok {
			if plan == nil {
				return fmt.Errorf("%w: a full backup holding the incremental file %s", ErrDamaged, prefix+e.Name)
			}
			return st.finishIncremental(name, mode, h.ModTime, h.Size, e.Content, u.bs, *buf, plan.files[prefix+name].vm)
		}
		return st.writeFile(e.Name, mode, h.ModTime, e.Content, *buf, true)
	})
	return classify(err)
}

// older reads the tar r of member i, older than the newest, and writes
// what the plan has it write: the files it holds whole that no newer
// member does, and the blocks of its incremental files over the files
// older members began. label, when not nil, receives the member's
// backup_label (of base.tar).
func (u *unpacker) older(ctx context.Context, r io.Reader, st *stage, prefix string, check *pgdata.ManifestCheck, plan *chainPlan, i int, id repo.BackupID, label *[]byte) error {
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	use := func(name string) bool {
		return (name == "backup_label" && label != nil) || plan.use(i, prefix+name)
	}
	err := pgdata.WalkBackupTarSome(&barReader{r: r, bar: u.bar}, prefix, check, use, func(e pgdata.TarEntry) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Header.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: backup %s holds %s, which a newer backup has as a file, as a %s", ErrDamaged, id, prefix+e.Name, typeName(e.Header.Typeflag))
		}
		if e.Name == "backup_label" && label != nil {
			b, err := io.ReadAll(io.LimitReader(e.Content, 1<<20))
			*label = b
			return err
		}
		if name, inc := isIncremental(e.Name); inc {
			return st.applyIncremental(name, e.Header.Size, e.Content, u.bs, *buf)
		}
		return st.writeFile(e.Name, fs.FileMode(e.Header.Mode), e.Header.ModTime, e.Content, *buf, false)
	})
	return classify(err)
}

func typeName(t byte) string {
	switch t {
	case tar.TypeDir:
		return "directory"
	case tar.TypeSymlink:
		return "symbolic link"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

func wrapWrite(name string, err error) error {
	if err != nil {
		return &writeError{name, err}
	}
	return nil
}

// classify tells a damaged backup from a failure to write.
func classify(err error) error {
	var we *writeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		return fmt.Errorf("writing %s: %w", we.path, we.err)
	case errors.Is(err, ErrDamaged):
		return err
	case errors.Is(err, repo.ErrCorrupt), errors.Is(err, pgdata.ErrManifest), errors.Is(err, pgdata.ErrBackupTar),
		errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return err
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
// reader: the download (and decoding) and the writing of files overlap.
// Chunks come from a pool and go back to it once read.
func readAhead(r io.Reader, depth int) io.ReadCloser {
	ch := make(chan piece, depth)
	stop := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			b := chunks.Get().(*[]byte)
			n, err := io.ReadFull(r, *b)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			select {
			case ch <- piece{b, n, err}:
			case <-stop:
				chunks.Put(b)
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return &aheadReader{ch: ch, stop: stop}
}

var chunks = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

type piece struct {
	b   *[]byte
	n   int
	err error
}

type aheadReader struct {
	ch   <-chan piece
	stop chan struct{}
	buf  *[]byte
	cur  []byte
	err  error
	once sync.Once
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.buf != nil {
			chunks.Put(a.buf)
			a.buf = nil
		}
		if a.err != nil {
			return 0, a.err
		}
		pc, ok := <-a.ch
		if !ok {
			return 0, io.ErrUnexpectedEOF
		}
		a.buf, a.cur, a.err = pc.b, (*pc.b)[:pc.n], pc.err
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

func (a *aheadReader) Close() error {
	a.once.Do(func() {
		close(a.stop) // the chunks still queued go to the collector
		if a.buf != nil {
			chunks.Put(a.buf)
			a.buf = nil
		}
	})
	return nil
}
