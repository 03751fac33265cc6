package restore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Prefetch keeps the next segments of the timeline being recovered in a
// spool directory, fetched and verified ahead of the server's calls, so
// that those calls are a local rename.
type Prefetch struct {
	// N is how many segments after the one asked for to keep ready; 0 is off.
	N int
	// Spool holds the prefetched segments (outside the data directory).
	Spool string
	// Log receives the worker's debug lines (nil: none).
	Log *slog.Logger
}

// Check validates the settings.
func (p Prefetch) Check() error {
	if p.N < 0 || p.N > 256 {
		return fmt.Errorf("prefetch of %d segments: use 0 to 256", p.N)
	}
	if p.N > 0 {
		if err := spool.Check(p.Spool); err != nil {
			return fmt.Errorf("prefetch needs a spool directory outside the data directory to fetch into: %w", err)
		}
	}
	return nil
}

// Active reports whether prefetch applies to a request for n into dest:
// only for segments, only for the server's own RECOVERYXLOG (pg_rewind and
// other callers name the final file and want no side effects).
func (p Prefetch) Active(n wal.Name, dest string) bool {
	return p.Recovery(dest) && n.Kind == wal.KindSegment && filepath.Base(dest) == "RECOVERYXLOG"
}

// Recovery reports whether a request into dest comes from the server's
// own recovery (RECOVERYXLOG, RECOVERYHISTORY: its segments and its
// probes for history files) with a spool to keep things in.
func (p Prefetch) Recovery(dest string) bool {
	base := filepath.Base(dest)
	return p.N > 0 && p.Spool != "" && (base == "RECOVERYXLOG" || base == "RECOVERYHISTORY")
}

// dir is the spool directory of r's prefetched segments: keyed to its
// identity, so that a repository replaced at the same location never sees
// the old one's files (and apart from look-ahead records).
func (p Prefetch) dir(ctx context.Context, r *repo.Repo) (*spool.Dir, error) {
	key, _, err := r.SpoolKey(ctx)
	if err != nil {
		return nil, err
	}
	return spool.Open(p.Spool, "fetch "+key)
}

// takeWait bounds how long Take waits for a worker that is fetching the
// segment asked for: longer than a fetch takes, shorter than a stall the
// server's recovery should sit through.
const takeWait = time.Minute

// Take serves n from the spool into dest when it was prefetched; ok is
// false when it was not there. When a worker is fetching n at that moment,
// Take waits for it rather than fetching n beside it. A spooled segment is
// checked as a fetched one is (its header against the name and the
// repository's identity, its size, and the checksum written with it)
// before it is renamed into place; one that fails is removed and
// reported, and the caller fetches.
func (p Prefetch) Take(ctx context.Context, r *repo.Repo, n wal.Name, dest string) (ok bool, err error) {
	d, err := p.dir(ctx, r)
	if err != nil {
		return false, err
	}
	if !d.Has(n.String()) && !(d.WaitClaim(ctx, n.String(), takeWait) && d.Has(n.String())) {
		return false, nil
	}
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return false, err
	}
	var idp *repo.Identity
	if haveID {
		idp = &id
	}
	if err := unseal(d, n, idp); err != nil {
		d.Remove(n.String())
		return false, fmt.Errorf("prefetched %s: %w", n, err)
	}
	if ok, err = d.Take(n.String(), dest); err != nil {
		return false, fmt.Errorf("taking prefetched %s: %w", n, err)
	}
	return ok, nil
}

// unseal checks a spooled segment (the segment, then the checksum footer
// of its content) and cuts the footer off.
func unseal(d *spool.Dir, n wal.Name, id *repo.Identity) error {
	f, err := d.Open(n.String(), os.O_RDWR)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("shorter than a page header: %w", err)
	}
	h, err := repo.CheckHeader(head, n, id)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if want := int64(h.SegSize) + int64(repo.FooterSize); fi.Size() != want {
		return fmt.Errorf("%d bytes, want %d", fi.Size(), want)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sum, err := repo.Sum(f, int64(h.SegSize))
	if err != nil {
		return err
	}
	foot := make([]byte, repo.FooterSize)
	if _, err := f.ReadAt(foot, int64(h.SegSize)); err != nil {
		return err
	}
	if !bytes.Equal(foot, repo.Footer(sum)) {
		return fmt.Errorf("checksum mismatch: the spooled copy changed since it was fetched")
	}
	return f.Truncate(int64(h.SegSize))
}

// Clean removes spooled segments the server will not ask for any more,
// now that it asks for cur: those before cur, and those of other timelines
// (after a timeline switch the old timeline's segments past the switch
// point are wrong to serve). Unfinished temporary files of a killed worker
// go too.
func (p Prefetch) Clean(ctx context.Context, r *repo.Repo, cur wal.Name) {
	d, err := p.dir(ctx, r)
	if err != nil {
		return
	}
	d.Clean(func(name string) bool {
		n, err := wal.ParseName(name)
		return err == nil && n.Timeline == cur.Timeline && wal.ComparePosition(n, cur) >= 0
	})
}

// NeedsFill reports whether a worker should start now that cur was
// served: fewer than half of the N segments after cur wait in the spool,
// and no worker is fetching (holds a claim). Workers thus
// fetch several segments each, rather than one process per server call.
func (p Prefetch) NeedsFill(ctx context.Context, r *repo.Repo, cur wal.Name, segSize uint32) bool {
	d, err := p.dir(ctx, r)
	if err != nil {
		return false
	}
	if d.Busy() {
		return false
	}
	ahead := 0
	for n := cur.Next(segSize); ahead < p.N && d.Has(n.String()); n = n.Next(segSize) {
		ahead++
	}
	return ahead < max(1, (p.N+1)/2)
}

// Fill fetches the N segments after cur on cur's timeline into the spool,
// skipping those already there, and stops at the first one the archive
// does not have yet. Each is verified (checksum, size, header) into a
// temporary file, followed by the checksum footer Take checks, and renamed
// into place, so a killed Fill never leaves a file that Take would serve. Concurrent Fills share the work: a segment
// another one is fetching is skipped.
func (p Prefetch) Fill(ctx context.Context, r *repo.Repo, cur wal.Name, segSize uint32) error {
	d, err := p.dir(ctx, r)
	if err != nil {
		return err
	}
	if err := d.Make(); err != nil {
		return err
	}
	n := cur
	for i := 0; i < p.N; i++ {
		n = n.Next(segSize)
		if d.Has(n.String()) {
			continue
		}
		release, ok := d.Claim(n.String())
		if !ok {
			continue // another worker fetches it
		}
		_, err = fetch(ctx, r, n, d.Path(n.String()), true)
		release()
		if storage.IsNotExist(err) {
			return nil // not archived yet: the server will ask for it
		}
		if err != nil {
			logx.Or(p.Log).Debug("prefetch failed", "file", n, "err", err)
			return err
		}
	}
	return nil
}

// SegSizeOf reads the segment size from the header of a restored segment.
func SegSizeOf(path string) (uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	head := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(f, head); err != nil {
		return 0, err
	}
	h, err := wal.ParseLongHeader(head)
	if err != nil {
		return 0, err
	}
	return h.SegSize, nil
}
