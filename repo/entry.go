package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// OpenEntry opens exactly the object a List entry names, decoded with its
// codec. Unlike Open it does not search the candidate keys, so a file that
// is stored twice (under both codecs or both layouts) can be read copy by
// copy, as a verification must.
func (r *Repo) OpenEntry(ctx context.Context, e Entry) (*Object, error) {
	return r.openAt(ctx, e.Name, e.Location)
}

// RawSize is the size of the WAL file the entry holds: the segment size
// for a compressed segment (0 when unknown), the stored size less the
// checksum footer for a sealed object, else the stored size.
func (e Entry) RawSize(segSize uint32) int64 {
	switch {
	case Compressible(e.Name.Kind) && e.Codec != CodecNone:
		return int64(segSize)
	case e.Sealed:
		return e.Size - int64(FooterSize)
	}
	return e.Size
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

// Sweep finds the temporary files killed writers left in the repository
// and, with remove, deletes them (see storage.Sweeper).
func (r *Repo) Sweep(ctx context.Context, remove bool) (count int, bytes int64, err error) {
	return storage.Sweep(ctx, r.b, remove)
}

// ErrNoWatch is returned by Watch for a store that cannot be watched.
var ErrNoWatch = errors.New("the store cannot be watched for new objects")

// Watch sends on the returned channel whenever one of names may have appeared in
// the repository (see storage.Watcher), until ctx ends. A store that
// cannot be watched gives an error matching ErrNoWatch: poll it instead.
func (r *Repo) Watch(ctx context.Context, names ...wal.Name) (<-chan struct{}, error) {
	w, ok := storage.As[storage.Watcher](r.b)
	if !ok {
		return nil, ErrNoWatch
	}
	var keys []string
	for _, n := range names {
		for _, loc := range Candidates(r.layout, n) {
			keys = append(keys, loc.Key)
		}
	}
	return w.Watch(ctx, keys)
}

// ReadHeader reads and parses the long page header of a stored segment or
// partial segment.
func ReadHeader(ctx context.Context, r *Repo, e Entry) (wal.LongHeader, error) {
	o, err := r.OpenEntry(ctx, e)
	if err != nil {
		return wal.LongHeader{}, err
	}
	defer o.Close()
	head := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(o, head); err != nil {
		return wal.LongHeader{}, fmt.Errorf("reading the header of %s: %w", e.Key, err)
	}
	return wal.ParseLongHeader(head)
}
