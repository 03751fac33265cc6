// Package waltest builds WAL files for the tests and benchmarks of the
// packages above wal: segments whose long page header is valid for their
// name, with no real WAL records in them.
package waltest

import "github.com/walship/walship/wal"

// infoLongHeader is XLP_LONG_HEADER, the flag of a segment's first page.
const infoLongHeader = 0x0002

// FakeSegment builds a segment-sized buffer whose header is valid for n with
// the given system identifier and PostgreSQL 15's magic, the rest filled by
// fill (may be nil).
func FakeSegment(n wal.Name, sysID uint64, segSize uint32, fill func([]byte)) []byte {
	b := make([]byte, segSize)
	if fill != nil {
		fill(b)
	}
	wal.LongHeader{Magic: 0xD110, Info: infoLongHeader, Timeline: n.Timeline,
		PageAddr: wal.LSN(n.SegNo(segSize) * uint64(segSize)), SysID: sysID,
		SegSize: segSize, BlockSize: 8192}.Encode(b)
	return b
}

// Seeded is a FakeSegment whose body is compressible but not trivial, and
// differs with seed: two segments of one name and different seeds have
// different content.
func Seeded(n wal.Name, sysID uint64, segSize uint32, seed byte) []byte {
	return FakeSegment(n, sysID, segSize, func(b []byte) {
		for i := range b {
			b[i] = byte(i/1000) ^ seed
		}
	})
}
