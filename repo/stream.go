package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Streamed pieces (partialkeys.go) as they are written and read: the
// receiver stores them, restore reads the newest streamed data back as a
// segment, the catalog lists them for verify, check and prune.

// StoredPiece is one piece as the store holds it.
type StoredPiece struct {
	Piece
	Location
	Info storage.Info
}

// ErrNoStreamLayout is matched when pieces are asked of a repository in the
// plain layout (bare files as cp writes them), which holds none.
var ErrNoStreamLayout = errors.New("the plain layout holds no streamed WAL")

// pieceLocation is where p is stored in a repository of identity id.
func (r *Repo) pieceLocation(p Piece, c Codec) Location {
	return Location{Key: PieceKey(p, c), Codec: c, Sealed: c == CodecNone, Encrypted: r.encrypted()}
}

// PutPiece stores data, the bytes of piece p, create-only and encoded as
// the repository encodes segments. A piece stored already is compared:
// identical content returns nil (made durable), different content an error
// matching ErrDifferent. The repository must have its identity already
// (Claim, with the header of the segment's first bytes).
func (r *Repo) PutPiece(ctx context.Context, p Piece, data []byte) error {
	if err := r.CheckWritable(ctx); err != nil {
		return err
	}
	id, ok, err := r.Identity(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s has no %s yet: claim it with the segment's header first", r, IdentityKey)
	}
	if id.Layout == LayoutPlain {
		return fmt.Errorf("%w: %s", ErrNoStreamLayout, r)
	}
	if err := p.Valid(id.SegSize); err != nil {
		return err
	}
	if len(data) != p.Len() {
		return fmt.Errorf("a streamed piece %s of %d bytes holds %d", p, p.Len(), len(data))
	}
	codec := id.Codec
	if codec == "" {
		codec = CodecLZ4
	}
	loc := r.pieceLocation(p, codec)
	size := int64(len(data))
	src := bytes.NewReader(data)
	switch {
	case loc.Encrypted:
		err = r.putEncoded(ctx, loc.Key, size, func(w io.Writer) error { return r.encryptTo(w, loc, src, size) })
	case codec == CodecLZ4:
		var obj []byte
		if obj, err = encodeLZ4(src, size); err == nil {
			err = r.b.Put(ctx, loc.Key, bytes.NewReader(obj), int64(len(obj)))
		}
	default:
		obj, _ := Encode(CodecNone, data, true)
		err = r.b.Put(ctx, loc.Key, bytes.NewReader(obj), int64(len(obj)))
	}
	if storage.IsExist(err) {
		return r.existing(ctx, p.Seg, loc, src, size)
	}
	if err != nil {
		return fmt.Errorf("storing the streamed piece %s: %w", loc.Key, err)
	}
	return nil
}

// ListPieces lists the streamed pieces of segment seg, or of every segment
// when seg is nil, in key order (by segment, then offset).
func (r *Repo) ListPieces(ctx context.Context, seg *wal.Name) ([]StoredPiece, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return nil, err
	}
	prefix := StreamPrefix
	if seg != nil {
		prefix = PiecePrefix(*seg)
	}
	var out []StoredPiece
	err := r.b.List(ctx, prefix, func(i storage.Info) error {
		p, c, ok := ParsePieceKey(i.Key)
		if ok && (seg == nil || p.Seg == *seg) {
			out = append(out, StoredPiece{Piece: p, Location: r.pieceLocation(p, c), Info: i})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the streamed pieces in %s: %w", r, err)
	}
	return out, nil
}

// ReadPiece reads one piece, decoded and checked (its checksum, its
// length).
func (r *Repo) ReadPiece(ctx context.Context, sp StoredPiece) ([]byte, error) {
	o, err := r.openAt(ctx, sp.Seg, sp.Location)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, int64(sp.Len())+1))
	if err != nil {
		return nil, err
	}
	if len(data) != sp.Len() {
		return nil, &CorruptError{Key: sp.Key, Reason: fmt.Sprintf("%d bytes, its name says %d", len(data), sp.Len())}
	}
	return data, nil
}

// RemovePieces removes pieces (a missing one is no error), in batches on a
// store that has them.
func (r *Repo) RemovePieces(ctx context.Context, ps []StoredPiece) error {
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.Key
	}
	return storage.RemoveMany(ctx, r.b, keys)
}

// Cover chooses, among the pieces of one segment, a run that covers its
// bytes from offset 0 without a hole: the indexes of the pieces in order,
// and where the run ends (0 when no piece starts at 0). Overlapping pieces
// (two receivers, or a retry after a crash) are allowed: they hold the
// same bytes where they overlap.
func Cover(ps []Piece) (chain []int, end uint32) {
	for {
		best := -1
		for i, p := range ps {
			if p.Start <= end && p.End > end && (best < 0 || p.End > ps[best].End) {
				best = i
			}
		}
		if best < 0 {
			return chain, end
		}
		chain = append(chain, best)
		end = ps[best].End
	}
}

// readers bounds the pieces read at once.
const readers = 16

// Streamed reads back the streamed bytes of segment seg: a buffer of
// segSize bytes holding the bytes the pieces cover from offset 0, and zeros
// after them, and where the streamed bytes end. With no piece that starts
// the segment, it returns an error matching fs.ErrNotExist. A piece removed
// while it is read (the segment was completed meanwhile) also gives
// fs.ErrNotExist: look for the segment again.
func (r *Repo) Streamed(ctx context.Context, seg wal.Name, segSize uint32) (data []byte, end uint32, err error) {
	stored, err := r.ListPieces(ctx, &seg)
	if err != nil {
		return nil, 0, err
	}
	ps := make([]Piece, len(stored))
	for i, sp := range stored {
		if err := sp.Valid(segSize); err != nil {
			return nil, 0, &CorruptError{Key: sp.Key, Reason: err.Error()}
		}
		ps[i] = sp.Piece
	}
	chain, end := Cover(ps)
	if end == 0 {
		return nil, 0, &storage.Error{Op: "open", Key: PiecePrefix(seg), Err: errNotExist}
	}
	data = make([]byte, segSize)
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, readers)
	var wg sync.WaitGroup
	at := uint32(0)
	for _, i := range chain {
		sp, from := stored[i], at
		at = sp.End
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			b, err := r.ReadPiece(ctx, sp)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			copy(data[from:sp.End], b[from-sp.Start:])
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, 0, firstErr
	}
	return data, end, nil
}

// StreamedSegments lists the segments that have pieces, in order.
func StreamedSegments(ps []StoredPiece) []wal.Name {
	var out []wal.Name
	for _, p := range ps {
		if len(out) == 0 || out[len(out)-1] != p.Seg {
			out = append(out, p.Seg)
		}
	}
	slices.SortFunc(out, func(a, b wal.Name) int {
		if c := wal.ComparePosition(a, b); c != 0 {
			return c
		}
		return int(a.Timeline) - int(b.Timeline)
	})
	return slices.Compact(out)
}
