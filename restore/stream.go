package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/warmstandby"
)

// The streamed tail: when the server's recovery asks for a segment that is
// not stored whole, but walship receive streamed its first bytes, the
// server gets those bytes as the segment (zeros after them: recovery ends
// at the end of valid WAL), so that every commit the receiver acknowledged
// comes back. Only where "not found" would end the recovery there:
//
//   - the server's own call (%p is pg_wal/RECOVERYXLOG), never pg_rewind's
//     (a final pg_wal/<name>, which must be a whole segment);
//   - in archive recovery (recovery.signal): the end of a PITR, or of a
//     restore to the latest; in a standby (standby.signal) only when the
//     --standby wait ends because the server is promoted (pg_ctl promote,
//     or a smart trigger file), when it wants everything there is before
//     it ends recovery; a standby that goes on waits for the whole segment;
//   - for the last timeline: never when a newer timeline branched off it
//     (its history file is stored), whose segments the server reads
//     instead;
//   - never where the segment is stored whole.

// wantsTail reports whether a request for n that found nothing (err) is
// answered with the streamed tail.
func (req Request) wantsTail(err error) bool {
	if req.Name.Kind != wal.KindSegment || req.WorkerSegSize != 0 || filepath.Base(req.Dest) != "RECOVERYXLOG" {
		return false
	}
	if req.Standby != nil {
		var stop *warmstandby.StopError
		return req.tailHanded() || (errors.As(err, &stop) && (stop.Reason == warmstandby.Triggered || stop.Reason == warmstandby.Promoted))
	}
	return !pgdata.IsStandby(req.DataDir)
}

// A standby being promoted asks for the segment that ends its WAL twice:
// once to replay it, then, once it decided to promote (and removed the
// promote file the wait ended on), again to find the end of its WAL
// before it starts the new timeline. The first answer with the streamed
// tail leaves a mark beside %p, so that the second one is answered at once
// with the same tail instead of waiting for a segment that never comes;
// the second answer, or any later call for another file, removes it.

const tailMarkPrefix = "walship-tail-"

// tailMark is the mark of the tail of the requested segment.
func (req Request) tailMark() string {
	return filepath.Join(filepath.Dir(req.Dest), tailMarkPrefix+req.Name.String())
}

// tailMarkAge bounds how long a mark counts: the second call follows the
// first within seconds.
const tailMarkAge = 10 * time.Minute

// tailHanded reports whether the tail of the requested segment was handed
// to this standby at its promotion, moments ago.
func (req Request) tailHanded() bool {
	if req.Standby == nil || req.Name.Kind != wal.KindSegment || filepath.Base(req.Dest) != "RECOVERYXLOG" {
		return false
	}
	fi, err := os.Stat(req.tailMark())
	return err == nil && time.Since(fi.ModTime()) < tailMarkAge
}

// clearTailMarks removes the marks of other segments than the requested
// one (the server has gone past them).
func (req Request) clearTailMarks() {
	if req.Standby == nil {
		return
	}
	marks, _ := filepath.Glob(filepath.Join(filepath.Dir(req.Dest), tailMarkPrefix+"*"))
	for _, m := range marks {
		if m != req.tailMark() || req.Name.Kind != wal.KindSegment {
			os.Remove(m)
		}
	}
}

// FetchStreamed restores into dest the streamed bytes of segment n, zeros
// after them, when n is not stored whole and its timeline is the newest
// (no history file of a later one). It returns an error matching
// fs.ErrNotExist when there is no such tail; when the segment was stored
// whole meanwhile (the receiver completed it), it restores that.
func FetchStreamed(ctx context.Context, r *repo.Repo, n wal.Name, dest string) (Result, error) {
	id, ok, err := r.Identity(ctx)
	if err != nil {
		return Result{}, err
	}
	if !ok || n.Kind != wal.KindSegment {
		return Result{}, &storage.Error{Op: "open", Key: n.String(), Err: os.ErrNotExist}
	}
	next := wal.Name{Kind: wal.KindHistory, Timeline: n.Timeline + 1}
	if _, err := r.Find(ctx, next); err == nil {
		return Result{}, &storage.Error{Op: "open", Key: n.String(), Err: os.ErrNotExist}
	} else if !storage.IsNotExist(err) {
		return Result{}, err
	}
	data, end, err := r.Streamed(ctx, n, id.SegSize)
	if storage.IsNotExist(err) {
		return Fetch(ctx, r, n, dest) // stored whole since, or nothing
	}
	if err != nil {
		return Result{}, err
	}
	// Stored whole since the caller looked (the receiver completed it):
	// the whole segment, never its tail.
	if _, err := r.Find(ctx, n); err == nil {
		return Fetch(ctx, r, n, dest)
	} else if !storage.IsNotExist(err) {
		return Result{}, err
	}
	if _, err := repo.CheckHeader(data[:wal.LongHeaderSize], n, &id); err != nil {
		return Result{}, &repo.CorruptError{Key: repo.PiecePrefix(n), Reason: err.Error()}
	}
	if _, err := os.Stat(filepath.Dir(dest)); err != nil {
		return Result{}, &DestError{Path: dest, Err: err}
	}
	if err := atomicfile.WriteFile(dest, data, atomicfile.Options{}); err != nil {
		return Result{}, &DestError{Path: dest, Err: err}
	}
	return Result{Name: n, Key: repo.PiecePrefix(n) + "*", Bytes: int64(end), Streamed: true}, nil
}

// tail answers a request that found nothing with the streamed tail when
// the server wants it; otherwise it returns err as it was.
func (req Request) tail(ctx context.Context, r *repo.Repo, err error) (Result, error) {
	if !storage.IsNotExist(err) || !req.wantsTail(err) {
		return Result{}, err
	}
	res, terr := FetchStreamed(ctx, r, req.Name, req.Dest)
	if storage.IsNotExist(terr) {
		return Result{}, err
	}
	if terr != nil {
		return Result{}, fmt.Errorf("reading the streamed WAL of %s: %w", req.Name, terr)
	}
	if res.Streamed {
		req.Log.Info("restored the streamed WAL of an unfinished segment", "file", req.Name, "bytes", res.Bytes)
		if req.Standby != nil {
			if req.tailHanded() {
				os.Remove(req.tailMark())
			} else if err := atomicfile.WriteFile(req.tailMark(), nil, atomicfile.Options{}); err != nil {
				req.Log.Warn("cannot mark the streamed tail as handed: the server's next call for it waits", "file", req.tailMark(), "err", err)
			}
		}
	}
	return res, nil
}
