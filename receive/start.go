package receive

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Where a receiver starts: where the repository's data of the server's
// history ends (a restart resumes there, whoever stored that data:
// receiver or archive_command), or where the server is when the
// repository holds nothing of it.

// lineage is the server's history: its timeline and the ones it came from.
type lineage struct {
	tli  uint32
	hist wal.History
}

// has reports whether timeline t is in the server's history.
func (l lineage) has(t uint32) bool { return t == l.tli || l.hist.Contains(t) }

// end is where timeline t ends in the server's history; ok is false for the
// server's own timeline, which goes on.
func (l lineage) end(t uint32) (wal.LSN, bool) {
	if t == l.tli {
		return 0, false
	}
	return l.hist.SwitchPoint(t)
}

// timelines lists the server's history, newest first.
func (l lineage) timelines() []uint32 {
	out := []uint32{l.tli}
	for i := len(l.hist.Entries) - 1; i >= 0; i-- {
		out = append(out, l.hist.Entries[i].Timeline)
	}
	return out
}

// after is the timeline that follows t in the server's history.
func (l lineage) after(t uint32) uint32 {
	ts := l.timelines()
	for i := 1; i < len(ts); i++ {
		if ts[i] == t {
			return ts[i-1]
		}
	}
	return l.tli
}

// position decides where the stream starts: on the first connection from
// the repository; after that from what the receiver holds, as long as the
// server's history still goes through it.
func (rc *receiver) position(ctx context.Context, hist wal.History, segSize uint32) error {
	lin := lineage{tli: rc.sys.Timeline, hist: hist}
	if rc.segs == nil {
		segs := &segments{segSize: segSize}
		tli, pos, err := rc.resumePoint(ctx, lin, segSize)
		if err != nil {
			return err
		}
		segs.startAt(tli, pos)
		rc.segs = segs
		return nil
	}
	s := rc.segs
	switch {
	case lin.tli < s.tli:
		// A server behind the receiver: a standby, or a copy still in
		// recovery that becomes the primary later. Wait for it.
		return fmt.Errorf("the server is on timeline %d, behind timeline %d which this receiver streams: waiting for it to catch up or be promoted", lin.tli, s.tli)
	case !lin.has(s.tli):
		// The server's history left the receiver's timeline behind: what
		// it received there stays in its pieces; start again from what the
		// repository holds of the server's history.
		rc.log.Warn("the server's history does not go through the timeline this receiver followed; resuming from the repository", "server_timeline", lin.tli, "timeline", s.tli)
		s.endTimeline()
		rc.flush()
		tli, pos, err := rc.resumePoint(ctx, lin, segSize)
		if err != nil {
			return err
		}
		s.startAt(tli, pos)
		return nil
	}
	if sp, ok := lin.end(s.tli); ok && s.recvEnd > sp {
		// What was received past the switch point belongs to a server
		// that is gone (its pieces stay); the server's timeline starts
		// there.
		rc.log.Warn("the server's history left this timeline before the end of what was received", "timeline", s.tli, "switch", sp, "received", s.recvEnd)
		s.endTimeline()
		rc.flush()
		s.startAt(lin.after(s.tli), sp-wal.LSN(uint64(sp)%uint64(segSize)))
	}
	return nil
}

// resumePoint is where the repository's data of the server's history
// ends, on the newest timeline that has some: segments stored whole and
// pieces that start their segment. Leftovers of a receiver that was killed
// are tidied first.
func (rc *receiver) resumePoint(ctx context.Context, lin lineage, segSize uint32) (uint32, wal.LSN, error) {
	if _, ok, err := rc.r.Identity(ctx); err != nil {
		return 0, 0, err
	} else if ok {
		ps, err := rc.r.ListPieces(ctx, nil)
		if err != nil {
			return 0, 0, err
		}
		if err := rc.tidy(ps, segSize); err != nil {
			return 0, 0, err
		}
	}
	ends := map[uint32]wal.LSN{}
	if _, ok, err := rc.r.Identity(ctx); err != nil {
		return 0, 0, err
	} else if ok {
		err := rc.r.List(ctx, func(e repo.Entry) error {
			if e.Name.Kind == wal.KindSegment {
				ends[e.Name.Timeline] = max(ends[e.Name.Timeline], e.Name.StartLSN(segSize)+wal.LSN(segSize))
			}
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("listing %s: %w", rc.r, err)
		}
		ps, err := rc.r.ListPieces(ctx, nil)
		if err != nil {
			return 0, 0, err
		}
		bySeg := map[wal.Name][]repo.Piece{}
		for _, p := range ps {
			bySeg[p.Seg] = append(bySeg[p.Seg], p.Piece)
		}
		for seg, pieces := range bySeg {
			if _, end := repo.Cover(pieces); end > 0 {
				ends[seg.Timeline] = max(ends[seg.Timeline], seg.StartLSN(segSize)+wal.LSN(end))
			}
		}
	}
	for _, t := range lin.timelines() {
		end, ok := ends[t]
		if !ok {
			continue
		}
		if sp, ok := lin.end(t); ok {
			end = min(end, sp)
		}
		rc.log.Info("resuming where the repository ends", "timeline", t, "at", end)
		return t, end, nil
	}
	start := rc.sys.Flushed - wal.LSN(uint64(rc.sys.Flushed)%uint64(segSize))
	rc.log.Info("the repository holds none of the server's WAL: starting at the server's segment", "timeline", lin.tli, "at", start)
	return lin.tli, start, nil
}

// gone reports whether the server refused a start because the WAL asked
// for was removed ("requested WAL segment ... has already been removed").
func gone(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "58P01"
}

// fillOrSkip is the answer to a start the server refused because its WAL
// is gone: the bytes before the resume point are read back from the
// repository (the stream then starts at the resume point); when they
// cannot be, the receiver starts at the server's current segment, and the
// WAL in between must come from archive_command.
func (rc *receiver) fillOrSkip(ctx context.Context) error {
	s := rc.segs
	if rc.tried == nil {
		rc.tried = map[wal.LSN]bool{}
	}
	tried := rc.tried
	b := s.current()
	if b != nil && b.recv < b.cut && !tried[s.recvEnd] {
		tried[s.recvEnd] = true
		pos := b.seg.StartLSN(s.segSize) + wal.LSN(b.cut)
		data, end, err := rc.r.Streamed(ctx, b.seg, s.segSize)
		if err != nil && !storage.IsNotExist(err) {
			return err
		}
		if end >= b.cut {
			s.skipTo(pos, data)
		} else {
			s.skipTo(pos, nil)
		}
		return nil
	}
	start := rc.sys.Flushed - wal.LSN(uint64(rc.sys.Flushed)%uint64(s.segSize))
	if tried[start] || start <= s.recvEnd {
		return fmt.Errorf("the server no longer has the WAL at %s on timeline %d", s.recvEnd, s.tli)
	}
	tried[start] = true
	rc.log.Error("the server no longer has the WAL the repository lacks; skipping to its current segment (what lies between must come from archive_command)",
		"from", s.recvEnd, "to", start)
	s.endTimeline()
	s.startAt(rc.sys.Timeline, start)
	return nil
}
