package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// maxBranchProbe bounds how many newer history files are read, one after
// the other, once the next one exists (which it does not in a repository
// with one writer).
const maxBranchProbe = 16

// Branch is a newer timeline that branched off an older one.
type Branch struct {
	Timeline    uint32  `json:"timeline"`     // the newer timeline
	SwitchPoint wal.LSN `json:"switch_point"` // where it left the older one
	// Unread: the history file is encrypted and the Repo holds no key to
	// read it (writers hold public keys only), so the switch point is not
	// known: only that the newer timeline exists.
	Unread bool `json:"unread,omitempty"`
}

// NewerTimeline finds the first newer timeline than tli in the repository
// (tli+1 on, while their history files exist) whose history passes through
// tli, and where it left it. It costs one look at the store (for the next
// timeline's history file) unless that exists. It returns nil when no
// newer timeline descends from tli.
func (r *Repo) NewerTimeline(ctx context.Context, tli uint32) (*Branch, error) {
	for t := tli + 1; t <= tli+maxBranchProbe && t > tli; t++ {
		hn := wal.Name{Kind: wal.KindHistory, Timeline: t}
		h, err := r.readHistory(ctx, hn)
		if storage.IsNotExist(err) {
			return nil, nil
		}
		if errors.Is(err, ErrEncryption) {
			return &Branch{Timeline: t, Unread: true}, nil
		}
		if err != nil {
			return nil, err
		}
		if sp, ok := h.SwitchPoint(tli); ok {
			return &Branch{Timeline: t, SwitchPoint: sp}, nil
		}
	}
	return nil, nil
}

func (r *Repo) readHistory(ctx context.Context, n wal.Name) (wal.History, error) {
	o, err := r.Open(ctx, n)
	if err != nil {
		return wal.History{}, err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, MaxTextFile+1))
	if err != nil {
		return wal.History{}, err
	}
	text, err := ParseText(n, data, nil)
	if err != nil || text.History == nil {
		return wal.History{}, fmt.Errorf("%s: %w", n, err)
	}
	return *text.History, nil
}
