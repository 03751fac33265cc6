package repo

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/walship/walship/storage/local"
)

var piece = bytes.Repeat([]byte("walship commit record "), 8192/22)

// BenchmarkEncodeLZ4Piece is the compression of one streamed piece (a
// commit's WAL, a few kB): walship receive does it at every commit.
func BenchmarkEncodeLZ4Piece(b *testing.B) {
	for b.Loop() {
		if _, err := encodeLZ4(bytes.NewReader(piece), int64(len(piece))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLocalPutPiece is one piece's bytes made durable in a local
// store: the floor under walship receive's commit on a local repository.
func BenchmarkLocalPutPiece(b *testing.B) {
	be, _ := local.New(b.TempDir())
	i := 0
	for b.Loop() {
		i++
		if err := be.Put(context.Background(), "stream/p"+strconv.Itoa(i), bytes.NewReader(piece), int64(len(piece))); err != nil {
			b.Fatal(err)
		}
	}
}
