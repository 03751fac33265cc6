package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
)

// LeftoverAge is how long the objects of a backup without a record are
// left alone: the backup may be running (its record is written last), and
// one that stored nothing for this long has died.
const LeftoverAge = 24 * time.Hour

// Stored is one backup directory of the repository: walship's record of a
// base backup and the objects stored under its ID.
type Stored struct {
	ID repo.BackupID
	// Record is the record; nil when there is none (an interrupted
	// backup) or it cannot be read (Err).
	Record *Record
	Err    error
	// Objects are the objects stored under the ID, the record included.
	Objects map[repo.BackupPart]storage.Info
	// Newest is when the latest of them was stored.
	Newest time.Time
}

// Bytes is what the objects take in the store.
func (s *Stored) Bytes() int64 {
	var n int64
	for _, i := range s.Objects {
		n += i.Size
	}
	return n
}

// objects lists the stored objects, the record first (the order of a
// removal).
func (s *Stored) objects() []repo.BackupObject {
	var out []repo.BackupObject
	for p := range s.Objects {
		out = append(out, repo.BackupObject{ID: s.ID, Part: p})
	}
	slices.SortFunc(out, func(a, b repo.BackupObject) int {
		switch {
		case a.Part == repo.MetaPart:
			return -1
		case b.Part == repo.MetaPart:
			return 1
		}
		return strings.Compare(a.Key(), b.Key())
	})
	return out
}

// Keys lists the objects' keys, the record first (the order of a removal).
func (s *Stored) Keys() []string {
	var keys []string
	for _, o := range s.objects() {
		keys = append(keys, o.Key())
	}
	return keys
}

// Missing checks the objects the record lists against those stored: the
// first that is missing or whose stored size differs, as a reason, or "".
func (s *Stored) Missing() string {
	if s.Record == nil || s.Record.Registered {
		return ""
	}
	for _, o := range s.Record.Objects {
		p, _ := o.Part()
		i, ok := s.Objects[p]
		switch {
		case !ok:
			return fmt.Sprintf("object %s is missing", repo.BackupObject{ID: s.ID, Part: p}.Key())
		case i.Size != o.Stored:
			return fmt.Sprintf("object %s has %d bytes, its record says %d", i.Key, i.Size, o.Stored)
		}
	}
	return ""
}

// Interrupted reports whether the directory is what an interrupted backup
// (or removal) left: objects but no record, the newest stored LeftoverAge
// or more before now. A younger one may be a backup running now.
func (s *Stored) Interrupted(now time.Time) bool {
	_, hasRecord := s.Objects[repo.MetaPart]
	return !hasRecord && now.Sub(s.Newest) >= LeftoverAge
}

// readBackups reads the record of each backup directory found by the
// listing. A storage error fails the scan; a damaged record is kept, with
// Err set.
func (c *Catalog) readBackups(ctx context.Context, r *repo.Repo, dirs map[repo.BackupID]*Stored) error {
	ids := make([]repo.BackupID, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		sb := dirs[id]
		if _, ok := sb.Objects[repo.MetaPart]; !ok {
			c.Incomplete = append(c.Incomplete, sb)
			continue
		}
		m, err := ReadRecord(ctx, r, id)
		switch {
		case storage.IsNotExist(err):
			// Removed since the listing (a concurrent prune).
			delete(sb.Objects, repo.MetaPart)
			if len(sb.Objects) > 0 {
				c.Incomplete = append(c.Incomplete, sb)
			}
			continue
		case errors.Is(err, repo.ErrCorrupt):
			sb.Err = err
		case err != nil:
			return fmt.Errorf("reading the record of backup %s: %w", id, err)
		default:
			sb.Record = m
		}
		c.Stored = append(c.Stored, sb)
	}
	return nil
}

// StoredByID returns the stored backup with this ID, or nil.
func (c *Catalog) StoredByID(id repo.BackupID) *Stored {
	for _, sb := range c.Stored {
		if sb.ID == id {
			return sb
		}
	}
	return nil
}

// RemoveBackup deletes a stored backup: its record first, so that an
// interrupted removal leaves an incomplete backup (which walship-prune
// removes later), never a backup that lacks objects.
func RemoveBackup(ctx context.Context, r *repo.Repo, s *Stored) error {
	objs := s.objects()
	if len(objs) == 0 {
		return nil
	}
	if objs[0].Part == repo.MetaPart {
		if err := r.RemoveBackupObjects(ctx, objs[:1]); err != nil {
			return fmt.Errorf("removing the record of backup %s: %w", s.ID, err)
		}
		objs = objs[1:]
	}
	if err := r.RemoveBackupObjects(ctx, objs); err != nil {
		return fmt.Errorf("removing backup %s: %w", s.ID, err)
	}
	return nil
}
