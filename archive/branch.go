package archive

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Branch is a newer timeline in the repository that left the timeline of
// a segment being archived before that segment began: the segment's server
// goes on writing a history that another server has already left. That is
// the last segments of an old primary at a failover, or a second writer (a
// promoted PITR copy with the primary's archive_command, an old primary
// still running): the segment is archived all the same, since pg_rewind may
// need it, and the warning says which.
type Branch = repo.Branch

// Warning is the line walship-archive logs when the segment it archived
// lies past a newer timeline's switch point (Newer), "" otherwise.
func (res Result) Warning() string {
	if res.Newer == nil {
		return ""
	}
	b, n := res.Newer, res.Name
	return warning(b, n)
}

func warning(b *Branch, n wal.Name) string {
	if b.Unread {
		return fmt.Sprintf("archiving %s of timeline %d while the repository holds %s, encrypted (its switch point cannot be read without a key): "+
			"if timeline %d branched off before this segment, another server has been promoted from this cluster's WAL and both archive here; "+
			"if this server is an old primary after a failover, stop it; if the other is a restored copy, it needs archive_mode = off or its own repository",
			n, n.Timeline, wal.Name{Kind: wal.KindHistory, Timeline: b.Timeline}, b.Timeline)
	}
	return fmt.Sprintf("archiving %s of timeline %d, past %s where timeline %d branched off it (%s is in the repository): "+
		"another server has been promoted from this cluster's WAL and both archive here; "+
		"if this server is an old primary after a failover, stop it; if the other is a restored copy, it needs archive_mode = off or its own repository",
		n, n.Timeline, b.SwitchPoint, b.Timeline, wal.Name{Kind: wal.KindHistory, Timeline: b.Timeline})
}

// branchedBefore looks for a newer timeline that left n's timeline at or
// before n's start (repo.NewerTimeline). A failure to look is no answer
// (logged at debug level), never an error: the push decides.
func branchedBefore(ctx context.Context, r *repo.Repo, n wal.Name, segSize uint32, log *slog.Logger) *Branch {
	b, err := r.NewerTimeline(ctx, n.Timeline)
	if err != nil {
		log.Debug("looking for newer timelines", "file", n, "err", err)
		return nil
	}
	if b == nil || (!b.Unread && n.StartLSN(segSize) < b.SwitchPoint) {
		return nil // none, or branched off after this segment: it is on both histories
	}
	return b
}
