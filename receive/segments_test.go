package receive

import (
	"bytes"
	"testing"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

const testSegSize = 1 << 20

func newSegs(t *testing.T, tli uint32, pos wal.LSN) *segments {
	t.Helper()
	s := &segments{segSize: testSegSize}
	s.startAt(tli, pos)
	return s
}

func stream(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// Bytes received are cut into pieces that follow each other; durable
// moves only over pieces stored without a hole, in any order they are
// stored; a segment that completes is stored whole and leaves memory.
func TestSegmentsPiecesAndDurable(t *testing.T) {
	start := wal.LSN(3 * testSegSize)
	s := newSegs(t, 1, start)
	data := stream(testSegSize+100, 1)
	if done, err := s.add(start, data[:1000]); err != nil || len(done) != 0 {
		t.Fatalf("add: %v, %v", done, err)
	}
	a := s.pieces()
	if _, err := s.add(start+1000, data[1000:5000]); err != nil {
		t.Fatal(err)
	}
	b := s.pieces()
	if len(a) != 1 || len(b) != 1 || a[0].p != (repo.Piece{Seg: start.Segment(1, testSegSize), Start: 0, End: 1000}) || b[0].p.Start != 1000 || b[0].p.End != 5000 {
		t.Fatalf("pieces %v then %v", a, b)
	}
	if !bytes.Equal(b[0].bytes(), data[1000:5000]) {
		t.Error("a piece holds other bytes than received")
	}
	// The second piece is stored first: nothing is durable yet.
	b[0].buf.stored(b[0].p.Start, b[0].p.End)
	if s.advance() || s.durable != start {
		t.Errorf("durable %s after the second piece alone, want %s", s.durable, start)
	}
	a[0].buf.stored(a[0].p.Start, a[0].p.End)
	if !s.advance() || s.durable != start+5000 {
		t.Errorf("durable %s, want %s", s.durable, start+5000)
	}
	// The rest of the segment and 100 bytes of the next.
	done, err := s.add(start+5000, data[5000:])
	if err != nil || len(done) != 1 || !done[0].complete() {
		t.Fatalf("add to the end of the segment: %v, %v", done, err)
	}
	if len(s.toFold()) != 1 {
		t.Fatalf("toFold %d, want the complete segment", len(s.toFold()))
	}
	done[0].folding = true
	ps := s.pieces()
	if len(ps) != 1 || ps[0].p.Start != 0 || ps[0].p.End != 100 || ps[0].p.Seg != (start+testSegSize).Segment(1, testSegSize) {
		t.Fatalf("pieces while the segment is stored whole: %v, want only the next segment's", ps)
	}
	done[0].folding, done[0].folded = false, true
	s.advance()
	if s.durable != start+testSegSize || len(s.bufs) != 1 {
		t.Errorf("after the segment was stored whole: durable %s, %d segments in memory; want %s, 1", s.durable, len(s.bufs), start+testSegSize)
	}
	if n, _ := s.unstored(); n != 100 {
		t.Errorf("unstored %d, want 100", n)
	}
}

// A resume in the middle of a segment receives the segment again from its
// start (to store it whole later) but stores in pieces only what is new.
func TestSegmentsResume(t *testing.T) {
	seg := wal.LSN(5 * testSegSize)
	s := newSegs(t, 2, seg+4096)
	if s.recvEnd != seg || s.durable != seg+4096 {
		t.Fatalf("resume at %s: stream from %s, durable %s", seg+4096, s.recvEnd, s.durable)
	}
	if n, _ := s.unstored(); n != 0 {
		t.Errorf("unstored %d before anything arrived, want 0", n)
	}
	if _, err := s.add(seg, stream(3000, 2)); err != nil {
		t.Fatal(err)
	}
	if ps := s.pieces(); len(ps) != 0 {
		t.Errorf("pieces of bytes the repository holds: %v", ps)
	}
	if _, err := s.add(seg+3000, stream(2000, 3)); err != nil {
		t.Fatal(err)
	}
	ps := s.pieces()
	if len(ps) != 1 || ps[0].p.Start != 4096 || ps[0].p.End != 5000 {
		t.Errorf("pieces %v, want [4096, 5000)", ps)
	}
	// Bytes sent again are skipped; bytes after a hole are refused.
	if _, err := s.add(seg+4000, stream(1000, 3)[:1000]); err != nil {
		t.Errorf("bytes sent again: %v", err)
	}
	if _, err := s.add(seg+6000, []byte{1}); err == nil {
		t.Error("bytes after a hole were taken")
	}
}

// A timeline that ends leaves its last segment in pieces; the next one
// starts at the start of the segment of the switch.
func TestSegmentsTimelineSwitch(t *testing.T) {
	seg := wal.LSN(7 * testSegSize)
	s := newSegs(t, 1, seg)
	if _, err := s.add(seg, stream(8000, 4)); err != nil {
		t.Fatal(err)
	}
	s.endTimeline()
	ps := s.pieces()
	s.startAt(2, seg)
	if _, err := s.add(seg, stream(100, 5)); err == nil && s.current().seg.Timeline != 2 {
		t.Errorf("the new timeline's bytes went to timeline %d", s.current().seg.Timeline)
	}
	if len(ps) != 1 || ps[0].p.Seg.Timeline != 1 || ps[0].p.End != 8000 {
		t.Fatalf("the old timeline's pieces: %v", ps)
	}
	ps[0].buf.stored(0, 8000)
	s.advance()
	if len(s.bufs) != 1 || s.bufs[0].seg.Timeline != 2 {
		t.Errorf("the ended timeline's segment stays in memory once stored: %d segments", len(s.bufs))
	}
}
