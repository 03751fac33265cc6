package restore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/repo"
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
}

// ErrNoSpool is returned when prefetch is asked for without a spool.
var ErrNoSpool = errors.New("--prefetch needs --spool: a directory outside the data directory to fetch into")

// Check validates the settings.
func (p Prefetch) Check() error {
	if p.N < 0 || p.N > 256 {
		return fmt.Errorf("--prefetch %d: use 0 to 256", p.N)
	}
	if p.N > 0 && p.Spool == "" {
		return ErrNoSpool
	}
	return nil
}

// Active reports whether prefetch applies to a request for name into dest:
// only for segments, only for the server's own RECOVERYXLOG (pg_rewind and
// other callers name the final file and want no side effects).
func (p Prefetch) Active(name, dest string) bool {
	n, err := wal.ParseName(name)
	return p.N > 0 && p.Spool != "" && err == nil && n.Kind == wal.KindSegment && filepath.Base(dest) == "RECOVERYXLOG"
}

func (p Prefetch) dir(r *repo.Repo) string {
	sum := sha256.Sum256([]byte(r.String()))
	return filepath.Join(p.Spool, hex.EncodeToString(sum[:8]))
}

// Take serves name from the spool into dest when it was prefetched; ok is
// false when it was not there. Files in the spool are complete and
// verified: they only ever appear there by rename.
func (p Prefetch) Take(r *repo.Repo, name, dest string) (ok bool, err error) {
	src := filepath.Join(p.dir(r), name)
	if _, err := os.Stat(src); err != nil {
		return false, nil
	}
	err = os.Rename(src, dest)
	if errors.Is(err, syscall.EXDEV) {
		// The spool is on another filesystem: copy, then rename in place.
		err = copyInto(src, dest)
		os.Remove(src)
	}
	if err != nil {
		return false, fmt.Errorf("taking prefetched %s: %w", name, err)
	}
	return true, nil
}

func copyInto(src, dest string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".walship-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

// Clean removes spooled segments the server will not ask for any more,
// now that it asks for cur: those before cur, and those of other timelines (after a timeline switch
// the old timeline's segments past the switch point are wrong to serve).
// Unfinished temporary files of a killed worker go too.
func (p Prefetch) Clean(r *repo.Repo, cur wal.Name) {
	dir := p.dir(r)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n, err := wal.ParseName(e.Name())
		stale := err != nil || n.Timeline != cur.Timeline || wal.ComparePosition(n, cur) < 0
		if strings.HasPrefix(e.Name(), ".") {
			info, err := e.Info()
			stale = err == nil && time.Since(info.ModTime()) > staleTemp
		}
		if stale {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// NeedsFill reports whether a worker should start now that cur was
// served: fewer than half of the N segments after cur wait in the spool,
// and no worker is fetching (a claim younger than busyClaim). Workers thus
// fetch several segments each, rather than one process per server call.
func (p Prefetch) NeedsFill(r *repo.Repo, cur wal.Name, segSize uint32) bool {
	entries, err := os.ReadDir(p.dir(r))
	if err != nil {
		return true
	}
	spooled := map[string]bool{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".claim") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < busyClaim {
				return false
			}
			continue
		}
		spooled[e.Name()] = true
	}
	ahead := 0
	for n := cur.Next(segSize); ahead < p.N && spooled[n.String()]; n = n.Next(segSize) {
		ahead++
	}
	return ahead < max(1, (p.N+1)/2)
}

// busyClaim is how long a claim is taken for a worker still fetching.
const busyClaim = 2 * time.Minute

// Fill fetches the N segments after cur on cur's timeline into the spool,
// skipping those already there, and stops at the first one the archive
// does not have yet. Each is verified (checksum, size, header) into a
// temporary file and renamed into place, so a killed Fill never leaves a
// file that Take would serve. Concurrent Fills share the work: a segment
// another one is fetching is skipped.
func (p Prefetch) Fill(ctx context.Context, r *repo.Repo, cur wal.Name, segSize uint32) error {
	dir := p.dir(r)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	n := cur
	for i := 0; i < p.N; i++ {
		n = n.Next(segSize)
		final := filepath.Join(dir, n.String())
		if _, err := os.Stat(final); err == nil {
			continue
		}
		// An exclusive claim, so that two workers do not fetch one file.
		claim := filepath.Join(dir, "."+n.String()+".claim")
		f, err := os.OpenFile(claim, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			continue
		}
		f.Close()
		_, err = Fetch(ctx, r, n.String(), final)
		os.Remove(claim)
		if storage.IsNotExist(err) {
			return nil // not archived yet: the server will ask for it
		}
		if err != nil {
			slog.Debug("prefetch failed", "file", n, "err", err)
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

// staleTemp is how old a temporary or claim file must be before Clean
// takes it for the leftover of a killed worker.
const staleTemp = 10 * time.Minute
