package wal

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a log sequence number, a byte position in the WAL.
type LSN uint64

// ParseLSN parses PostgreSQL's X/X form (hex, either case).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q: expected X/X in hex", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q: expected X/X in hex", s)
	}
	return LSN(h<<32 | l), nil
}

// String prints the LSN as PostgreSQL does (upper-case hex, X/X).
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint32(l)) }

// MarshalText writes the LSN as String does, for JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (l *LSN) UnmarshalText(b []byte) error {
	v, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// SegNo is the number of the segment that holds this LSN.
func (l LSN) SegNo(segSize uint32) uint64 { return uint64(l) / uint64(segSize) }

// Segment is the name of the segment on timeline tli that holds this LSN.
func (l LSN) Segment(tli uint32, segSize uint32) Name {
	return SegmentFromNo(tli, l.SegNo(segSize), segSize)
}

// SegmentOfEnd is the segment holding the byte before l: the segment in
// which a record ending exactly at l lies (PostgreSQL's XLByteToPrevSeg).
func (l LSN) SegmentOfEnd(tli uint32, segSize uint32) Name {
	if l == 0 {
		return SegmentFromNo(tli, 0, segSize)
	}
	return SegmentFromNo(tli, uint64(l-1)/uint64(segSize), segSize)
}
