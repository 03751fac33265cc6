package backup

import (
	"math/rand/v2"
	"testing"
)

// A block set answers as a plain set would, through its change from a
// sorted list to a bitmap; a file with few blocks written holds a few
// bytes, not a bitmap of its length (a chain restore keeps one set for
// every relation file an incremental backup names, changed or not).
func TestBlockSet(t *testing.T) {
	const length = 131072 // a 1 GB relation segment
	rng := rand.New(rand.NewPCG(1, 2))
	s := newBlockSet(length)
	if s.bytes() != 0 {
		t.Errorf("an empty set holds %d bytes", s.bytes())
	}
	model := map[uint32]bool{}
	for i := range 5000 {
		b := uint32(rng.IntN(length))
		if i%3 == 0 && len(model) > 0 { // again, a block already there
			for x := range model {
				b = x
				break
			}
		}
		if got, want := s.add(b), !model[b]; got != want {
			t.Fatalf("add(%d) = %v, want %v", b, got, want)
		}
		model[b] = true
		if len(model) == 20 && s.bytes() > 4*64 {
			t.Errorf("a set of 20 blocks holds %d bytes", s.bytes())
		}
	}
	if s.bits == nil {
		t.Errorf("%d blocks of %d are still a list", len(model), length)
	}
	for b := uint32(0); b < length; b++ {
		if s.has(b) != model[b] {
			t.Fatalf("has(%d) = %v, want %v", b, s.has(b), model[b])
		}
	}
	if s.bytes() > length/8+64 {
		t.Errorf("the bitmap holds %d bytes, want at most %d", s.bytes(), length/8+64)
	}
}
