package backup

import "slices"

// blockSet is the set of blocks of one rebuilt file already written. Most
// files of an incremental backup name few blocks, or none (a relation not
// changed since the parent): their set is a short sorted list, so that a
// chain restore of a large cluster, which keeps one set for every
// relation file until an older member completes it, holds little. Once
// the list would outgrow a bitmap's eighth, the set becomes a bitmap (one
// bit per block: 16 kB for a 1 GB relation segment).
type blockSet struct {
	length uint32   // blocks [0, length) may be in the set
	list   []uint32 // sorted, while bits is nil
	bits   []uint64
}

func newBlockSet(length uint32) blockSet { return blockSet{length: length} }

// sparseMax is how many blocks the list holds at most before the set
// becomes a bitmap: a list of that many takes an eighth of the bitmap.
func (s *blockSet) sparseMax() int { return int(s.length/256) + 16 }

func (s *blockSet) has(b uint32) bool {
	if s.bits != nil {
		return s.bits[b/64]&(1<<(b%64)) != 0
	}
	_, found := slices.BinarySearch(s.list, b)
	return found
}

// add puts b in the set (b < length); it reports whether b was not in it.
func (s *blockSet) add(b uint32) bool {
	if s.bits != nil {
		if s.bits[b/64]&(1<<(b%64)) != 0 {
			return false
		}
		s.bits[b/64] |= 1 << (b % 64)
		return true
	}
	i, found := slices.BinarySearch(s.list, b)
	if found {
		return false
	}
	if len(s.list) < s.sparseMax() {
		s.list = slices.Insert(s.list, i, b)
		return true
	}
	s.bits = make([]uint64, (s.length+63)/64)
	for _, x := range s.list {
		s.bits[x/64] |= 1 << (x % 64)
	}
	s.list = nil
	s.bits[b/64] |= 1 << (b % 64)
	return true
}

// bytes is the memory the set holds (for tests).
func (s *blockSet) bytes() int { return 4*cap(s.list) + 8*cap(s.bits) }
