package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/walship/walship/storage"
)

// The objects of base backups, as the store holds them: listed beside the
// WAL, looked for by ID, removed. What they mean (records, statuses) is
// the catalog package's.

// ListAll lists the repository once: WAL files to walFn (as List does),
// backup objects to backupFn; other keys are skipped.
func (r *Repo) ListAll(ctx context.Context, walFn func(Entry) error, backupFn func(BackupObject, storage.Info)) error {
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

// RemoveBackupObjects removes objects of backups, in the order given,
// one by one or in batches where the store has them; a missing one is no
// error.
func (r *Repo) RemoveBackupObjects(ctx context.Context, objs []BackupObject) error {
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key()
	}
	return storage.RemoveMany(ctx, r.b, keys)
}

// ClaimBackupID takes the first free ID from id on for a backup being
// taken: it stores the claim object (note, a line saying who took it)
// create-only under the ID, so that two backups started in the same second
// never share one; an ID already used is passed over for the next second.
// The claim is an object of the backup like the others: removed with it,
// or, when the backup never gets its record, with the leftovers of an
// interrupted backup.
func (r *Repo) ClaimBackupID(ctx context.Context, id BackupID, note string) (BackupID, error) {
	for range 60 {
		taken, err := r.BackupTaken(ctx, id)
		if err != nil {
			return "", err
		}
		if !taken {
			_, err = r.PutStream(ctx, BackupObject{ID: id, Part: ClaimPart}, strings.NewReader(note))
			if err == nil {
				return id, nil
			}
			if !errors.Is(err, fs.ErrExist) {
				return "", fmt.Errorf("claiming backup ID %s: %w", id, err)
			}
		}
		id = id.Next()
	}
	return "", fmt.Errorf("no free backup ID in the minute from %s", id)
}
