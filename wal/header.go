package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// LongHeaderSize is the size of the long page header that starts every
// segment (XLogLongPageHeaderData).
const LongHeaderSize = 40

const xlpLongHeader = 0x0002

// magics maps XLOG_PAGE_MAGIC to the PostgreSQL major version that writes it.
var magics = map[uint16]string{
	0xD07E: "9.4", 0xD087: "9.5", 0xD093: "9.6", 0xD097: "10", 0xD098: "11",
	0xD101: "12", 0xD106: "13", 0xD10D: "14", 0xD110: "15", 0xD113: "16",
	0xD116: "17", 0xD118: "18",
}

// ErrBadHeader is matched by every error about a segment whose first page is
// not a valid long page header, or one that does not match its name.
var ErrBadHeader = errors.New("bad WAL page header")

// HeaderError reports what is wrong with a segment's header.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return "bad WAL page header: " + e.Reason }

// Unwrap lets errors.Is(err, ErrBadHeader) match.
func (e *HeaderError) Unwrap() error { return ErrBadHeader }

// LongHeader is the long page header of a segment's first page.
type LongHeader struct {
	Magic     uint16
	Info      uint16
	Timeline  uint32
	PageAddr  LSN
	SysID     uint64
	SegSize   uint32
	BlockSize uint32
	BigEndian bool // written by a big-endian server
}

// Version is the PostgreSQL major version that writes this header's magic.
func (h LongHeader) Version() string { return magics[h.Magic] }

// ParseLongHeader decodes and sanity-checks the first LongHeaderSize bytes of
// a segment. The byte order is the server's; both are recognised by the magic.
func ParseLongHeader(b []byte) (LongHeader, error) {
	if len(b) < LongHeaderSize {
		return LongHeader{}, &HeaderError{fmt.Sprintf("file is too short for a header (%d bytes)", len(b))}
	}
	var order binary.ByteOrder = binary.LittleEndian
	h := LongHeader{Magic: order.Uint16(b[0:])}
	if _, ok := magics[h.Magic]; !ok {
		if _, ok := magics[binary.BigEndian.Uint16(b[0:])]; !ok {
			return LongHeader{}, &HeaderError{fmt.Sprintf("unknown magic %04X (not WAL of PostgreSQL 9.4 to 18)", h.Magic)}
		}
		order = binary.BigEndian
		h.Magic = order.Uint16(b[0:])
		h.BigEndian = true
	}
	h.Info = order.Uint16(b[2:])
	h.Timeline = order.Uint32(b[4:])
	h.PageAddr = LSN(order.Uint64(b[8:]))
	h.SysID = order.Uint64(b[24:])
	h.SegSize = order.Uint32(b[32:])
	h.BlockSize = order.Uint32(b[36:])
	switch {
	case h.Info&xlpLongHeader == 0:
		return LongHeader{}, &HeaderError{"first page has no long header"}
	case h.Timeline == 0:
		return LongHeader{}, &HeaderError{"timeline 0"}
	case ValidSegSize(h.SegSize) != nil:
		return LongHeader{}, &HeaderError{fmt.Sprintf("segment size %d is not a power of two from 1MB to 1GB", h.SegSize)}
	case h.BlockSize < 1024 || h.BlockSize > 65536 || h.BlockSize&(h.BlockSize-1) != 0:
		return LongHeader{}, &HeaderError{fmt.Sprintf("block size %d is not a power of two from 1kB to 64kB", h.BlockSize)}
	case h.SysID == 0:
		return LongHeader{}, &HeaderError{"system identifier 0"}
	}
	return h, nil
}

// CheckName reports whether the header belongs to the segment (or partial
// segment) called n: its page address must be where n starts (a recycled
// file carries the stale address of its previous life), and its timeline
// may be older than n's (the first segment of a new timeline) but not newer.
func (h LongHeader) CheckName(n Name) error {
	if !n.HasSegment() {
		return &HeaderError{fmt.Sprintf("%s has no WAL position", n)}
	}
	if err := n.CheckSegSize(h.SegSize); err != nil {
		return &HeaderError{err.Error()}
	}
	if want := LSN(n.SegNo(h.SegSize) * uint64(h.SegSize)); h.PageAddr != want {
		return &HeaderError{fmt.Sprintf("page address %s does not match %s (want %s): a recycled or misnamed file", h.PageAddr, n.SegmentName(), want)}
	}
	if h.Timeline > n.Timeline {
		return &HeaderError{fmt.Sprintf("header timeline %d is newer than the name's %d", h.Timeline, n.Timeline)}
	}
	return nil
}

// Encode writes the header in little-endian order into b (at least
// LongHeaderSize bytes). It exists for tests and tools that build segments.
func (h LongHeader) Encode(b []byte) {
	var order binary.ByteOrder = binary.LittleEndian
	if h.BigEndian {
		order = binary.BigEndian
	}
	order.PutUint16(b[0:], h.Magic)
	order.PutUint16(b[2:], h.Info)
	order.PutUint32(b[4:], h.Timeline)
	order.PutUint64(b[8:], uint64(h.PageAddr))
	order.PutUint32(b[16:], 0)
	order.PutUint32(b[20:], 0)
	order.PutUint64(b[24:], h.SysID)
	order.PutUint32(b[32:], h.SegSize)
	order.PutUint32(b[36:], h.BlockSize)
}

// Cluster is the cluster the segment belongs to.
func (h LongHeader) Cluster() Cluster { return Cluster{SystemID: h.SysID, SegSize: h.SegSize} }
