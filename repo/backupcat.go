package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/walship/walship/storage"
)

// LeftoverAge is how long the objects of a backup without a record are
// left alone: the backup may be running (its record is written last), and
// one that stored nothing for this long has died.
const LeftoverAge = 24 * time.Hour

// StoredBackup is one backup directory of the repository: walship's record
// of a base backup and the objects stored under its ID.
type StoredBackup struct {
	ID BackupID
	// Meta is the record; nil when there is none (an incomplete backup) or
	// it cannot be read (Err).
	Meta *BackupMeta
	Err  error
	// Objects are the objects stored under the ID, the record included.
	Objects map[BackupPart]storage.Info
	// Newest is when the latest of them was stored.
	Newest time.Time
}

// Bytes is what the objects take in the store.
func (s *StoredBackup) Bytes() int64 {
	var n int64
	for _, i := range s.Objects {
		n += i.Size
	}
	return n
}

// Keys lists the objects' keys, the record first (the order of a removal).
func (s *StoredBackup) Keys() []string {
	var keys []string
	for p := range s.Objects {
		keys = append(keys, BackupObject{ID: s.ID, Part: p}.Key())
	}
	slices.Sort(keys)
	first := BackupObject{ID: s.ID, Part: MetaPart}.Key()
	if i := slices.Index(keys, first); i > 0 {
		keys = append(append([]string{first}, keys[:i]...), keys[i+1:]...)
	}
	return keys
}

// Missing checks the objects the record lists against those stored: the
// first that is missing or whose stored size differs, as a reason, or "".
func (s *StoredBackup) Missing() string {
	if s.Meta == nil || s.Meta.Registered {
		return ""
	}
	for _, o := range s.Meta.Objects {
		p, _ := o.Part()
		i, ok := s.Objects[p]
		switch {
		case !ok:
			return fmt.Sprintf("object %s is missing", BackupObject{ID: s.ID, Part: p}.Key())
		case i.Size != o.Stored:
			return fmt.Sprintf("object %s has %d bytes, its record says %d", i.Key, i.Size, o.Stored)
		}
	}
	return ""
}

// listAll lists the repository once: WAL files to walFn (as List does),
// backup objects to backupFn; other keys are skipped.
func (r *Repo) listAll(ctx context.Context, walFn func(Entry) error, backupFn func(BackupObject, storage.Info)) error {
	if _, _, err := r.Identity(ctx); err != nil {
		return err
	}
	return r.b.List(ctx, "", func(i storage.Info) error {
		if n, c, _, ok := ParseKey(i.Key); ok {
			return walFn(Entry{Name: n, Location: r.describe(i.Key, c), Size: i.Size, Info: i})
		}
		if o, ok := ParseBackupKey(i.Key); ok {
			backupFn(o, i)
		}
		return nil
	})
}

// readBackups reads the record of each backup directory found by the
// listing. A storage error fails the scan; a damaged record is kept, with
// Err set.
func (c *Catalog) readBackups(ctx context.Context, r *Repo, dirs map[BackupID]*StoredBackup) error {
	ids := make([]BackupID, 0, len(dirs))
	for id := range dirs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		sb := dirs[id]
		if _, ok := sb.Objects[MetaPart]; !ok {
			c.Incomplete = append(c.Incomplete, sb)
			continue
		}
		m, err := r.ReadBackupMeta(ctx, id)
		switch {
		case storage.IsNotExist(err):
			// Removed since the listing (a concurrent prune).
			delete(sb.Objects, MetaPart)
			if len(sb.Objects) > 0 {
				c.Incomplete = append(c.Incomplete, sb)
			}
			continue
		case errors.Is(err, ErrCorrupt):
			sb.Err = err
		case err != nil:
			return fmt.Errorf("reading the record of backup %s: %w", id, err)
		default:
			sb.Meta = m
		}
		c.Stored = append(c.Stored, sb)
	}
	return nil
}

// StoredByID returns the stored backup with this ID, or nil.
func (c *Catalog) StoredByID(id BackupID) *StoredBackup {
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
func (r *Repo) RemoveBackup(ctx context.Context, s *StoredBackup) error {
	keys := s.Keys()
	if len(keys) == 0 {
		return nil
	}
	if _, ok := s.Objects[MetaPart]; ok {
		if err := r.b.Remove(ctx, keys[0]); err != nil {
			return fmt.Errorf("removing the record of backup %s: %w", s.ID, err)
		}
		keys = keys[1:]
	}
	if err := storage.RemoveMany(ctx, r.b, keys); err != nil {
		return fmt.Errorf("removing backup %s: %w", s.ID, err)
	}
	return nil
}

// BackupTaken reports whether anything is stored under backup id (so that
// a new backup takes another ID).
func (r *Repo) BackupTaken(ctx context.Context, id BackupID) (bool, error) {
	found := false
	err := r.b.List(ctx, BackupPrefix(id), func(storage.Info) error {
		found = true
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return false, fmt.Errorf("listing %s: %w", BackupPrefix(id), err)
	}
	return found, nil
}

// BackupObjectInfo describes one stored object of a backup (fs.ErrNotExist
// when it is not stored).
func (r *Repo) BackupObjectInfo(ctx context.Context, o BackupObject) (storage.Info, error) {
	return r.b.Stat(ctx, o.Key())
}
