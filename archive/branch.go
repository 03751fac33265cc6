package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Branch is a newer timeline in the repository that left the timeline of
// a segment being archived before that segment began: the segment's server
// goes on writing a history that another server has already left. That is
// the last segments of an old primary at a failover, or a second writer (a
// promoted PITR copy with the primary's archive_command, an old primary
// still running): the segment is archived all the same, since pg_rewind may
// need it, and the warning says which.
type Branch struct {
	Timeline    uint32  `json:"timeline"`     // the newer timeline
	SwitchPoint wal.LSN `json:"switch_point"` // where it left the segment's timeline
	// Unread: the history file is encrypted and this archiver holds no key
	// to read it (writers hold public keys only), so the switch point is
	// not known: the newer timeline's mere existence is reported.
	Unread bool `json:"unread,omitempty"`
}

// Warning is the line walship-archive logs.
func (b Branch) Warning(n wal.Name) string {
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

// maxBranchProbe bounds how many newer history files are read, one after
// the other, once the next one exists (which it does not in a repository
// with one writer).
const maxBranchProbe = 16

// branchedBefore looks for a newer timeline that left n's timeline at or
// before n's start. It costs one look at the store, for the history file
// of the next timeline, unless that exists; a failure to look is no
// answer (logged at debug level), never an error: the push decides.
func branchedBefore(ctx context.Context, r *repo.Repo, n wal.Name, segSize uint32, log *slog.Logger) *Branch {
	start := n.StartLSN(segSize)
	for tli := n.Timeline + 1; tli <= n.Timeline+maxBranchProbe && tli > n.Timeline; tli++ {
		hn := wal.Name{Kind: wal.KindHistory, Timeline: tli}
		h, err := readHistory(ctx, r, hn)
		if storage.IsNotExist(err) {
			return nil
		}
		if errors.Is(err, repo.ErrEncryption) {
			return &Branch{Timeline: tli, Unread: true}
		}
		if err != nil {
			log.Debug("looking for newer timelines", "file", hn, "err", err)
			return nil
		}
		if sp, ok := h.SwitchPoint(n.Timeline); ok {
			if start >= sp {
				return &Branch{Timeline: tli, SwitchPoint: sp}
			}
			return nil // branched off after this segment: it is on both histories
		}
	}
	return nil
}

func readHistory(ctx context.Context, r *repo.Repo, n wal.Name) (wal.History, error) {
	o, err := r.Open(ctx, n)
	if err != nil {
		return wal.History{}, err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, repo.MaxTextFile+1))
	if err != nil {
		return wal.History{}, err
	}
	text, err := repo.ParseText(n, data, nil)
	if err != nil || text.History == nil {
		return wal.History{}, fmt.Errorf("%s: %w", n, err)
	}
	return *text.History, nil
}
