package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// File is one stored WAL file. History and backup history files are read
// and parsed by Scan; Err says why one could not be.
type File struct {
	repo.Entry
	History *wal.History    // for a parsed .history file
	Backup  *wal.BackupInfo // for a parsed .backup file
	Err     error
}

// Catalog is everything in a repository, in WAL order.
type Catalog struct {
	Location     string
	Layout       repo.Layout
	Identity     repo.Identity
	HaveIdentity bool
	// SegSize is the identity file's segment size, or, without one, the
	// size in the header of the first segment; 0 when neither is known.
	SegSize uint32
	// Files are ordered history files first (by timeline), then by
	// position in the WAL, timeline, kind and key.
	Files []File
	// Stored are the base backups walship stored (or registered): every
	// backup ID with a record, by ID. Incomplete are the IDs with objects
	// but no record: backups (or removals) that were interrupted, or one
	// that is running now.
	Stored     []*Stored
	Incomplete []*Stored
	// Pieces are the streamed pieces of segments not stored whole (or not
	// yet removed): see Tails.
	Pieces []repo.StoredPiece

	segs map[wal.Name]bool // segment names present (kind Segment)
}

// Scan lists the repository and reads its history and backup history
// files. A storage error fails the scan; a file that is damaged is kept,
// with Err set.
func Scan(ctx context.Context, r *repo.Repo) (*Catalog, error) {
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Location: r.String(), Identity: id, HaveIdentity: haveID, segs: map[wal.Name]bool{}}
	if haveID {
		c.SegSize = id.SegSize
	}
	dirs := map[repo.BackupID]*Stored{}
	err = r.ListAll(ctx, func(e repo.Entry) error {
		c.Files = append(c.Files, File{Entry: e})
		return nil
	}, func(o repo.BackupObject, i storage.Info) {
		sb := dirs[o.ID]
		if sb == nil {
			sb = &Stored{ID: o.ID, Objects: map[repo.BackupPart]storage.Info{}}
			dirs[o.ID] = sb
		}
		sb.Objects[o.Part] = i
		if i.ModTime.After(sb.Newest) {
			sb.Newest = i.ModTime
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", r, err)
	}
	if err := c.readBackups(ctx, r, dirs); err != nil {
		return nil, err
	}
	if c.Pieces, err = r.ListPieces(ctx, nil); err != nil {
		return nil, err
	}
	c.Layout = r.Layout()
	slices.SortStableFunc(c.Files, compareFiles)
	kept := c.Files[:0]
	for _, f := range c.Files {
		switch f.Name.Kind {
		case wal.KindHistory, wal.KindBackup:
			if err := readText(ctx, r, &f); err != nil {
				if storage.IsNotExist(err) {
					continue // removed since the listing (a concurrent prune)
				}
				return nil, err
			}
		case wal.KindSegment:
			c.segs[f.Name] = true
		}
		kept = append(kept, f)
	}
	c.Files = kept
	if c.SegSize == 0 {
		c.SegSize = c.guessSegSize(ctx, r)
	}
	return c, nil
}

// readText reads and parses a history or backup history file into f.
// Storage errors are returned; damage is recorded in f.Err.
func readText(ctx context.Context, r *repo.Repo, f *File) error {
	o, err := r.OpenEntry(ctx, f.Entry)
	if err != nil {
		return err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, repo.MaxTextFile+1))
	if err != nil {
		if errors.Is(err, repo.ErrCorrupt) || errors.Is(err, repo.ErrEncryption) {
			f.Err = err // damaged, or encrypted and no identity given
			return nil
		}
		return fmt.Errorf("reading %s: %w", f.Key, err)
	}
	text, err := repo.ParseText(f.Name, data, nil)
	f.History, f.Backup, f.Err = text.History, text.Backup, err
	return nil
}

// guessSegSize reads the header of the first segment of a repository that
// has no identity file.
func (c *Catalog) guessSegSize(ctx context.Context, r *repo.Repo) uint32 {
	for _, f := range c.Files {
		if f.Name.Kind != wal.KindSegment {
			continue
		}
		h, err := repo.ReadHeader(ctx, r, f.Entry)
		if err != nil {
			return 0
		}
		return h.SegSize
	}
	return 0
}

func kindOrder(k wal.Kind) int {
	switch k {
	case wal.KindHistory:
		return 0
	case wal.KindSegment:
		return 1
	case wal.KindPartial:
		return 2
	}
	return 3
}

// compareFiles orders history files first, then by WAL position.
func compareFiles(a, b File) int {
	ah, bh := a.Name.Kind == wal.KindHistory, b.Name.Kind == wal.KindHistory
	switch {
	case ah && !bh:
		return -1
	case bh && !ah:
		return 1
	}
	return cmp.Or(
		wal.ComparePosition(a.Name, b.Name),
		cmp.Compare(a.Name.Timeline, b.Name.Timeline),
		cmp.Compare(kindOrder(a.Name.Kind), kindOrder(b.Name.Kind)),
		cmp.Compare(a.Name.Offset, b.Name.Offset),
		cmp.Compare(a.Key, b.Key),
	)
}

// Duplicates lists the names stored more than once (under two codecs or
// in both layouts), each with all its files: a repository must hold one
// object per name, or a restore may hand out either.
func (c *Catalog) Duplicates() [][]*File {
	byName := map[wal.Name][]*File{}
	var order []wal.Name
	for i := range c.Files {
		f := &c.Files[i]
		if len(byName[f.Name]) == 0 {
			order = append(order, f.Name)
		}
		byName[f.Name] = append(byName[f.Name], f)
	}
	var out [][]*File
	for _, n := range order {
		if fs := byName[n]; len(fs) > 1 {
			out = append(out, fs)
		}
	}
	return out
}

// HasSegment reports whether segment n (kind Segment) is stored.
func (c *Catalog) HasSegment(n wal.Name) bool { return c.segs[n.SegmentName()] }

// Histories maps each timeline to its history file.
func (c *Catalog) Histories() map[uint32]*File {
	m := map[uint32]*File{}
	for i := range c.Files {
		if f := &c.Files[i]; f.Name.Kind == wal.KindHistory {
			if _, dup := m[f.Name.Timeline]; !dup {
				m[f.Name.Timeline] = f
			}
		}
	}
	return m
}

// Segments returns the stored segments of timeline tli (0: all), in order.
func (c *Catalog) Segments(tli uint32) []*File {
	var out []*File
	for i := range c.Files {
		f := &c.Files[i]
		if f.Name.Kind == wal.KindSegment && (tli == 0 || f.Name.Timeline == tli) {
			out = append(out, f)
		}
	}
	return out
}

// OldestSegment is the stored segment with the lowest position (on the
// lowest timeline at that position); ok is false when there is none.
func (c *Catalog) OldestSegment() (wal.Name, bool) {
	for _, f := range c.Files {
		if f.Name.Kind == wal.KindSegment {
			return f.Name, true
		}
	}
	return wal.Name{}, false
}

// Timelines lists every timeline the repository mentions: in file names
// and as ancestors in history files, in increasing order.
func (c *Catalog) Timelines() []uint32 {
	seen := map[uint32]bool{}
	for _, f := range c.Files {
		seen[f.Name.Timeline] = true
		if f.History != nil {
			for _, e := range f.History.Entries {
				seen[e.Timeline] = true
			}
		}
	}
	out := make([]uint32, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
