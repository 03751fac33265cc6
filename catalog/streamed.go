package catalog

import (
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Streamed WAL: the pieces walship receive stores of the segment the server
// is writing (repo.Piece). They are no problem for verify: a segment not
// stored whole yet is streamed data, not a gap. walship-restore hands the
// server the newest of them at the end of a recovery; prune removes those
// before its cutoff and those of segments stored whole (a receiver killed
// between storing a segment and removing its pieces leaves them).

// Tail is the streamed data of one segment.
type Tail struct {
	Seg wal.Name
	// End is where the bytes the pieces hold from the segment's start
	// without a hole end (0: none starts it).
	End    uint32
	Pieces []repo.StoredPiece
	Bytes  int64     // stored
	Newest time.Time // when the newest piece was stored
	// Whole: the segment is stored whole as well; its pieces are leftovers.
	Whole bool
}

// EndLSN is the WAL position where the tail's data ends.
func (t Tail) EndLSN(segSize uint32) wal.LSN { return t.Seg.StartLSN(segSize) + wal.LSN(t.End) }

// Tails lists the streamed data of every segment that has pieces, in WAL
// order.
func (c *Catalog) Tails() []Tail {
	var out []Tail
	for _, seg := range repo.StreamedSegments(c.Pieces) {
		t := Tail{Seg: seg, Whole: c.HasSegment(seg)}
		var ps []repo.Piece
		for _, p := range c.Pieces {
			if p.Seg != seg {
				continue
			}
			t.Pieces = append(t.Pieces, p)
			ps = append(ps, p.Piece)
			t.Bytes += p.Info.Size
			if p.Info.ModTime.After(t.Newest) {
				t.Newest = p.Info.ModTime
			}
		}
		_, t.End = repo.Cover(ps)
		out = append(out, t)
	}
	return out
}

// NewestStreamed is the tail that ends furthest on the newest timeline
// with streamed data; ok is false when nothing was streamed.
func (c *Catalog) NewestStreamed() (t Tail, ok bool) {
	for _, x := range c.Tails() {
		if x.End == 0 || x.Whole {
			continue
		}
		if !ok || x.Seg.Timeline > t.Seg.Timeline || (x.Seg.Timeline == t.Seg.Timeline && wal.ComparePosition(x.Seg, t.Seg) > 0) {
			t, ok = x, true
		}
	}
	return t, ok
}
