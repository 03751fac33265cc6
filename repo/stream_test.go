package repo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/walship/walship/storage"
)

func TestPieceKeys(t *testing.T) {
	seg := parseName(t, "000000020000000100000003")
	p := Piece{Seg: seg, Start: 0x2000, End: 0xA1F8}
	for _, c := range []Codec{CodecLZ4, CodecNone} {
		k := PieceKey(p, c)
		got, gc, ok := ParsePieceKey(k)
		if !ok || got != p || gc != c {
			t.Errorf("ParsePieceKey(%q) = %v, %v, %v; want %v, %v", k, got, gc, ok, p, c)
		}
		if err := storage.CheckKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	if k := PieceKey(p, CodecLZ4); k != "stream/000000020000000100000003-00002000-0000A1F8.lz4" {
		t.Errorf("key %q", k)
	}
	for _, bad := range []string{
		"stream/000000020000000100000003-00002000-00002000.lz4", // empty
		"stream/000000020000000100000003-0000A1F8-00002000",     // backwards
		"stream/000000020000000100000003-2000-A1F8",             // short offsets
		"stream/000000020000000100000003-00002000-0000a1f8",     // lower case
		"stream/000000020000000100000003.partial-00000000-00000010",
		"stream/00000002.history-00000000-00000010",
		"stream/000000020000000100000003-00000000-40000001", // past 1 GiB
		"wal/000000020000000100000003-00000000-00000010",
		"stream/x/000000020000000100000003-00000000-00000010",
	} {
		if p, _, ok := ParsePieceKey(bad); ok {
			t.Errorf("ParsePieceKey(%q) = %v, want not a piece", bad, p)
		}
	}
}

func TestCover(t *testing.T) {
	seg := Piece{}.Seg
	ps := []Piece{{seg, 0x10, 0x30}, {seg, 0, 0x10}, {seg, 0x08, 0x20}, {seg, 0x30, 0x40}, {seg, 0x50, 0x60}}
	chain, end := Cover(ps)
	if end != 0x40 || len(chain) != 3 || chain[0] != 1 || chain[1] != 0 || chain[2] != 3 {
		t.Errorf("Cover = %v, %#x; want [1 0 3], 0x40", chain, end)
	}
	if _, end := Cover(ps[2:]); end != 0 {
		t.Errorf("without a piece at 0: end %#x, want 0", end)
	}
}

// Pieces are stored as segments are (compressed, checksummed, encrypted),
// read back as the streamed prefix of the segment with zeros after it,
// and a piece stored again is compared: identical is fine, different is
// refused.
func TestPiecesRoundTrip(t *testing.T) {
	ctx := context.Background()
	for _, enc := range []bool{false, true} {
		r, root := localRepo(t, LayoutAuto)
		id := newIdentity(t)
		if enc {
			r = writer(t, root, id)
		}
		n, data := segment(t, "000000010000000000000004", testSysID, 3)
		if err := r.PutPiece(ctx, Piece{Seg: n, Start: 0, End: 100}, data[:100]); err == nil {
			t.Fatal("a piece before the repository has an identity was stored")
		}
		if err := r.Claim(ctx, header(t, data)); err != nil {
			t.Fatal(err)
		}
		cuts := []uint32{0, 100, 8192, 9000, 20000}
		for i := 1; i < len(cuts); i++ {
			p := Piece{Seg: n, Start: cuts[i-1], End: cuts[i]}
			if err := r.PutPiece(ctx, p, data[p.Start:p.End]); err != nil {
				t.Fatal(err)
			}
		}
		// A retry of the same piece, and an overlapping one.
		if err := r.PutPiece(ctx, Piece{Seg: n, Start: 100, End: 8192}, data[100:8192]); err != nil {
			t.Errorf("identical piece again: %v", err)
		}
		other := bytes.Clone(data[100:8192])
		other[5] ^= 1
		if err := r.PutPiece(ctx, Piece{Seg: n, Start: 100, End: 8192}, other); !errors.Is(err, ErrDifferent) {
			t.Errorf("different piece under the same key: %v, want ErrDifferent", err)
		}
		if err := r.PutPiece(ctx, Piece{Seg: n, Start: 50, End: 9000}, data[50:9000]); err != nil {
			t.Fatal(err)
		}
		rd := r
		if enc {
			rd = reader(t, root, id)
		}
		got, end, err := rd.Streamed(ctx, n, testSegSize)
		if err != nil {
			t.Fatal(err)
		}
		if end != 20000 || !bytes.Equal(got[:end], data[:end]) || !bytes.Equal(got[end:], make([]byte, testSegSize-int(end))) {
			t.Errorf("encrypted=%v: streamed end %d, want 20000 with the segment's bytes and zeros after", enc, end)
		}
		ps, err := r.ListPieces(ctx, nil)
		if err != nil || len(ps) != 5 {
			t.Fatalf("ListPieces: %d pieces, %v; want 5", len(ps), err)
		}
		if err := r.RemovePieces(ctx, ps); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Streamed(ctx, n, testSegSize); !storage.IsNotExist(err) {
			t.Errorf("after the removal: %v, want not found", err)
		}
	}
}

// A writer that reads its own objects back (the receiver resuming its
// unfinished segment) cannot do it with the public key alone: such a Repo
// is refused before anything is stored, not when it starts again.
func TestCheckReadsBack(t *testing.T) {
	r, root := localRepo(t, LayoutAuto)
	if err := r.CheckReadsBack(); err != nil {
		t.Errorf("a repository in clear: %v", err)
	}
	id := newIdentity(t)
	w := writer(t, root, id)
	if err := w.CheckReadsBack(); !errors.Is(err, ErrEncryption) {
		t.Errorf("recipients only: CheckReadsBack = %v, want ErrEncryption", err)
	}
	w.keys.Identities = append(w.keys.Identities, id)
	if err := w.CheckReadsBack(); err != nil {
		t.Errorf("recipient and identity: %v", err)
	}
}

// Someone who can write to the store but has no key cannot feed a reader
// streamed WAL: an encrypted piece copied under another piece's name of
// the same length, and a clear piece planted in an encrypted repository,
// are refused when the unfinished segment is read back.
func TestPiecesBoundToTheirNames(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "repo")
	id := newIdentity(t)
	w := writer(t, root, id)
	n, data := segment(t, "000000010000000000000004", testSysID, 3)
	if err := w.Claim(ctx, header(t, data)); err != nil {
		t.Fatal(err)
	}
	a, b := Piece{Seg: n, Start: 0, End: 100}, Piece{Seg: n, Start: 100, End: 200}
	if err := w.PutPiece(ctx, a, data[:100]); err != nil {
		t.Fatal(err)
	}
	keyA, keyB := w.pieceLocation(a, CodecLZ4).Key, w.pieceLocation(b, CodecLZ4).Key
	copyTo := func(obj []byte) {
		t.Helper()
		w.b.Remove(ctx, keyB)
		if err := w.b.Put(ctx, keyB, bytes.NewReader(obj), int64(len(obj))); err != nil {
			t.Fatal(err)
		}
	}
	rc, err := w.b.Open(ctx, keyA)
	if err != nil {
		t.Fatal(err)
	}
	objA, _ := io.ReadAll(rc)
	rc.Close()
	clear, err := encodeLZ4(bytes.NewReader(data[:100]), 100)
	if err != nil {
		t.Fatal(err)
	}
	rd := reader(t, root, id)
	for what, obj := range map[string][]byte{"piece [0,100) copied to [100,200)": objA, "a clear piece": clear} {
		copyTo(obj)
		if got, end, err := rd.Streamed(ctx, n, testSegSize); err == nil {
			t.Errorf("%s: read back %d bytes (%v), want a refusal", what, end, bytes.Equal(got[100:200], data[:100]))
		}
	}
}
