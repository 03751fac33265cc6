package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
	"github.com/walship/walship/wal"
)

// Parallel describes look-ahead pushing: while PostgreSQL waits for one
// file, the next ones it has marked ready are pushed too, and a marker in
// the spool directory remembers each that is durably stored, so that
// PostgreSQL's own call for it later returns after a cheap check.
type Parallel struct {
	// N is how many files are pushed at once, %f included; 1 turns
	// look-ahead off.
	N int
	// Spool is the directory for markers; it must not be inside pg_wal
	// (pg_rewind and pg_basebackup would copy it). Markers are a cache:
	// losing them costs a second, identical, push.
	Spool string
}

// marker is what the spool records about a file pushed ahead of its call.
type marker struct {
	Repo string `json:"repo"`
	Key  string `json:"key"`
	Size int64  `json:"size"`   // bytes of the WAL file
	CRC  uint32 `json:"crc32c"` // of the WAL file's content
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PushAhead archives the file at path as n like Push, first answering from
// a marker left by an earlier look-ahead push, and pushing up to p.N-1
// further ready segments from pg_wal/archive_status alongside. Only the
// result for n is returned; a look-ahead push that fails is simply left for
// PostgreSQL to ask for again.
func PushAhead(ctx context.Context, r *repo.Repo, path string, n wal.Name, p Parallel) (Result, error) {
	if p.N <= 1 || p.Spool == "" {
		return Push(ctx, r, path, n)
	}
	key, ok, err := r.SpoolKey(ctx)
	if err != nil {
		return Push(ctx, r, path, n) // which reports the store's failure
	}
	if !ok {
		// A new repository: markers are keyed to its identity, which
		// the push of n claims; look ahead once it has.
		res, err := Push(ctx, r, path, n)
		if err != nil {
			return res, err
		}
		if key, ok, err = r.SpoolKey(ctx); err == nil && ok {
			if sp, err := spool.Open(p.Spool, key); err == nil {
				lookAhead(ctx, r, sp, path, n, p.N-1)()
			}
		}
		return res, nil
	}
	sp, err := spool.Open(p.Spool, key)
	if err != nil {
		return Result{}, err
	}
	if res, ok := answerFromMarker(ctx, r, sp, path, n); ok {
		return res, nil
	}
	wait := lookAhead(ctx, r, sp, path, n, p.N-1)
	res, err := Push(ctx, r, path, n)
	wait()
	return res, err
}

// lookAhead starts pushing up to max ready files after n, each recorded in
// the spool; wait waits for them.
func lookAhead(ctx context.Context, r *repo.Repo, sp *spool.Dir, path string, n wal.Name, max int) (wait func()) {
	ahead := readyAfter(filepath.Dir(path), n, max)
	if len(ahead) > 0 {
		if err := sp.Make(); err != nil {
			slog.Warn("no look-ahead: cannot create the spool directory", "err", err)
			ahead = nil
		}
	}
	var wg sync.WaitGroup
	for _, next := range ahead {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushAhead(ctx, r, sp, filepath.Join(filepath.Dir(path), next.String()), next)
		}()
	}
	return wg.Wait
}

// pushAhead pushes one look-ahead file and records it in the spool.
func pushAhead(ctx context.Context, r *repo.Repo, sp *spool.Dir, path string, n wal.Name) {
	if sp.Has(n.String()) {
		return // pushed ahead already, not yet asked for
	}
	res, err := Push(ctx, r, path, n)
	if err != nil {
		// The file may have been archived and removed by the server
		// meanwhile, or fail for the same reason it will fail when
		// asked for; either way PostgreSQL's own call decides.
		slog.Debug("look-ahead push failed", "file", n, "err", err)
		return
	}
	if res.Newer != nil {
		// The server's own call is answered from the marker, without a look.
		slog.Warn(res.Newer.Warning(n), "file", n.String(), "repo", r.String())
	}
	m, err := describe(r, path)
	if err != nil {
		slog.Debug("look-ahead push not recorded", "file", n, "err", err)
		return
	}
	m.Key = res.Key
	data, _ := json.Marshal(m)
	if err := sp.WriteFile(n.String(), data); err != nil {
		slog.Debug("look-ahead push not recorded", "file", n, "err", err)
	}
}

// describe computes the marker for the file at path.
func describe(r *repo.Repo, path string) (marker, error) {
	f, err := os.Open(path)
	if err != nil {
		return marker{}, err
	}
	defer f.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, f)
	if err != nil {
		return marker{}, err
	}
	return marker{Repo: r.String(), Size: n, CRC: h.Sum32()}, nil
}

// answerFromMarker returns true when n was pushed ahead and is still in
// the repository with the content now at path. The marker is consumed
// either way.
func answerFromMarker(ctx context.Context, r *repo.Repo, sp *spool.Dir, path string, n wal.Name) (Result, bool) {
	data, err := sp.Read(n.String())
	if err != nil {
		return Result{}, false
	}
	defer sp.Remove(n.String())
	var m marker
	if json.Unmarshal(data, &m) != nil || m.Repo != r.String() {
		return Result{}, false
	}
	now, err := describe(r, path)
	if err != nil || now.Size != m.Size || now.CRC != m.CRC {
		return Result{}, false // the file changed since: push it properly
	}
	if ok, err := r.Stored(ctx, n, m.Key); !ok {
		if err != nil {
			slog.Debug("checking a look-ahead push", "file", n, "err", err)
		}
		return Result{}, false
	}
	return Result{Name: n, Key: m.Key, Existed: true, Bytes: int(m.Size), Ahead: true}, true
}

// readyAfter lists up to max WAL files that the server has marked ready for
// archiving (pg_wal/archive_status/<name>.ready) and that come after n,
// oldest first. History files go first, as the server sends them first.
func readyAfter(walDir string, n wal.Name, max int) []wal.Name {
	if max <= 0 {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil
	}
	var ready []string
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || base == n.String() {
			continue
		}
		rn, err := wal.ParseName(base)
		if err != nil || (rn.Kind != wal.KindSegment && rn.Kind != wal.KindHistory) {
			continue
		}
		if rn.Kind == wal.KindSegment && base < n.String() {
			continue
		}
		ready = append(ready, base)
	}
	wal.SortArchiveOrder(ready)
	if len(ready) > max {
		ready = ready[:max]
	}
	out := make([]wal.Name, len(ready))
	for i, b := range ready {
		out[i], _ = wal.ParseName(b)
	}
	return out
}

// Check validates the look-ahead settings: at most 64 files at once, and
// a spool directory for more than one.
func (p Parallel) Check() error {
	if p.N < 1 || p.N > 64 {
		return fmt.Errorf("look-ahead of %d files: use 1 to 64", p.N)
	}
	if p.N > 1 || p.Spool != "" {
		if err := spool.Check(p.Spool); err != nil {
			return fmt.Errorf("look-ahead needs a spool directory outside the data directory for its markers: %w", err)
		}
	}
	return nil
}
