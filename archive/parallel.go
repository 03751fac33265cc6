package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
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
	Repo  string `json:"repo"`
	Key   string `json:"key"`
	Size  int64  `json:"size"`   // bytes of the WAL file
	CRC   uint32 `json:"crc32c"` // of the WAL file's content
	Codec string `json:"codec"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// spoolDir is the repository's own subdirectory of the spool: markers of
// one repository never answer for another.
func (p Parallel) spoolDir(r *repo.Repo) string {
	sum := sha256.Sum256([]byte(r.String()))
	return filepath.Join(p.Spool, hex.EncodeToString(sum[:8]))
}

// PushAhead archives path as name like Push, first answering from a marker
// left by an earlier look-ahead push, and pushing up to p.N-1 further ready
// segments from pg_wal/archive_status alongside. Only the result for name
// is returned; a look-ahead push that fails is simply left for PostgreSQL
// to ask for again.
func PushAhead(ctx context.Context, r *repo.Repo, path, name string, codec repo.Codec, p Parallel) (Result, error) {
	if p.N <= 1 || p.Spool == "" {
		return Push(ctx, r, path, name, codec)
	}
	dir := p.spoolDir(r)
	if res, ok := answerFromMarker(ctx, r, dir, path, name); ok {
		return res, nil
	}
	ahead := readyAfter(filepath.Dir(path), name, p.N-1)
	if len(ahead) > 0 {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			slog.Warn("no look-ahead: cannot create the spool directory", "dir", dir, "err", err)
			ahead = nil
		}
	}
	var wg sync.WaitGroup
	for _, next := range ahead {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pushAhead(ctx, r, dir, filepath.Join(filepath.Dir(path), next), next, codec)
		}()
	}
	res, err := Push(ctx, r, path, name, codec)
	wg.Wait()
	return res, err
}

// pushAhead pushes one look-ahead file and records it in the spool.
func pushAhead(ctx context.Context, r *repo.Repo, dir, path, name string, codec repo.Codec) {
	if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
		return // pushed ahead already, not yet asked for
	}
	res, err := Push(ctx, r, path, name, codec)
	if err != nil {
		// The file may have been archived and removed by the server
		// meanwhile, or fail for the same reason it will fail when
		// asked for; either way PostgreSQL's own call decides.
		slog.Debug("look-ahead push failed", "file", name, "err", err)
		return
	}
	m, err := describe(r, path, name, codec)
	if err != nil {
		slog.Debug("look-ahead push not recorded", "file", name, "err", err)
		return
	}
	m.Key = res.Key
	if err := writeMarker(dir, name, m); err != nil {
		slog.Debug("look-ahead push not recorded", "file", name, "err", err)
	}
}

// describe computes the marker for the file at path.
func describe(r *repo.Repo, path, name string, codec repo.Codec) (marker, error) {
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
	return marker{Repo: r.String(), Size: n, CRC: h.Sum32(), Codec: string(codec)}, nil
}

func writeMarker(dir, name string, m marker) error {
	data, _ := json.Marshal(m)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

// answerFromMarker returns true when name was pushed ahead and is still in
// the repository with the content now at path. The marker is consumed
// either way.
func answerFromMarker(ctx context.Context, r *repo.Repo, dir, path, name string) (Result, bool) {
	mpath := filepath.Join(dir, name)
	data, err := os.ReadFile(mpath)
	if err != nil {
		return Result{}, false
	}
	defer os.Remove(mpath)
	var m marker
	if json.Unmarshal(data, &m) != nil || m.Repo != r.String() {
		return Result{}, false
	}
	now, err := describe(r, path, name, repo.Codec(m.Codec))
	if err != nil || now.Size != m.Size || now.CRC != m.CRC {
		return Result{}, false // the file changed since: push it properly
	}
	if _, err := r.Backend.Stat(ctx, m.Key); err != nil {
		if !storage.IsNotExist(err) {
			slog.Debug("checking a look-ahead push", "file", name, "err", err)
		}
		return Result{}, false
	}
	n, _ := wal.ParseName(name)
	return Result{Name: n, Key: m.Key, Existed: true, Bytes: int(m.Size), Ahead: true}, true
}

// readyAfter lists up to max WAL files that the server has marked ready for
// archiving (pg_wal/archive_status/<name>.ready) and that come after name,
// oldest first. History files go first, as the server sends them first.
func readyAfter(walDir, name string, max int) []string {
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
		if !ok || base == name {
			continue
		}
		n, err := wal.ParseName(base)
		if err != nil || (n.Kind != wal.KindSegment && n.Kind != wal.KindHistory) {
			continue
		}
		if n.Kind == wal.KindSegment && base < name {
			continue
		}
		ready = append(ready, base)
	}
	wal.SortArchiveOrder(ready)
	if len(ready) > max {
		ready = ready[:max]
	}
	return ready
}

// ErrNoSpool is returned when look-ahead is asked for without a spool.
var ErrNoSpool = errors.New("--parallel above 1 needs --spool: a directory outside the data directory for its markers")

// CheckParallel validates the look-ahead settings.
func CheckParallel(p Parallel) error {
	if p.N < 1 || p.N > 64 {
		return fmt.Errorf("--parallel %d: use 1 to 64", p.N)
	}
	if p.N > 1 && p.Spool == "" {
		return ErrNoSpool
	}
	if p.Spool != "" && strings.Contains(filepath.Clean(p.Spool)+"/", "/pg_wal/") {
		return fmt.Errorf("--spool %s is inside pg_wal: pg_rewind and pg_basebackup would copy it", p.Spool)
	}
	return nil
}
