package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

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

// errPutStopped ends a compressor whose output is no longer read.
var errPutStopped = errors.New("the store stopped reading")

// putStream writes what encode produces straight into a backend that
// streams puts: no copy of the object is held in memory. It returns once
// encode has returned.
func (r *Repo) putStream(ctx context.Context, key string, encode func(io.Writer) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := encode(pw)
		pw.CloseWithError(err) // nil: the reader sees the end of the object
		done <- err
	}()
	err := r.b.Put(ctx, key, pr, -1)
	pr.CloseWithError(errPutStopped)
	encErr := <-done
	if err != nil && encErr != nil && !errors.Is(encErr, errPutStopped) && !errors.Is(encErr, io.ErrClosedPipe) {
		return fmt.Errorf("encoding: %w", encErr)
	}
	return err
}

// putEncoded stores what encode produces under key: streamed where the
// backend streams, else built in memory first (room for size bytes and
// some) and put with its exact length.
func (r *Repo) putEncoded(ctx context.Context, key string, size int64, encode func(io.Writer) error) error {
	if storage.StreamsPuts(r.b) {
		return r.putStream(ctx, key, encode)
	}
	buf := bytes.NewBuffer(make([]byte, 0, lz4Bound(size)+int(size/(64<<10)+1)*16+1024))
	if err := encode(buf); err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	return r.b.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
}

// encryptTo writes the encrypted object of size bytes of src at loc to w:
// compressed or sealed as loc says, then encrypted to the recipients.
func (r *Repo) encryptTo(w io.Writer, loc Location, src io.ReadSeeker, size int64) error {
	digest, err := Digest(src, size)
	if err != nil {
		return err
	}
	ew, err := r.Keys.encrypter(w, digest)
	if err != nil {
		return err
	}
	switch {
	case loc.Codec == CodecLZ4:
		err = encodeLZ4To(ew, src, size)
	case loc.Sealed:
		var sum uint32
		if sum, err = Sum(src, size); err == nil {
			_, err = io.Copy(ew, newSealed(src, size, sum))
		}
	default:
		_, err = io.CopyN(ew, src, size)
	}
	if err != nil {
		return err
	}
	return ew.Close()
}

// Object is an open WAL file in the repository, decoded and checked as it
// is read (see codec.go). A read error caused by a bad checksum, frame or
// footer matches ErrCorrupt.
type Object struct {
	Name wal.Name
	Location
	keys       Keys
	recipients []string // of an encrypted object, once read
	body       io.ReadCloser
	r          io.Reader // the decoder, made at the first read
}

// Recipients are the fingerprints of the keys an encrypted object was
// encrypted to, known once reading began (also when it failed to decrypt).
func (o *Object) Recipients() []string { return o.recipients }

func (o *Object) Read(p []byte) (int, error) {
	if o.r == nil {
		var body io.Reader = o.body
		if o.Encrypted {
			r, recipients, err := o.keys.decrypter(body, o.Key)
			o.recipients = recipients
			if err != nil {
				return 0, err
			}
			body = r
		}
		switch {
		case o.Codec == CodecLZ4:
			r, err := newLZ4Reader(body, o.Key)
			if err != nil {
				return 0, err
			}
			o.r = r
		case o.Sealed:
			o.r = newUnsealer(body, o.Key)
		default:
			o.r = body
		}
	}
	n, err := o.r.Read(p)
	if err != nil && err != io.EOF && o.Codec == CodecLZ4 && !isStorageErr(err) && !errors.Is(err, ErrCorrupt) {
		err = &CorruptError{Key: o.Key, Reason: err.Error()}
	}
	return n, err
}

// Close releases the object.
func (o *Object) Close() error { return o.body.Close() }

// CopyN copies exactly n decoded bytes to w the cheapest way the codec
// allows (an in-kernel copy for a bare local file into a file).
func (o *Object) CopyN(w io.Writer, n int64) (int64, error) {
	if o.Codec == CodecNone && !o.Sealed && !o.Encrypted {
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
		if _, isFile := src.(*os.File); isFile {
			return io.Copy(w, io.LimitReader(src, n))
		}
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

// locations lists where n may be stored. A repository of the current
// format in the walship layout, which only walship writes, has exactly
// one place for each name; one in the plain layout (where cp may write
// too), of format 1, or without an identity file yet, is searched in every
// place its layout allows.
func (r *Repo) locations(ctx context.Context, n wal.Name) ([]Location, error) {
	if id := r.ident; id != nil && id.Format >= 2 && id.Layout != LayoutPlain {
		loc, err := r.location(ctx, n)
		return []Location{loc}, err
	}
	locs := Candidates(r.layout, n)
	for i := range locs {
		locs[i] = r.describe(locs[i].Key, locs[i].Codec)
	}
	return locs, nil
}

// location is the one place n is written.
func (r *Repo) location(ctx context.Context, n wal.Name) (Location, error) {
	layout, err := r.writeLayout(ctx)
	if err != nil {
		return Location{}, err
	}
	codec := CodecNone
	if Compressible(n.Kind) {
		if codec = r.Compress; r.ident != nil && r.ident.Codec != "" {
			codec = r.ident.Codec
		}
		if codec == "" {
			codec = CodecLZ4
		}
	}
	return r.describe(Key(layout, n, codec), codec), nil
}

// describe is the location of an object at key of codec c: whether it is
// sealed, whether encrypted.
func (r *Repo) describe(key string, c Codec) Location {
	return Location{Key: key, Codec: c, Sealed: r.sealed(key, c), Encrypted: r.encrypted()}
}

// encrypted reports whether the repository's objects are encrypted: as
// its identity file says, or, before it has one, as the keys it was
// opened with say (the first history file of a new repository).
func (r *Repo) encrypted() bool {
	if r.ident != nil {
		return r.ident.Encryption != nil
	}
	return len(r.Keys.Recipients) > 0
}

// sealed reports whether the object at key carries a checksum footer: an
// uncompressed object in the walship layout, unless the repository is of
// format 1.
func (r *Repo) sealed(key string, c Codec) bool {
	if c != CodecNone || (r.ident != nil && r.ident.Format < 2) {
		return false
	}
	_, _, l, ok := ParseKey(key)
	return ok && l == LayoutWalship
}

// notFound is the answer for a name the repository does not hold, or, in
// a repository that was not created by archiving and holds neither an
// identity file nor any WAL (an archive mount that is not mounted, a
// mistyped prefix), an error matching ErrNoRepository: such a location
// must not answer "not found", which would end a recovery early.
func (r *Repo) notFound(ctx context.Context, op string, n wal.Name) error {
	if r.ident == nil && !r.Create {
		has, err := r.hasWAL(ctx)
		if err != nil {
			return err
		}
		if !has {
			return fmt.Errorf("%w at %s: it holds no %s and no WAL (an archive that is not mounted, or a wrong path or prefix?)", ErrNoRepository, r, IdentityKey)
		}
	}
	return &storage.Error{Op: op, Key: n.String(), Err: errNotExist}
}

// Find returns the entry of name as stored, or an error matching
// fs.ErrNotExist.
func (r *Repo) Find(ctx context.Context, n wal.Name) (Entry, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return Entry{}, err
	}
	locs, err := r.locations(ctx, n)
	if err != nil {
		return Entry{}, err
	}
	var firstErr error
	for _, loc := range locs {
		info, err := r.b.Stat(ctx, loc.Key)
		if err == nil {
			return Entry{Name: n, Location: loc, Size: info.Size, Info: info}, nil
		}
		if !storage.IsNotExist(err) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return Entry{}, firstErr
	}
	return Entry{}, r.notFound(ctx, "find", n)
}

// Open opens name for reading, decoded. A missing file gives an error
// matching fs.ErrNotExist.
func (r *Repo) Open(ctx context.Context, n wal.Name) (*Object, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return nil, err
	}
	locs, err := r.locations(ctx, n)
	if err != nil {
		return nil, err
	}
	var firstErr error
	for _, loc := range locs {
		o, err := r.openAt(ctx, n, loc)
		if err == nil {
			return o, nil
		}
		if !storage.IsNotExist(err) && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return nil, r.notFound(ctx, "open", n)
}

func (r *Repo) openAt(ctx context.Context, n wal.Name, loc Location) (*Object, error) {
	body, err := r.b.Open(ctx, loc.Key)
	if err != nil {
		return nil, err
	}
	return &Object{Name: n, Location: loc, keys: r.Keys, body: body}, nil
}

// Put stores data as name, create-only, in the one place the repository
// has for it (history and backup files are never compressed). When name is
// already stored, Put compares: identical content returns nil with existed
// true (after making the stored copy durable); different content returns
// an error matching fs.ErrExist and leaves the stored object as it is.
func (r *Repo) Put(ctx context.Context, n wal.Name, data []byte) (existed bool, err error) {
	_, existed, err = r.PutFrom(ctx, n, bytes.NewReader(data), int64(len(data)))
	return existed, err
}

// PutFrom is Put reading size bytes from src, which must be rewindable (a
// file or an in-memory reader): it is read again to checksum or compare.
// A bare *os.File reaches a local backend as it is, so the kernel copies
// it. It also returns the key the file is stored under.
func (r *Repo) PutFrom(ctx context.Context, n wal.Name, src io.ReadSeeker, size int64) (key string, existed bool, err error) {
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return "", false, err
	}
	if haveID {
		if id.Format < Format {
			return "", false, fmt.Errorf("%w: %s is of format %d, which has no checksums; walship writes format %d: archive into a new repository", ErrOldFormat, r, id.Format, Format)
		}
		if err := r.checkAsked(id); err != nil {
			return "", false, err
		}
		if err := r.checkWrite(id); err != nil {
			return "", false, err
		}
	}
	loc, err := r.location(ctx, n)
	if err != nil {
		return "", false, err
	}
	// Where others may write too (cp, in the plain layout), the file may
	// be stored in another place already.
	locs, err := r.locations(ctx, n)
	if err != nil {
		return "", false, err
	}
	for _, other := range locs {
		if other.Key == loc.Key {
			continue
		}
		if _, err := r.b.Stat(ctx, other.Key); err == nil {
			return other.Key, true, r.existing(ctx, n, other, src, size)
		} else if !storage.IsNotExist(err) {
			return "", false, err
		}
	}
	switch {
	case loc.Encrypted:
		err = r.putEncoded(ctx, loc.Key, size, func(w io.Writer) error { return r.encryptTo(w, loc, src, size) })
	case loc.Codec == CodecLZ4 && storage.StreamsPuts(r.b):
		err = r.putStream(ctx, loc.Key, func(w io.Writer) error { return encodeLZ4To(w, src, size) })
	case loc.Codec == CodecLZ4:
		obj, encErr := encodeLZ4(src, size)
		if encErr != nil {
			return "", false, fmt.Errorf("compressing %s: %w", n, encErr)
		}
		err = r.b.Put(ctx, loc.Key, bytes.NewReader(obj), int64(len(obj)))
	case loc.Sealed:
		sum, sumErr := Sum(src, size)
		if sumErr != nil {
			return "", false, fmt.Errorf("reading %s: %w", n, sumErr)
		}
		obj := newSealed(src, size, sum)
		err = r.b.Put(ctx, loc.Key, obj, obj.Len())
	default:
		err = r.b.Put(ctx, loc.Key, src, size)
	}
	if storage.IsExist(err) {
		return loc.Key, true, r.existing(ctx, n, loc, src, size)
	}
	return loc.Key, false, err
}

// existing answers a put of n whose object is stored at loc already:
// identical content is made durable (an earlier attempt may have died
// between its rename and the sync of the directory) before it counts as
// archived; different content is an error matching ErrDifferent.
func (r *Repo) existing(ctx context.Context, n wal.Name, loc Location, src io.ReadSeeker, size int64) error {
	if err := r.compare(ctx, n, loc, src, size); err != nil {
		return err
	}
	return storage.Sync(ctx, r.b, loc.Key)
}

// ErrDifferent is matched when a file is already archived with other content.
var ErrDifferent = fmt.Errorf("archived with different content: %w", errExist)

// compare checks that the stored copy of n at loc holds exactly the size
// bytes of src.
func (r *Repo) compare(ctx context.Context, n wal.Name, loc Location, src io.ReadSeeker, size int64) error {
	if loc.Encrypted {
		return r.compareDigest(ctx, loc, src, size)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	o, err := r.openAt(ctx, n, loc)
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

// compareDigest compares src with an encrypted object by the content
// digest in its clear-text line: a writer holds no identity to decrypt.
func (r *Repo) compareDigest(ctx context.Context, loc Location, src io.ReadSeeker, size int64) error {
	body, err := r.b.Open(ctx, loc.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	stored, err := storedDigest(body, loc.Key)
	if err != nil {
		return err
	}
	mine, err := Digest(src, size)
	if err != nil {
		return err
	}
	if stored != mine {
		return fmt.Errorf("%s: %w", loc.Key, ErrDifferent)
	}
	return nil
}

// Entry is one WAL file found by List.
type Entry struct {
	Name wal.Name
	Location
	Size int64 // stored bytes
	Info storage.Info
}

// List calls fn for every WAL file in the repository, in key order, in
// either layout whatever the repository's (so that a file stored in the
// other layout too is seen); keys that hold no WAL file are skipped.
func (r *Repo) List(ctx context.Context, fn func(Entry) error) error {
	if _, _, err := r.Identity(ctx); err != nil {
		return err
	}
	return r.b.List(ctx, "", func(i storage.Info) error {
		n, c, _, ok := ParseKey(i.Key)
		if !ok {
			return nil
		}
		return fn(Entry{Name: n, Location: r.describe(i.Key, c), Size: i.Size, Info: i})
	})
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

// Nearby reports whether the store costs no round trip per call (see
// storage.Nearby).
func (r *Repo) Nearby() bool { return storage.IsNearby(r.b) }

// Sweep finds the temporary files killed writers left in the repository
// and, with remove, deletes them (see storage.Sweeper).
func (r *Repo) Sweep(ctx context.Context, remove bool) (count int, bytes int64, err error) {
	return storage.Sweep(ctx, r.b, remove)
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
