package repo

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/walship/walship/wal"
)

// Streamed pieces: walship receive makes the segment the server is writing
// durable as it grows, without ever changing an object, by storing each
// run of new bytes as an object of its own:
//
//	stream/000000010000000000000005-00000000-0000A000.lz4
//	stream/000000010000000000000005-0000A000-0000A1F8.lz4
//
// that is, the segment's name and the offsets [start, end) in it of the
// bytes the object holds (8 hex digits each: a segment is at most 1 GiB),
// encoded as the repository encodes segments (an lz4 frame with its content
// checksum, or the bytes with a checksum footer; then encrypted when the
// repository is). A piece is create-only like everything else, so a reader
// never sees one half-written; when the segment is complete it is stored as
// the segment, and its pieces are removed. Every key of a piece is built
// and parsed here.

// StreamPrefix is the key prefix of every streamed piece.
const StreamPrefix = "stream/"

// Piece is the bytes [Start, End) of segment Seg as they were streamed.
type Piece struct {
	Seg        wal.Name // a segment (kind Segment)
	Start, End uint32
}

// Len is the number of bytes the piece holds.
func (p Piece) Len() int { return int(p.End - p.Start) }

// StartLSN is the WAL position of the piece's first byte.
func (p Piece) StartLSN(segSize uint32) wal.LSN { return p.Seg.StartLSN(segSize) + wal.LSN(p.Start) }

// EndLSN is the WAL position just after the piece's last byte.
func (p Piece) EndLSN(segSize uint32) wal.LSN { return p.Seg.StartLSN(segSize) + wal.LSN(p.End) }

func (p Piece) String() string { return fmt.Sprintf("%s[%08X,%08X)", p.Seg, p.Start, p.End) }

// Valid reports whether the piece can be stored: bytes of a segment,
// within a segment of segSize (0: any size up to 1 GiB).
func (p Piece) Valid(segSize uint32) error {
	switch {
	case p.Seg.Kind != wal.KindSegment:
		return fmt.Errorf("a streamed piece of %s: not a segment", p.Seg)
	case p.End <= p.Start:
		return fmt.Errorf("a streamed piece of %s from %08X to %08X: empty", p.Seg, p.Start, p.End)
	case segSize == 0 && p.End > 1<<30, segSize != 0 && p.End > segSize:
		return fmt.Errorf("a streamed piece of %s ends at %08X, past the segment's end", p.Seg, p.End)
	}
	return nil
}

// PieceKey is the storage key of the piece encoded with codec c.
func PieceKey(p Piece, c Codec) string {
	k := fmt.Sprintf("%s%s-%08X-%08X", StreamPrefix, p.Seg, p.Start, p.End)
	if c == CodecLZ4 {
		k += ".lz4"
	}
	return k
}

// PiecePrefix is the key prefix of every piece of segment seg.
func PiecePrefix(seg wal.Name) string { return StreamPrefix + seg.String() + "-" }

// ParsePieceKey is the inverse of PieceKey; ok is false for any other key.
func ParsePieceKey(key string) (p Piece, c Codec, ok bool) {
	rest, found := strings.CutPrefix(key, StreamPrefix)
	if !found {
		return Piece{}, "", false
	}
	c = CodecNone
	if base, found := strings.CutSuffix(rest, ".lz4"); found {
		rest, c = base, CodecLZ4
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 || len(parts[1]) != 8 || len(parts[2]) != 8 {
		return Piece{}, "", false
	}
	seg, err := wal.ParseName(parts[0])
	if err != nil || seg.Kind != wal.KindSegment {
		return Piece{}, "", false
	}
	start, err1 := strconv.ParseUint(parts[1], 16, 32)
	end, err2 := strconv.ParseUint(parts[2], 16, 32)
	if err1 != nil || err2 != nil || strings.ToUpper(parts[1]) != parts[1] || strings.ToUpper(parts[2]) != parts[2] {
		return Piece{}, "", false
	}
	p = Piece{Seg: seg, Start: uint32(start), End: uint32(end)}
	if p.Valid(0) != nil {
		return Piece{}, "", false
	}
	return p, c, true
}
