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
		if codec = r.compress; r.ident != nil && r.ident.Codec != "" {
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

// encrypted reports whether the repository's objects are encrypted: for
// a reader given identities, always (whatever walship.json says or lacks:
// who can write into the store can edit or remove it, and plant objects
// in clear); otherwise as its identity file says, or, before it has one,
// as the keys it was opened with say (the first history file of a new
// repository).
func (r *Repo) encrypted() bool {
	if len(r.keys.Identities) > 0 {
		return true
	}
	if r.ident != nil {
		return r.ident.Encryption != nil
	}
	return len(r.keys.Recipients) > 0
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
	if r.ident == nil && !r.create {
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
	return &Object{Name: n, Location: loc, keys: r.keys, body: body}, nil
}
