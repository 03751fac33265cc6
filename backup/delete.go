package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
)

// ErrInUse is matched when deleting a backup would give up the newest
// restorable one, or one another backup builds on.
var ErrInUse = errors.New("backup still needed")

// DeleteResult is what Delete removed.
type DeleteResult struct {
	Stored *catalog.Stored
	// Broken are the backups that built on the one removed (with force):
	// no longer restorable.
	Broken []repo.BackupID
}

// Delete removes the stored (or registered) backup id: its record first,
// then its objects (a registered backup's files stay where they are). It
// refuses, unless force, the newest restorable backup whose files are
// known and any backup another one builds on (an incremental's parent).
// The WAL stays: walship-prune removes what no backup needs.
func Delete(ctx context.Context, r *repo.Repo, id repo.BackupID, force bool) (*DeleteResult, error) {
	if err := r.CheckOwner(); err != nil {
		return nil, err
	}
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		return nil, err
	}
	sb := c.StoredByID(id)
	if sb == nil {
		return nil, fmt.Errorf("%w: the repository holds no backup %s", ErrNoBackup, id)
	}
	res := &DeleteResult{Stored: sb}
	for _, other := range c.Stored {
		if other.Record != nil && other.Record.Parent == id {
			res.Broken = append(res.Broken, other.ID)
		}
	}
	if !force {
		if len(res.Broken) > 0 {
			return nil, fmt.Errorf("%w: backup %s is the one %s builds on: deleting it makes them unrestorable (--force deletes it all the same)",
				ErrInUse, id, joinIDs(res.Broken))
		}
		for _, b := range c.Backups() { // newest first
			if !b.FilesKnown() || !c.BackupStatusOf(b).Restorable {
				continue
			}
			if b.Stored.ID == id {
				return nil, fmt.Errorf("%w: backup %s is the newest restorable backup: without it the repository restores only from older ones, or from none (--force deletes it all the same)", ErrInUse, id)
			}
			break
		}
	}
	if err := catalog.RemoveBackup(ctx, r, sb); err != nil {
		return nil, err
	}
	return res, nil
}

func joinIDs(ids []repo.BackupID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}
