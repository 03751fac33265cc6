// Package repo is a walship repository on top of a storage.Backend: where
// each WAL file's object lives (the layout), how it is encoded (lz4 or
// plain), and the identity file that ties the repository to one database
// cluster. Every storage key walship uses is built and parsed here, from
// typed wal.Names, so no free-form path ever reaches a backend.
package repo

import (
	"context"
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

// Identity is the content of the identity file.
type Identity struct {
	Format    int       `json:"format"`
	SystemID  uint64    `json:"system_identifier,string"`
	SegSize   uint32    `json:"wal_segment_size"`
	Layout    Layout    `json:"layout"`
	PGVersion string    `json:"pg_version,omitempty"`
	Created   time.Time `json:"created"`
}

// ErrWrongCluster is matched by errors about WAL that belongs to another
// cluster than the repository's.
var ErrWrongCluster = errors.New("WAL from another cluster")

// ErrNoRepository is matched when a repository has no identity file and no
// WAL was found in it.
var ErrNoRepository = errors.New("no walship repository")

// Repo is an open repository.
type Repo struct {
	b       storage.Backend
	layout  Layout // as asked; LayoutAuto until the identity says otherwise
	ident   *Identity
	checked bool // the location is known to exist
	// Create lets writes create a repository whose location does not
	// exist yet (archiving does); otherwise a missing location is an error
	// matching ErrNoRepository, never an empty repository.
	Create bool
}

// New wraps a backend. The identity file is read lazily.
func New(b storage.Backend, layout Layout) *Repo {
	if layout == "" {
		layout = LayoutAuto
	}
	return &Repo{b: b, layout: layout}
}

func (r *Repo) String() string { return r.b.String() }

// Identity reads the identity file; ok is false when there is none yet.
func (r *Repo) Identity(ctx context.Context) (id Identity, ok bool, err error) {
	if r.ident != nil {
		return *r.ident, true, nil
	}
	rc, err := r.b.Open(ctx, IdentityKey)
	if storage.IsNotExist(err) {
		if !r.checked && !r.Create {
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
	if err := json.Unmarshal(data, &id); err != nil {
		return Identity{}, false, fmt.Errorf("%s in %s is damaged: %w", IdentityKey, r, err)
	}
	if id.SystemID == 0 || wal.ValidSegSize(id.SegSize) != nil {
		return Identity{}, false, fmt.Errorf("%s in %s is damaged: no system identifier or segment size", IdentityKey, r)
	}
	r.ident = &id
	if r.layout == LayoutAuto && id.Layout != "" {
		r.layout = id.Layout
	}
	return id, true, nil
}

// Claim makes sure the repository belongs to the cluster whose segment
// header is h: it writes the identity file if there is none (create-only,
// so two clusters racing for a new repository cannot both win) and
// otherwise compares it. A mismatch gives an error matching ErrWrongCluster.
func (r *Repo) Claim(ctx context.Context, h wal.LongHeader) error {
	id, ok, err := r.Identity(ctx)
	if err != nil {
		return err
	}
	if !ok {
		layout := r.layout
		if layout == LayoutAuto {
			layout = LayoutWalship
		}
		id = Identity{Format: 1, SystemID: h.SysID, SegSize: h.SegSize, Layout: layout,
			PGVersion: h.Version(), Created: time.Now().UTC().Truncate(time.Second)}
		data, _ := json.MarshalIndent(id, "", "  ")
		data = append(data, '\n')
		err := r.b.Put(ctx, IdentityKey, bytesReader(data), int64(len(data)))
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
		}
	}
	return checkCluster(h, id, "repository "+r.String())
}

// Layout is the layout in force: the identity file's, the one asked for, or
// LayoutAuto when neither says.
func (r *Repo) Layout() Layout { return r.layout }
