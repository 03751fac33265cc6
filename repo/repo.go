// Package repo is a walship repository on top of a storage.Backend: where
// each WAL file's object lives (the layout), how it is encoded (lz4 or
// plain), and the identity file that ties the repository to one database
// cluster. Every storage key walship uses is built and parsed here, from
// typed wal.Names, so no free-form path ever reaches a backend.
package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// IdentityKey is the object that records which cluster a repository holds.
const IdentityKey = "walship.json"

// Layout is how objects are arranged in a repository.
type Layout string

const (
	// LayoutWalship groups segments by timeline and log:
	// wal/0000000100000000/000000010000000000000001.lz4, with history and
	// backup history files as plain text beside them.
	LayoutWalship Layout = "walship"
	// LayoutPlain is what cp and rsync archive_commands write: bare file
	// names, uncompressed, at the top of the repository.
	LayoutPlain Layout = "plain"
	// LayoutAuto takes the layout from the identity file; a repository
	// without one is read in both layouts and written in LayoutWalship.
	LayoutAuto Layout = "auto"
)

// ParseLayout checks a --layout value.
func ParseLayout(s string) (Layout, error) {
	switch l := Layout(s); l {
	case LayoutWalship, LayoutPlain, LayoutAuto:
		return l, nil
	case "":
		return LayoutAuto, nil
	}
	return "", fmt.Errorf("unknown layout %q: use walship, plain or auto", s)
}

// Format is the version of the repository format walship writes. Format 1
// let every call choose its codec and stored uncompressed objects without a
// checksum; format 2 records one codec for the repository and seals every
// uncompressed object of the walship layout with a checksum footer.
// Repositories of format 1 are read, never written.
const Format = 2

// Identity is the content of the identity file.
type Identity struct {
	Format int `json:"format"`
	// ID is random, made with the repository: two repositories of one
	// cluster at one location, one after the other, are told apart by it.
	ID       string `json:"id,omitempty"`
	SystemID uint64 `json:"system_identifier,string"`
	SegSize  uint32 `json:"wal_segment_size"`
	Layout   Layout `json:"layout"`
	Codec    Codec  `json:"compression,omitempty"` // of segments; format 2
	// Encryption, when set, says every object is encrypted (crypt.go).
	Encryption *Encryption `json:"encryption,omitempty"`
	PGVersion  string      `json:"pg_version,omitempty"`
	Created    time.Time   `json:"created"`
}

// ErrNoRepository is matched when a repository has no identity file and no
// WAL was found in it.
var ErrNoRepository = errors.New("no walship repository")

// ErrMismatch is matched when a setting asked for (the layout, the
// compression) disagrees with what the repository's identity file records.
var ErrMismatch = errors.New("setting disagrees with the repository")

// ErrOldFormat is matched when a write is asked of a repository of an
// older format, which walship reads but does not write.
var ErrOldFormat = errors.New("repository of an older format")

// Options say how a repository is opened. They are fixed for the life of
// the Repo.
type Options struct {
	// Layout is the layout asked for; "" is LayoutAuto.
	Layout Layout
	// Create lets writes create a repository whose location does not
	// exist yet (archiving does); otherwise a missing location, or one
	// that holds neither an identity file nor any WAL, is an error
	// matching ErrNoRepository, never an empty repository.
	Create bool
	// Compress is the codec asked for segments: "" takes the repository's
	// (lz4 for a new one); another one than the repository records is
	// refused with ErrMismatch.
	Compress Codec
	// Keys are the recipients new objects are encrypted to and the
	// identities that decrypt (see crypt.go). An encrypted repository
	// refuses writes without recipients, an unencrypted one writes with.
	Keys Keys
	// Cache, when set, keeps the identity file beside the server for a
	// bounded time (spool.IdentityCache), so that not every call reads it
	// from the store.
	Cache IdentityCache
}

// Repo is an open repository.
type Repo struct {
	b        storage.Backend
	layout   Layout // as asked; LayoutAuto until the identity says otherwise
	create   bool
	compress Codec
	keys     Keys
	cache    IdentityCache

	ident     *Identity
	checked   bool  // the location is known to exist
	plainRoot *bool // a repository without identity holds WAL files at its top (cp's)
}

// IdentityCache keeps a copy of the identity file, trusted for a bounded
// time.
type IdentityCache interface {
	Load() (data []byte, ok bool)
	Store(data []byte)
}

// New opens the repository on backend b. The identity file is read lazily.
func New(b storage.Backend, o Options) *Repo {
	if o.Layout == "" {
		o.Layout = LayoutAuto
	}
	return &Repo{b: b, layout: o.Layout, create: o.Create, compress: o.Compress, keys: o.Keys, cache: o.Cache}
}

func (r *Repo) String() string { return r.b.String() }

// Identity reads the identity file; ok is false when there is none yet.
func (r *Repo) Identity(ctx context.Context) (id Identity, ok bool, err error) {
	if r.ident != nil {
		return *r.ident, true, nil
	}
	if r.cache != nil {
		if data, ok := r.cache.Load(); ok {
			if id, err := r.parseIdentity(data); err == nil {
				return id, true, r.useIdentity(id)
			}
		}
	}
	rc, err := r.b.Open(ctx, IdentityKey)
	if storage.IsNotExist(err) {
		if !r.checked && !r.create {
			if err := storage.Exists(ctx, r.b); err != nil {
				if storage.IsNotExist(err) {
					return Identity{}, false, fmt.Errorf("%w at %s: it does not exist", ErrNoRepository, r)
				}
				return Identity{}, false, err
			}
			r.checked = true
		}
		return Identity{}, false, nil
	}
	if err != nil {
		return Identity{}, false, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<16))
	if err != nil {
		return Identity{}, false, fmt.Errorf("reading %s: %w", IdentityKey, err)
	}
	if id, err = r.parseIdentity(data); err != nil {
		return Identity{}, false, err
	}
	if err := r.useIdentity(id); err != nil {
		return Identity{}, false, err
	}
	if r.cache != nil {
		r.cache.Store(data)
	}
	return id, true, nil
}

// parseIdentity reads and checks the content of an identity file.
func (r *Repo) parseIdentity(data []byte) (Identity, error) {
	var id Identity
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, fmt.Errorf("%s in %s is damaged: %w", IdentityKey, r, err)
	}
	if id.SystemID == 0 || wal.ValidSegSize(id.SegSize) != nil {
		return Identity{}, fmt.Errorf("%s in %s is damaged: no system identifier or segment size", IdentityKey, r)
	}
	if id.Format >= 2 && id.Codec != CodecLZ4 && id.Codec != CodecNone {
		return Identity{}, fmt.Errorf("%s in %s is damaged: unknown compression %q", IdentityKey, r, id.Codec)
	}
	return id, nil
}

// useIdentity checks the settings asked for against id and takes it.
func (r *Repo) useIdentity(id Identity) error {
	if err := r.checkAsked(id); err != nil {
		return err
	}
	if id.Encryption == nil && len(r.keys.Identities) > 0 {
		return fmt.Errorf("%w: an identity was given to decrypt %s, and its %s says it is not encrypted: refusing to read objects in clear (an edited %s?); read an unencrypted repository without --identity",
			ErrEncryption, r, IdentityKey, IdentityKey)
	}
	r.ident = &id
	if r.layout == LayoutAuto && id.Layout != "" {
		r.layout = id.Layout
	}
	return nil
}

// SpoolKey names the repository for a local cache beside the server: its
// whole location (storage.Place: an S3 store's endpoint too, so that two
// stores with the same bucket and prefix are two) and, once it has one,
// its identity (system identifier, random id and creation time), so that
// what was cached for a repository is never taken for one that replaced
// it at the same location. ok is false while the repository has no
// identity yet.
func (r *Repo) SpoolKey(ctx context.Context) (key string, ok bool, err error) {
	id, ok, err := r.Identity(ctx)
	if err != nil || !ok {
		return storage.Place(r.b), false, err
	}
	return fmt.Sprintf("%s|%d|%s|%s", storage.Place(r.b), id.SystemID, id.ID, id.Created.UTC().Format(time.RFC3339Nano)), true, nil
}

// checkAsked refuses settings asked for that disagree with the identity.
func (r *Repo) checkAsked(id Identity) error {
	if r.layout != LayoutAuto && id.Layout != "" && r.layout != id.Layout {
		return fmt.Errorf("%w: %s is in the %s layout (%s), not %s as asked", ErrMismatch, r, id.Layout, IdentityKey, r.layout)
	}
	if r.compress != "" && id.Format >= 2 && r.compress != id.Codec {
		return fmt.Errorf("%w: %s stores segments with compression %s (%s), not %s as asked", ErrMismatch, r, id.Codec, IdentityKey, r.compress)
	}
	return nil
}

// CheckWritable is the one answer to "may this Repo write into the
// repository": not as another user than a local repository's owner
// (storage.ErrNotOwner), not into one of an older format (ErrOldFormat), not with
// settings it disagrees with (ErrMismatch), and not objects that would be
// encrypted otherwise than the repository's others are (ErrEncryption). A
// repository without an identity file yet may be written (the first
// segment archived makes it).
func (r *Repo) CheckWritable(ctx context.Context) error {
	if err := r.CheckOwner(); err != nil {
		return err
	}
	id, ok, err := r.Identity(ctx)
	if err != nil || !ok {
		return err
	}
	if id.Format < Format {
		return fmt.Errorf("%w: %s is of format %d; walship writes format %d: write into a new repository", ErrOldFormat, r, id.Format, Format)
	}
	if err := r.checkAsked(id); err != nil {
		return err
	}
	switch {
	case id.Encryption != nil && len(r.keys.Recipients) == 0:
		return fmt.Errorf("%w: %s is encrypted (%s), and no recipient to encrypt to was given", ErrEncryption, r, IdentityKey)
	case id.Encryption == nil && len(r.keys.Recipients) > 0:
		return fmt.Errorf("%w: %s is not encrypted (%s); refusing to store encrypted objects beside clear ones", ErrEncryption, r, IdentityKey)
	}
	return nil
}

// CheckReadsBack refuses a Repo that encrypts what it writes but has no
// identity to decrypt it with: a writer that reads its own objects back
// (walship receive resuming an unfinished segment from its pieces) needs
// the private key as well. (A Repo that writes into an encrypted
// repository has recipients: CheckWritable sees to that.)
func (r *Repo) CheckReadsBack() error {
	if len(r.keys.Recipients) > 0 && len(r.keys.Identities) == 0 {
		return fmt.Errorf("%w: %s: objects encrypted here must be read back, and no identity to decrypt them was given", ErrEncryption, r)
	}
	return nil
}

// CheckOwner refuses a write (or removal) into a local repository that
// another user than the one running owns (storage.ErrNotOwner).
func (r *Repo) CheckOwner() error { return storage.CheckOwner(r.b) }

// Claim makes sure the repository belongs to the cluster whose segment
// header is h: it writes the identity file if there is none (create-only,
// so two clusters racing for a new repository cannot both win) and
// otherwise compares it. A mismatch gives an error matching wal.ErrOtherCluster.
func (r *Repo) Claim(ctx context.Context, h wal.LongHeader) error {
	id, ok, err := r.Identity(ctx)
	if err != nil {
		return err
	}
	if !ok {
		if err := r.CheckOwner(); err != nil {
			return err
		}
		layout, err := r.writeLayout(ctx)
		if err != nil {
			return err
		}
		codec := r.compress
		switch {
		case codec != "":
		case layout == LayoutPlain:
			codec = CodecNone // bare files, as cp writes them
		default:
			codec = CodecLZ4
		}
		id = Identity{Format: Format, ID: rand.Text(), SystemID: h.SysID, SegSize: h.SegSize, Layout: layout, Codec: codec,
			PGVersion: h.Version(), Created: time.Now().UTC().Truncate(time.Second)}
		if len(r.keys.Recipients) > 0 {
			if layout == LayoutPlain {
				return fmt.Errorf("%w: the plain layout holds files as cp writes them, never encrypted", ErrMismatch)
			}
			id.Encryption = &Encryption{Scheme: cryptScheme, Recipients: r.keys.Fingerprints()}
		}
		data, _ := json.MarshalIndent(id, "", "  ")
		data = append(data, '\n')
		err = r.b.Put(ctx, IdentityKey, bytesReader(data), int64(len(data)))
		if err != nil && !storage.IsExist(err) {
			return fmt.Errorf("writing %s: %w", IdentityKey, err)
		}
		if err != nil { // someone else was first: compare with theirs
			r.ident = nil
			if id, _, err = r.Identity(ctx); err != nil {
				return err
			}
		} else {
			r.ident = &id
			r.layout = layout
			if r.cache != nil {
				r.cache.Store(data)
			}
		}
	}
	return id.Cluster().Check("WAL", h.Cluster(), "the repository "+r.String())
}

// Cluster is the cluster whose WAL the repository holds.
func (id Identity) Cluster() wal.Cluster {
	return wal.Cluster{SystemID: id.SystemID, SegSize: id.SegSize}
}

// Layout is the layout in force: the identity file's, the one asked for, or
// LayoutAuto when neither says.
func (r *Repo) Layout() Layout { return r.layout }

// writeLayout is the layout new objects go in: the identity file's or the
// one asked for; with neither, the plain layout if the top of the
// repository already holds WAL files (an archive cp wrote), else walship.
// A name is thus never stored in both layouts.
func (r *Repo) writeLayout(ctx context.Context) (Layout, error) {
	if r.layout != LayoutAuto {
		return r.layout, nil
	}
	if r.plainRoot == nil {
		found := false
		err := r.b.List(ctx, "", func(i storage.Info) error {
			if _, _, l, ok := ParseKey(i.Key); ok && l == LayoutPlain {
				found = true
				return errStop
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return "", fmt.Errorf("listing %s: %w", r, err)
		}
		r.plainRoot = &found
	}
	if *r.plainRoot {
		return LayoutPlain, nil
	}
	return LayoutWalship, nil
}

// errStop ends a listing early.
var errStop = errors.New("stop listing")

// hasWAL reports whether the repository holds any WAL file, in either
// layout.
func (r *Repo) hasWAL(ctx context.Context) (bool, error) {
	found := false
	err := r.b.List(ctx, "", func(i storage.Info) error {
		if _, _, _, ok := ParseKey(i.Key); ok {
			found = true
			return errStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, fmt.Errorf("listing %s: %w", r, err)
	}
	return found, nil
}
