package inspect

import (
	"fmt"
	"time"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/repo"
)

// checkStoredBackups reports on the backup directories that are not
// backups the catalog lists: a record that cannot be read is a problem;
// objects without a record (an interrupted backup, or one running now)
// are a note.
func checkStoredBackups(c *repo.Catalog) (ps []Problem, notes []string) {
	for _, sb := range c.Stored {
		if sb.Err != nil {
			ps = append(ps, Problem{string(sb.ID), "the backup's record cannot be read: " + sb.Err.Error()})
		}
	}
	for _, sb := range c.Incomplete {
		notes = append(notes, fmt.Sprintf("backup %s has %d object(s) (%s, the last stored %s) but no record: interrupted, or running now; walship-prune removes it %s after its last object",
			sb.ID, len(sb.Objects), progress.Bytes(sb.Bytes()), sb.Newest.UTC().Format(time.RFC3339), repo.LeftoverAge))
	}
	return ps, notes
}
