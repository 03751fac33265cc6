package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"

	"github.com/pierrec/lz4/v4"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// ErrCorrupt is matched by errors about an object whose content cannot be
// trusted: a failed checksum, a bad frame, a wrong size or header.
var ErrCorrupt = errors.New("corrupt archived object")

// CorruptError names the object and what is wrong with it.
type CorruptError struct {
	Key    string
	Reason string
}

func (e *CorruptError) Error() string { return fmt.Sprintf("%s is corrupt: %s", e.Key, e.Reason) }

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Encode returns the object bytes for data under codec c.
func Encode(c Codec, data []byte) ([]byte, error) {
	if c == CodecNone {
		return data, nil
	}
	return encodeLZ4(bytes.NewReader(data), int64(len(data)))
}

// encodeLZ4 compresses size bytes from src into one lz4 frame with a
// content checksum and the content size in its header.
func encodeLZ4(src io.Reader, size int64) ([]byte, error) {
	// Room for the worst case up front: growing the buffer would copy
	// and clear megabytes, and pages of a fresh allocation cost nothing
	// until they are written.
	buf := bytes.NewBuffer(make([]byte, 0, lz4Bound(size)))
	if err := encodeLZ4To(buf, src, size); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// encodeLZ4To writes the frame encodeLZ4 makes to dst as it is compressed.
func encodeLZ4To(dst io.Writer, src io.Reader, size int64) error {
	w := lz4.NewWriter(dst)
	if err := w.Apply(lz4.ChecksumOption(true), lz4.SizeOption(uint64(size)),
		lz4.BlockSizeOption(lz4.Block256Kb), lz4.ConcurrencyOption(compressWorkers())); err != nil {
		return err
	}
	n, err := w.ReadFrom(io.LimitReader(src, size))
	if err != nil {
		w.Close()
		return err
	}
	if n != size {
		w.Close()
		return fmt.Errorf("source ended after %d of %d bytes", n, size)
	}
	return w.Close()
}

// errPutStopped ends a compressor whose output is no longer read.
var errPutStopped = errors.New("the store stopped reading")

// putLZ4Stream compresses size bytes of src straight into a backend that
// streams puts: no copy of the object is held in memory. It returns once
// the compressor has stopped reading src.
func (r *Repo) putLZ4Stream(ctx context.Context, key string, src io.Reader, size int64) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := encodeLZ4To(pw, src, size)
		pw.CloseWithError(err) // nil: the reader sees the end of the frame
		done <- err
	}()
	err := r.b.Put(ctx, key, pr, -1)
	pr.CloseWithError(errPutStopped)
	encErr := <-done
	if err != nil && encErr != nil && !errors.Is(encErr, errPutStopped) && !errors.Is(encErr, io.ErrClosedPipe) {
		return fmt.Errorf("compressing: %w", encErr)
	}
	return err
}

// lz4Bound is the largest frame encodeLZ4 can produce for size bytes: an
// incompressible block is stored as it is, behind a 4-byte length.
func lz4Bound(size int64) int {
	const block = 256 << 10
	return int(size + (size/block+1)*4 + 64)
}

// compressWorkers is how many blocks are compressed at once: every core
// the process may use, at most four (a segment has 64 blocks).
func compressWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }

// Object is an open WAL file in the repository, decoded as it is read. A
// read error caused by a bad checksum or frame matches ErrCorrupt.
type Object struct {
	Name  wal.Name
	Key   string
	Codec Codec
	body  io.ReadCloser
	r     io.Reader
}

func (o *Object) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF && o.Codec == CodecLZ4 && !isStorageErr(err) {
		err = &CorruptError{Key: o.Key, Reason: err.Error()}
	}
	return n, err
}

// Close releases the object.
func (o *Object) Close() error { return o.body.Close() }

// CopyN copies exactly n decoded bytes to w the cheapest way the codec
// allows (an in-kernel copy for an uncompressed local file into a file).
func (o *Object) CopyN(w io.Writer, n int64) (int64, error) {
	if o.Codec == CodecNone {
		// Unwrapped down to the backend's reader: file to file, io.Copy
		// lets the kernel copy (copy_file_range).
		var src io.Reader = o.body
		for {
			u, ok := src.(interface{ Unwrap() io.ReadCloser })
			if !ok {
				break
			}
			src = u.Unwrap()
		}
		if _, isFile := src.(*os.File); !isFile {
			buf := make([]byte, copyBuf)
			return io.CopyBuffer(writerOnly{w}, io.LimitReader(src, n), buf)
		}
		return io.Copy(w, io.LimitReader(src, n))
	}
	// One lz4 block per write instead of the 32 KiB pieces io.Copy would
	// use; no larger, as every fresh page of memory costs a fault.
	buf := make([]byte, copyBuf)
	return io.CopyBuffer(writerOnly{w}, io.LimitReader(o, n), buf)
}

// copyBuf is the buffer for copies through memory: the lz4 block size.
const copyBuf = 256 << 10

type writerOnly struct{ io.Writer }

func isStorageErr(err error) bool {
	var se *storage.Error
	var pe *fs.PathError
	return errors.As(err, &se) || errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, storage.ErrTransient)
}

// Find returns the entry of name as stored, or an error matching
// fs.ErrNotExist.
func (r *Repo) Find(ctx context.Context, n wal.Name) (Entry, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return Entry{}, err
	}
	var firstErr error
	for _, loc := range Candidates(r.layout, n) {
		info, err := r.b.Stat(ctx, loc.Key)
		if err == nil {
			return Entry{Name: n, Key: loc.Key, Codec: loc.Codec, Size: info.Size, Info: info}, nil
		}
		if !storage.IsNotExist(err) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Entry{}, firstErr
	}
	return Entry{}, &storage.Error{Op: "find", Key: n.String(), Err: errNotExist}
}

// Open opens name for reading, decoded. A missing file gives an error
// matching fs.ErrNotExist.
func (r *Repo) Open(ctx context.Context, n wal.Name) (*Object, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return nil, err
	}
	var firstErr error
	for _, loc := range Candidates(r.layout, n) {
		body, err := r.b.Open(ctx, loc.Key)
		if err != nil {
			if !storage.IsNotExist(err) && firstErr == nil {
				firstErr = err
			}
			continue
		}
		o := &Object{Name: n, Key: loc.Key, Codec: loc.Codec, body: body, r: body}
		if loc.Codec == CodecLZ4 {
			o.r = lz4.NewReader(body)
		}
		return o, nil
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, &storage.Error{Op: "open", Key: n.String(), Err: errNotExist}
}

// Put stores data as name, create-only, in the repository's layout with
// codec c (history and backup files are never compressed). When name is
// already stored (under any codec), Put compares: identical content returns
// nil with existed true; different content returns an error matching
// fs.ErrExist and leaves the stored object as it is.
func (r *Repo) Put(ctx context.Context, n wal.Name, data []byte, c Codec) (existed bool, err error) {
	_, existed, err = r.PutFrom(ctx, n, bytes.NewReader(data), int64(len(data)), c)
	return existed, err
}

// PutFrom is Put reading size bytes from src, which must be rewindable (a
// file or an in-memory reader): it is read again to compare with a stored
// copy. An *os.File of an uncompressed object reaches a local backend as
// it is, so the kernel copies it. It also returns the key the file is
// stored under.
func (r *Repo) PutFrom(ctx context.Context, n wal.Name, src io.ReadSeeker, size int64, c Codec) (key string, existed bool, err error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return "", false, err
	}
	layout := r.layout
	if layout == LayoutAuto {
		layout = LayoutWalship
	}
	if !Compressible(n.Kind) {
		c = CodecNone
	}
	key = Key(layout, n, c)
	// The same file may already be stored under the other codec.
	for _, loc := range Candidates(layout, n) {
		if loc.Key == key {
			continue
		}
		if _, err := r.b.Stat(ctx, loc.Key); err == nil {
			return loc.Key, true, r.compare(ctx, n, src, size)
		} else if !storage.IsNotExist(err) {
			return "", false, err
		}
	}
	switch {
	case c == CodecLZ4 && storage.StreamsPuts(r.b):
		err = r.putLZ4Stream(ctx, key, src, size)
	case c == CodecLZ4:
		obj, encErr := encodeLZ4(src, size)
		if encErr != nil {
			return "", false, fmt.Errorf("compressing %s: %w", n, encErr)
		}
		err = r.b.Put(ctx, key, bytes.NewReader(obj), int64(len(obj)))
	default:
		err = r.b.Put(ctx, key, src, size)
	}
	if storage.IsExist(err) {
		return key, true, r.compare(ctx, n, src, size)
	}
	return key, false, err
}

// ErrDifferent is matched when a file is already archived with other content.
var ErrDifferent = fmt.Errorf("archived with different content: %w", errExist)

// compare checks that the stored copy of n holds exactly the size bytes
// of src.
func (r *Repo) compare(ctx context.Context, n wal.Name, src io.ReadSeeker, size int64) error {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	o, err := r.Open(ctx, n)
	if err != nil {
		return err
	}
	defer o.Close()
	stored, mine := make([]byte, copyBuf), make([]byte, copyBuf)
	var off int64
	for {
		k, err := io.ReadFull(o, stored)
		if k > 0 {
			if off+int64(k) > size {
				return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
			}
			if _, rerr := io.ReadFull(src, mine[:k]); rerr != nil {
				return fmt.Errorf("re-reading the file to compare: %w", rerr)
			}
			if !bytes.Equal(stored[:k], mine[:k]) {
				return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
			}
			off += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
	}
	return nil
}

// Entry is one WAL file found by List.
type Entry struct {
	Name  wal.Name
	Key   string
	Codec Codec
	Size  int64 // stored bytes
	Info  storage.Info
}

// List calls fn for every WAL file in the repository, in key order; keys
// that hold no WAL file are skipped.
func (r *Repo) List(ctx context.Context, fn func(Entry) error) error {
	if _, _, err := r.Identity(ctx); err != nil {
		return err
	}
	prefixes := []string{"wal/", ""}
	switch r.layout {
	case LayoutWalship:
		prefixes = []string{"wal/"}
	case LayoutPlain:
		prefixes = []string{""}
	}
	for _, p := range prefixes {
		err := r.b.List(ctx, p, func(i storage.Info) error {
			n, c, l, ok := ParseKey(i.Key)
			if !ok || (p == "" && l != LayoutPlain) {
				return nil
			}
			return fn(Entry{Name: n, Key: i.Key, Codec: c, Size: i.Size, Info: i})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Remove deletes the stored object of an entry.
func (r *Repo) Remove(ctx context.Context, e Entry) error { return r.b.Remove(ctx, e.Key) }

// RemoveMany deletes the stored objects of entries, in batches on a store
// that deletes many keys in one call; missing objects are not an error.
func (r *Repo) RemoveMany(ctx context.Context, es []Entry) error {
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	return storage.RemoveMany(ctx, r.b, keys)
}

// Batches reports whether the store deletes many objects in one call, so
// that grouping removals pays.
func (r *Repo) Batches() bool { return storage.Batches(r.b) }

// Stored reports whether name is still stored under key, a key that Find,
// List or Put gave for it earlier. A key that does not hold name is an
// error, never a look at the store.
func (r *Repo) Stored(ctx context.Context, n wal.Name, key string) (bool, error) {
	if kn, _, _, ok := ParseKey(key); !ok || kn != n {
		return false, fmt.Errorf("%w: %q does not hold %s", storage.ErrBadKey, key, n)
	}
	_, err := r.b.Stat(ctx, key)
	if storage.IsNotExist(err) {
		return false, nil
	}
	return err == nil, err
}

// ErrNoWatch is returned by Watch for a store that cannot be watched.
var ErrNoWatch = errors.New("the store cannot be watched for new objects")

// Watch sends on the returned channel whenever name may have appeared in
// the repository (see storage.Watcher), until ctx ends. A store that
// cannot be watched gives an error matching ErrNoWatch: poll it instead.
func (r *Repo) Watch(ctx context.Context, n wal.Name) (<-chan struct{}, error) {
	w, ok := storage.As[storage.Watcher](r.b)
	if !ok {
		return nil, ErrNoWatch
	}
	var keys []string
	for _, loc := range Candidates(r.layout, n) {
		keys = append(keys, loc.Key)
	}
	return w.Watch(ctx, keys)
}
