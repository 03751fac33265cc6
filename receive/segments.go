package receive

import (
	"fmt"
	"slices"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// segBuf is one segment in memory while it is received and until it is
// durable in the repository.
type segBuf struct {
	seg  wal.Name
	data []byte
	// recv: bytes [0, recv) are here (bytes below durable at a resume
	// were not received again: they are in the repository already).
	recv uint32
	// cut: bytes [0, cut) are in pieces stored or being stored.
	cut uint32
	// durable: bytes [0, durable) are in the repository.
	durable uint32
	// done are the ranges stored beyond durable, waiting for the ones
	// before them.
	done [][2]uint32
	// final: no more bytes come for this segment (its timeline ended).
	final bool
	// folding, folded: the complete segment is being stored, is stored.
	folding, folded bool
	// noFold: the segment cannot be stored whole (different content under
	// its name): its pieces make it durable.
	noFold bool
}

func (b *segBuf) complete() bool { return b.recv == uint32(len(b.data)) }

// droppable: everything this segment will hold is in the repository and
// nothing more is to be done with its bytes: stored whole; or in pieces
// and not to be stored whole (its name holds other content, or its
// timeline ended before its end).
func (b *segBuf) droppable() bool {
	switch {
	case b.folded:
		return true
	case b.folding:
		return false
	case b.noFold:
		return b.durable == b.recv && b.complete()
	case b.final:
		return b.durable >= b.recv && b.cut >= b.recv
	}
	return false
}

// stored records the piece [start, end) as stored and advances durable.
func (b *segBuf) stored(start, end uint32) {
	b.done = append(b.done, [2]uint32{start, end})
	slices.SortFunc(b.done, func(x, y [2]uint32) int { return int(x[0]) - int(y[0]) })
	keep := b.done[:0]
	for _, r := range b.done {
		if r[0] <= b.durable {
			b.durable = max(b.durable, r[1])
			continue
		}
		keep = append(keep, r)
	}
	b.done = keep
}

// segments is the receiver's memory: the segments of the current timeline
// from the oldest not yet durable on, and those of a timeline that ended
// until they are durable.
type segments struct {
	segSize uint32
	tli     uint32
	bufs    []*segBuf
	// recvEnd is where the next byte of the stream goes (on tli).
	recvEnd wal.LSN
	// durable is where what is durable on tli ends.
	durable wal.LSN
}

// startAt makes ready to receive timeline tli from the start of the
// segment holding pos, whose bytes before pos are in the repository
// already: they are received again (the segment is stored whole once
// complete) but not stored again in pieces.
func (s *segments) startAt(tli uint32, pos wal.LSN) {
	seg := pos.Segment(tli, s.segSize)
	s.tli = tli
	b := &segBuf{seg: seg, data: make([]byte, s.segSize)}
	off := uint32(uint64(pos) % uint64(s.segSize))
	b.cut, b.durable = off, off
	s.bufs = append(s.bufs, b)
	s.recvEnd, s.durable = seg.StartLSN(s.segSize), pos
}

// skipTo makes the current segment start at pos when its bytes before pos
// cannot be had from the server: they are filled from prefix (what the
// repository holds), or, without it, the segment is never stored whole.
func (s *segments) skipTo(pos wal.LSN, prefix []byte) {
	b := s.current()
	off := uint32(uint64(pos) % uint64(s.segSize))
	if prefix != nil {
		copy(b.data, prefix[:off])
	} else {
		b.noFold = true
	}
	b.recv = off
	s.recvEnd = pos
}

// current is the segment the next bytes go into, nil before startAt.
func (s *segments) current() *segBuf {
	if len(s.bufs) == 0 {
		return nil
	}
	b := s.bufs[len(s.bufs)-1]
	if b.seg.Timeline != s.tli || b.final {
		return nil
	}
	return b
}

// add takes bytes of the stream that start at start: they must follow
// what was received (bytes before recvEnd, sent again, are skipped). It
// returns the segments this completed.
func (s *segments) add(start wal.LSN, data []byte) (completed []*segBuf, err error) {
	if start > s.recvEnd {
		return nil, fmt.Errorf("the server sent WAL from %s, but the stream is at %s", start, s.recvEnd)
	}
	if skip := uint64(s.recvEnd - start); skip > 0 {
		if skip >= uint64(len(data)) {
			return nil, nil
		}
		data = data[skip:]
	}
	for len(data) > 0 {
		b := s.current()
		if b == nil {
			return completed, fmt.Errorf("no segment to receive %s into", s.recvEnd)
		}
		n := copy(b.data[b.recv:], data)
		b.recv += uint32(n)
		data = data[n:]
		s.recvEnd += wal.LSN(n)
		if b.complete() {
			completed = append(completed, b)
			next := &segBuf{seg: b.seg.Next(s.segSize), data: make([]byte, s.segSize)}
			s.bufs = append(s.bufs, next)
		}
	}
	return completed, nil
}

// endTimeline marks the current segment as the last one of its timeline.
func (s *segments) endTimeline() {
	if b := s.current(); b != nil {
		b.final = true
		if b.recv == 0 {
			b.folded = true // nothing came: nothing to store
		}
	}
}

// pieces cuts what was received and is not in a piece yet into pieces, one
// per segment, in order; segments being stored whole need none.
func (s *segments) pieces() []cutPiece {
	var out []cutPiece
	for _, b := range s.bufs {
		if b.recv > b.cut && !b.folding && !b.folded {
			out = append(out, cutPiece{buf: b, p: repo.Piece{Seg: b.seg, Start: b.cut, End: b.recv}})
			b.cut = b.recv
		}
	}
	return out
}

// cutPiece is a piece of a buffer on its way to the repository.
type cutPiece struct {
	buf *segBuf
	p   repo.Piece
}

// bytes is the piece's content.
func (c cutPiece) bytes() []byte { return c.buf.data[c.p.Start:c.p.End] }

// advance recomputes durable and drops the buffers that are durable and
// need nothing more; it reports whether durable moved.
func (s *segments) advance() bool {
	before := s.durable
	for _, b := range s.bufs {
		if b.seg.Timeline != s.tli {
			continue
		}
		start := b.seg.StartLSN(s.segSize)
		if b.folded {
			s.durable = max(s.durable, start+wal.LSN(len(b.data)))
			continue
		}
		s.durable = max(s.durable, start+wal.LSN(b.durable))
		if b.durable < uint32(len(b.data)) {
			break
		}
	}
	keep := s.bufs[:0]
	for _, b := range s.bufs {
		if !b.droppable() {
			keep = append(keep, b)
		}
	}
	s.bufs = keep
	return s.durable != before
}

// unstored is how many bytes in memory are not durable yet, and how many
// segments are held: the receiver stops reading the stream while either
// is too large (the slot keeps the WAL on the server meanwhile).
func (s *segments) unstored() (bytes int64, bufs int) {
	for _, b := range s.bufs {
		if !b.folded && b.recv > b.durable {
			bytes += int64(b.recv - b.durable)
		}
	}
	return bytes, len(s.bufs)
}

// toFold lists the complete segments to store whole, in order.
func (s *segments) toFold() []*segBuf {
	var out []*segBuf
	for _, b := range s.bufs {
		if b.complete() && !b.folding && !b.folded && !b.noFold {
			out = append(out, b)
		}
	}
	return out
}
