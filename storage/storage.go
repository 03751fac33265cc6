// Package storage defines the Backend that holds a walship archive, the
// errors every backend maps its failures to, the registry that turns a
// repository URL into a backend, and a retry wrapper that is itself a
// backend.
//
// Backends store opaque bytes under slash-separated keys. They do not know
// about WAL, compression or layout; the repo package builds every key.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"
)

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Backend is the contract every store fulfils. All methods take ctx first
// and honour its cancellation.
type Backend interface {
	// Put stores the bytes of r under key, create-only: when key exists,
	// Put returns an error matching fs.ErrExist and leaves the object as it
	// was. size is the length of r, or -1 if unknown. Put returns nil only
	// when the object is durably stored; an object is never visible
	// half-written.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Open returns the object's contents; a missing key gives an error
	// matching fs.ErrNotExist.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the object; a missing key gives fs.ErrNotExist.
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn for every object whose key starts with prefix, in key
	// order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Remove deletes the object; removing a missing key is not an error.
	Remove(ctx context.Context, key string) error
	// String names the backend's location for messages (never secrets).
	String() string
}

// ErrTransient marks errors worth retrying (timeouts, throttling, a store
// that is briefly unreachable). Backends wrap such errors so that
// errors.Is(err, ErrTransient) is true; everything else is permanent.
var ErrTransient = errors.New("transient storage error")

// ErrBadKey is matched by the error for a key that is not a clean relative
// slash-separated path.
var ErrBadKey = errors.New("invalid storage key")

// Error wraps a backend failure with the operation and key it concerns.
type Error struct {
	Op  string // "put", "open", "stat", "list", "remove"
	Key string
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" { // the whole store: a list from its top, a look at it
		return fmt.Sprintf("%s: %v", e.Op, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Transient wraps err so that it matches ErrTransient as well as itself.
func Transient(err error) error {
	if err == nil || errors.Is(err, ErrTransient) {
		return err
	}
	return transientError{err}
}

type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() []error {
	return []error{e.err, ErrTransient}
}

// IsNotExist reports whether err means the object does not exist.
func IsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// IsExist reports whether err means a create-only Put found the key taken.
func IsExist(err error) bool { return errors.Is(err, fs.ErrExist) }

// CheckKey rejects keys that are not clean relative slash paths: empty,
// absolute, with empty, "." or ".." elements, backslashes or NUL bytes, or
// with an element starting with '.' (reserved for temporary files).
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w: %q", ErrBadKey, key)
	}
	for _, el := range strings.Split(key, "/") {
		if el == "" || el[0] == '.' {
			return fmt.Errorf("%w: %q", ErrBadKey, key)
		}
	}
	return nil
}

// Exister is implemented by backends that can tell whether their location
// (a directory, a bucket) exists at all, as opposed to being empty.
type Exister interface {
	// Exists returns nil when the location exists, an error matching
	// fs.ErrNotExist when it does not, or another error.
	Exists(ctx context.Context) error
}

// Exists asks b, or the backend it wraps, whether its location exists. A
// backend that cannot tell is taken to exist.
func Exists(ctx context.Context, b Backend) error {
	if e, ok := As[Exister](b); ok {
		return e.Exists(ctx)
	}
	return nil
}

// Placer is implemented by backends whose String does not name their
// store whole: Place adds what it leaves out (an S3 store's endpoint), so
// that two stores are never taken for one.
type Placer interface {
	Place() string
}

// Place names the store b writes to completely, for keys of local caches
// (the spool): an S3 bucket and prefix with the endpoint that serves them;
// b.String() for other backends.
func Place(b Backend) string {
	if p, ok := As[Placer](b); ok {
		return p.Place()
	}
	return b.String()
}

// ErrNotOwner is matched when a program would write into a repository
// that belongs to another user than the one running it: what it wrote
// could be unreadable to the repository's own user (the server's).
var ErrNotOwner = errors.New("not the repository's owner")

// OwnerChecker is implemented by backends whose objects belong to a local
// user (a directory): CheckOwner returns an error matching ErrNotOwner,
// naming the owner, when the running user is another one.
type OwnerChecker interface {
	CheckOwner() error
}

// CheckOwner asks b, or the backend it wraps, whether the running user may
// write into it as its owner. A backend without owners (S3) says yes.
func CheckOwner(b Backend) error {
	if o, ok := As[OwnerChecker](b); ok {
		return o.CheckOwner()
	}
	return nil
}

// As returns b, or the first backend b wraps (through an Unwrap() Backend
// method, as the retry wrapper has), that implements T: the way to reach an
// optional capability (Exister, Streamer, Watcher, BatchRemover) under any
// wrappers.
func As[T any](b Backend) (T, bool) {
	var t T
	found := false
	walk(b, func(x Backend) bool {
		t, found = x.(T)
		return found
	})
	return t, found
}

// walk calls f on b and on each backend it wraps, outermost first, until f
// returns true.
func walk(b Backend, f func(Backend) bool) {
	for !f(b) {
		u, ok := b.(interface{ Unwrap() Backend })
		if !ok {
			return
		}
		b = u.Unwrap()
	}
}

// Streamer is implemented by backends that write a Put of unknown size
// (-1) to its destination as it arrives, holding none of it in memory (a
// local file). A caller that produces data on the fly, such as a
// compressor, then streams it instead of building the object first.
type Streamer interface {
	StreamsPuts() bool
}

// StreamsPuts tells whether b, or the backend it wraps, is a Streamer that
// streams.
func StreamsPuts(b Backend) bool {
	s, ok := As[Streamer](b)
	return ok && s.StreamsPuts()
}

// Watcher is implemented by backends that can tell when objects appear
// (a local directory, through file system events), so that a caller
// waiting for one need not poll often.
type Watcher interface {
	// Watch sends on the returned channel whenever an object with one of
	// the keys may have been created or changed, until ctx ends (then the
	// channel is closed). Sends are coalesced: a caller that is busy gets
	// one notification for many events. A notification may be spurious;
	// an event is never lost without one (if the watch itself fails, a
	// notification is sent so that the caller looks). The keys need not
	// exist, nor their directories.
	Watch(ctx context.Context, keys []string) (<-chan struct{}, error)
}

// Syncer is implemented by backends whose objects can be visible before
// they are durable (a file renamed into place, its directory not yet
// synced): Sync makes the object and its name durable.
type Syncer interface {
	Sync(ctx context.Context, key string) error
}

// Sync makes the object at key durable on a backend that needs it (a
// Syncer under any wrappers); on others it does nothing.
func Sync(ctx context.Context, b Backend, key string) error {
	if s, ok := As[Syncer](b); ok {
		return s.Sync(ctx, key)
	}
	return nil
}

// Sweeper is implemented by backends on which a killed writer can leave
// temporary files behind (a local filesystem).
type Sweeper interface {
	// Sweep finds the temporary files older than any write can take and,
	// with remove, deletes them; it returns how many and their bytes.
	Sweep(ctx context.Context, remove bool) (count int, bytes int64, err error)
}

// Sweep is Sweeper.Sweep on b under any wrappers; a backend that leaves
// nothing behind has nothing to sweep.
func Sweep(ctx context.Context, b Backend, remove bool) (count int, bytes int64, err error) {
	if s, ok := As[Sweeper](b); ok {
		return s.Sweep(ctx, remove)
	}
	return 0, 0, nil
}

// BatchRemover is implemented by backends that delete many keys in one call
// (S3's DeleteObjects). Callers use RemoveMany rather than testing for it.
type BatchRemover interface {
	// RemoveMany deletes the objects; missing keys are not an error.
	RemoveMany(ctx context.Context, keys []string) error
}

// Batches reports whether b, under any wrappers, deletes many keys in one
// call, so that grouping removals pays.
func Batches(b Backend) bool {
	inner := b
	walk(b, func(x Backend) bool { inner = x; return false })
	_, ok := inner.(BatchRemover) // the wrappers are BatchRemovers for any store
	return ok
}

// RemoveMany deletes keys from b: in batches when b can, else one by one.
// The retry wrapper is a BatchRemover for any backend it wraps.
func RemoveMany(ctx context.Context, b Backend, keys []string) error {
	if br, ok := b.(BatchRemover); ok {
		return br.RemoveMany(ctx, keys)
	}
	for _, k := range keys {
		if err := b.Remove(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
