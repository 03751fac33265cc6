package receive

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Storing: pieces go to the store side by side (at most Parallel at once,
// each retried until it is stored: the same key, the same bytes); complete
// segments are stored whole one at a time, then their pieces removed.

type putResult struct {
	c   cutPiece
	err error
}

type foldResult struct {
	b   *segBuf
	err error
}

// retryDelay is how long a failed store waits before it is tried again
// (the retry wrapper under the repository has retried already).
const retryDelay = time.Second

// dispatch starts the queued pieces there is room for.
func (rc *receiver) dispatch() {
	if time.Now().Before(rc.retryAt) {
		return
	}
	for len(rc.queue) > 0 && rc.inFlight < rc.o.Parallel {
		c := rc.queue[0]
		rc.queue = rc.queue[1:]
		rc.inFlight++
		data := c.bytes()
		go func() {
			rc.putDone <- putResult{c: c, err: rc.r.PutPiece(rc.io, c.p, data)}
		}()
	}
}

// piecePut takes the answer of one piece's put.
func (rc *receiver) piecePut(res putResult) {
	rc.inFlight--
	if res.err != nil {
		if rc.io.Err() != nil {
			return // stopping: what is not stored stays in the slot
		}
		if time.Since(rc.lastWarn) >= time.Minute { // one line a minute while it fails
			rc.lastWarn = time.Now()
			if errors.Is(res.err, repo.ErrDifferent) {
				// Other bytes under this piece's name: a second server
				// writes this timeline. Never mix them; commits wait.
				rc.log.Error("a streamed piece is stored with other content; trying again", "piece", res.c.p, "err", res.err)
			} else {
				rc.log.Warn("storing streamed WAL failed; trying again", "piece", res.c.p, "err", res.err)
			}
		}
		rc.retryAt = time.Now().Add(retryDelay)
		rc.queue = append([]cutPiece{res.c}, rc.queue...)
		return
	}
	rc.stored++
	res.c.buf.stored(res.c.p.Start, res.c.p.End)
	rc.log.Log(rc.io, slog.LevelDebug-4, "stored", "piece", res.c.p) // below -v: one a commit
	if rc.segs.advance() {
		rc.status(false)
	}
	rc.dispatch()
}

// startFold starts storing the oldest complete segment whole, unless one
// is being stored.
func (rc *receiver) startFold() {
	if rc.folding || time.Now().Before(rc.retryAt) || rc.segs == nil {
		return
	}
	if bs := rc.segs.toFold(); len(bs) > 0 {
		rc.startFoldOf(bs[0])
	}
}

func (rc *receiver) startFoldOf(b *segBuf) {
	if rc.folding || b.folding || b.folded || b.noFold {
		return
	}
	rc.folding, b.folding = true, true
	go func() { rc.foldDone <- foldResult{b: b, err: rc.storeSegment(b.seg, b.data)} }()
}

// errNoFold marks a segment that must not be stored whole: its pieces
// make it durable.
var errNoFold = errors.New("not stored whole")

// storeSegment stores a complete segment as walship-archive does, checked
// against its name and the repository, then removes its pieces.
func (rc *receiver) storeSegment(seg wal.Name, data []byte) error {
	id, _, err := rc.r.Identity(rc.io)
	if err != nil {
		return err
	}
	if _, err := repo.CheckHeader(data[:wal.LongHeaderSize], seg, &id); err != nil {
		return fmt.Errorf("%w: %s: %w", errNoFold, seg, err)
	}
	_, existed, err := rc.r.PutFrom(rc.io, seg, bytes.NewReader(data), int64(len(data)))
	if errors.Is(err, repo.ErrDifferent) {
		return fmt.Errorf("%w: %s is in the repository with other content: %w", errNoFold, seg, err)
	}
	if err != nil {
		return err
	}
	rc.log.Info("segment stored", "file", seg, "existed", existed)
	rc.segsStored.Add(1)
	rc.removePieces(seg)
	return nil
}

// removePieces removes the pieces of a segment stored whole; one that
// stays is removed at the next start, or by walship-prune.
func (rc *receiver) removePieces(seg wal.Name) {
	ps, err := rc.r.ListPieces(rc.io, &seg)
	if err == nil {
		err = rc.r.RemovePieces(rc.io, ps)
	}
	if err != nil {
		rc.log.Warn("the pieces of a stored segment stay for now", "file", seg, "err", err)
	}
}

// folded takes the answer of a segment's store.
func (rc *receiver) folded(res foldResult) {
	rc.folding, res.b.folding = false, false
	switch {
	case res.err == nil:
		res.b.folded = true
	case errors.Is(res.err, errNoFold):
		rc.log.Error("keeping the streamed pieces of a segment instead", "file", res.b.seg, "err", res.err)
		res.b.noFold = true
		rc.flush()
	case rc.io.Err() != nil:
		return
	default:
		rc.log.Warn("storing a segment failed; trying again", "file", res.b.seg, "err", res.err)
		rc.retryAt = time.Now().Add(retryDelay)
		if !rc.o.Synchronous {
			rc.flush()
		}
	}
	if rc.segs.advance() {
		rc.status(false)
	}
	rc.startFold()
}

// claim records the cluster in a new repository from the first segment's
// header (as the first archived segment does) before any piece is stored.
func (rc *receiver) claim() error {
	id, ok, err := rc.r.Identity(rc.io)
	if err != nil {
		return err
	}
	if !ok {
		var head []byte
		for _, b := range rc.segs.bufs {
			if b.recv >= wal.LongHeaderSize {
				head = b.data[:wal.LongHeaderSize]
				break
			}
		}
		if head == nil {
			return nil // not yet
		}
		h, err := wal.ParseLongHeader(head)
		if err != nil {
			return fmt.Errorf("the server's WAL: %w", err)
		}
		if err := rc.r.Claim(rc.io, h); err != nil {
			if errors.Is(err, wal.ErrOtherCluster) {
				return refused{err}
			}
			return err
		}
		if id, _, err = rc.r.Identity(rc.io); err != nil {
			return err
		}
	}
	rc.id, rc.claimed = id, true
	return nil
}

// tidy finishes what a receiver that was killed left: the pieces of a
// segment stored whole meanwhile are removed, and a segment its pieces
// hold whole is stored whole.
func (rc *receiver) tidy(ps []repo.StoredPiece, segSize uint32) error {
	for _, seg := range repo.StreamedSegments(ps) {
		if _, err := rc.r.Find(rc.io, seg); err == nil {
			rc.removePieces(seg)
			continue
		} else if !storage.IsNotExist(err) {
			return err
		}
		data, end, err := rc.r.Streamed(rc.io, seg, segSize)
		if err != nil && !storage.IsNotExist(err) {
			return err
		}
		if end == segSize {
			if err := rc.storeSegment(seg, data); err != nil && !errors.Is(err, errNoFold) {
				return err
			}
		}
	}
	return nil
}
