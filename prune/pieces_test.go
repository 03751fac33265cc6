package prune

import (
	"context"
	"strings"
	"testing"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
)

// Streamed pieces go with the WAL before the cutoff, and where their
// segment is stored whole; the pieces of the newest data stay.
func TestPrunePieces(t *testing.T) {
	ctx := context.Background()
	f := fakerepo.New(t)
	f.Segments(1, 1, 6)
	piece := func(segno uint64, start, end uint32) repo.Piece {
		p := repo.Piece{Seg: fakerepo.Seg(1, segno), Start: start, End: end}
		if err := f.R.PutPiece(ctx, p, make([]byte, p.Len())); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := piece(2, 0, 100)  // before the cutoff
	whole := piece(5, 0, 64) // segment 5 is stored whole
	newest := []repo.Piece{piece(7, 0, 100), piece(7, 100, 300)}
	res := run(t, f, Options{Policy: Policy{Before: ptr(fakerepo.Seg(1, 4))}})
	left, err := f.Open(repo.LayoutAuto).ListPieces(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []repo.Piece
	for _, p := range left {
		got = append(got, p.Piece)
	}
	if len(got) != 2 || got[0] != newest[0] || got[1] != newest[1] {
		t.Errorf("pieces left %v, want %v (removed %v and %v)", got, newest, old, whole)
	}
	if res.RemovedPieces != 2 || !strings.Contains(res.Summary(), "2 streamed piece(s)") {
		t.Errorf("RemovedPieces %d, summary %q", res.RemovedPieces, res.Summary())
	}
	wantLeft(t, f, segRange(1, 4, 6))
}
