package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/internal/detach"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
	"github.com/walship/walship/wal"
)

// Parallel describes look-ahead pushing: while PostgreSQL's archiver
// calls archive_command for one file after another, a detached worker
// pushes the next ones it has marked ready, up to N-1 at once, and records
// each that is durably stored in the spool directory, so that the server's
// own call for it is answered from the record.
type Parallel struct {
	// N is how many files are pushed at once, %f included; 1 turns
	// look-ahead off.
	N int
	// Spool is the directory for records; it must not be inside the data
	// directory (pg_rewind and pg_basebackup would copy it). Records are a
	// cache: losing them costs a second, identical, push.
	Spool string
	// Worker is set in the detached worker process (WorkerFromEnv).
	Worker bool
	// Spawn starts the worker for the files after n; nil runs this program
	// again, detached (internal/detach). Tests run the worker in-process.
	Spawn func(n wal.Name)
	// Idle is how long a worker goes on looking for files to push after
	// it found none; 0 is two seconds.
	Idle time.Duration
	// Log receives the pushes' warnings and debug lines (nil: none).
	Log *slog.Logger
}

// IdentityCache is the cache of the identity of the repository at
// location that look-ahead keeps in the spool, or nil without look-ahead:
// the server's calls and the worker then read walship.json from the store
// once in a while, not once each (repo.Options.Cache).
func (p Parallel) IdentityCache(location string) repo.IdentityCache {
	if p.N <= 1 || p.Spool == "" {
		return nil
	}
	return spool.NewIdentityCache(p.Spool, location)
}

// RecordTTL is how long a worker's record of a durable push answers for
// its file without a look at the store; an older record is checked
// against the store first. It bounds the time a file removed from the
// store behind walship's back (by hand) could still be reported archived.
const RecordTTL = 10 * time.Minute

// claimWait bounds how long the server's call waits for a worker that is
// pushing the same file: longer than one push with its retries takes.
const claimWait = 3 * time.Minute

// workerEnv marks the detached look-ahead worker.
const workerEnv = "WALSHIP_ARCHIVE_WORKER"

// WorkerFromEnv reports whether this process is a look-ahead worker.
func WorkerFromEnv() bool { return detach.Value(workerEnv) != "" }

// marker is the spool's record of a file a worker pushed durably.
type marker struct {
	Repo string `json:"repo"`
	Key  string `json:"key"`
	Size int64  `json:"size"`   // bytes of the WAL file
	CRC  uint32 `json:"crc32c"` // of the WAL file's content
	// Newer is what the push found (Result.Newer): the server's call,
	// answered from the record, logs the warning the worker cannot (its
	// output is discarded).
	Newer *Branch `json:"newer,omitempty"`
}

// PushAhead archives the file at path as n like Push, answering from a
// worker's record when it has stored n already, and keeps a worker pushing
// the files after n. It pays on every store: the worker hides the round
// trips of an object store, and on a local file system it compresses the
// next files while the store syncs the last ones. In the worker process
// (p.Worker) it pushes ahead and returns an empty Result.
func PushAhead(ctx context.Context, r *repo.Repo, path string, n wal.Name, p Parallel) (Result, error) {
	log := logx.Or(p.Log)
	if p.N <= 1 || p.Spool == "" {
		return push(ctx, r, path, n, log)
	}
	if p.Worker {
		return Result{}, work(ctx, r, path, n, p)
	}
	sp, err := p.dir(ctx, r)
	if err != nil || sp == nil {
		// A new repository (its identity, which records are keyed to,
		// comes with this push), or one that cannot be read: push, then
		// start looking ahead.
		res, err := push(ctx, r, path, n, log)
		if err == nil {
			if sp, _ := p.dir(ctx, r); sp != nil {
				p.startWorker(sp, n)
			}
		}
		return res, err
	}
	if res, ok := answerFromMarker(ctx, r, sp, path, n, log); ok {
		return res, nil
	}
	if sp.WaitClaim(ctx, n.String(), claimWait) {
		if res, ok := answerFromMarker(ctx, r, sp, path, n, log); ok {
			return res, nil
		}
	}
	p.startWorker(sp, n)
	release, ok := sp.Claim(n.String()) // so that the worker leaves it alone
	if !ok && sp.WaitClaim(ctx, n.String(), claimWait) {
		// The worker took it meanwhile.
		if res, ok := answerFromMarker(ctx, r, sp, path, n, log); ok {
			return res, nil
		}
	}
	res, err := push(ctx, r, path, n, log)
	if release != nil {
		release()
	}
	return res, err
}

// dir is the spool directory of the repository's look-ahead records,
// keyed to its identity (and apart from prefetched segments, should one
// spool serve both); nil while the repository has no identity.
func (p Parallel) dir(ctx context.Context, r *repo.Repo) (*spool.Dir, error) {
	key, ok, err := r.SpoolKey(ctx)
	if err != nil || !ok {
		return nil, err
	}
	return spool.Open(p.Spool, "push "+key)
}

// startWorker starts a detached worker for the files after n unless one
// is at work.
func (p Parallel) startWorker(sp *spool.Dir, n wal.Name) {
	release, ok := sp.Lock("archive")
	if !ok {
		return // a worker is at work
	}
	release()
	if p.Spawn != nil {
		p.Spawn(n)
		return
	}
	if err := detach.Start(workerEnv, n.String()); err != nil {
		logx.Or(p.Log).Debug("look-ahead worker not started", "err", err)
	}
}

// work is the detached worker: it pushes the files marked ready after n,
// up to p.N-1 at once, each claimed (so that no one pushes it beside the
// worker) and recorded once durably stored, until none has come for
// workerIdle. One worker runs at a time.
func work(ctx context.Context, r *repo.Repo, path string, n wal.Name, p Parallel) error {
	sp, err := p.dir(ctx, r)
	if err != nil || sp == nil {
		return err
	}
	release, ok := sp.Lock("archive")
	if !ok {
		return nil // another worker is at it
	}
	defer release()
	walDir := filepath.Dir(path)
	// Records of files the server has archived since (or will never ask
	// for) go.
	sp.Clean(func(name string) bool {
		_, err := os.Stat(filepath.Join(walDir, "archive_status", name+".ready"))
		return err == nil
	})
	idle := p.Idle
	if idle <= 0 {
		idle = 2 * time.Second
	}
	slots := make(chan struct{}, max(1, p.N-1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for idleSince := time.Now(); time.Since(idleSince) < idle && ctx.Err() == nil; {
		started := false
		for _, next := range readyAfter(walDir, n, 64) {
			if sp.Has(next.String()) || sp.Claimed(next.String()) {
				continue
			}
			slots <- struct{}{}
			claim, ok := sp.Claim(next.String())
			if !ok {
				<-slots
				continue
			}
			// The list is as old as the wait for a slot: the server may
			// have archived the file meanwhile (its own call, which leaves
			// no record), and a second push would cost a whole upload and
			// a download to compare.
			if !stillReady(walDir, next) {
				claim()
				<-slots
				continue
			}
			started = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer claim()
				pushAhead(ctx, r, sp, filepath.Join(walDir, next.String()), next, logx.Or(p.Log))
			}()
		}
		if started {
			idleSince = time.Now()
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// pushAhead pushes one look-ahead file and records it in the spool, only
// once the store has it durably.
func pushAhead(ctx context.Context, r *repo.Repo, sp *spool.Dir, path string, n wal.Name, log *slog.Logger) {
	res, read, err := pushRead(ctx, r, path, n, true, log)
	if err != nil {
		// The file may have been archived and removed by the server
		// meanwhile, or fail for the same reason it will fail when
		// asked for; either way PostgreSQL's own call decides.
		log.Debug("look-ahead push failed", "file", n, "err", err)
		return
	}
	// The record is of the bytes stored: the file read again now could
	// have changed since.
	crc, ok := read.Sum(int64(res.Bytes))
	if !ok {
		log.Debug("look-ahead push not recorded: the file was not read once, in order", "file", n)
		return
	}
	m := marker{Repo: r.String(), Key: res.Key, Size: int64(res.Bytes), CRC: crc, Newer: res.Newer}
	data, _ := json.Marshal(m)
	if err := sp.WriteFile(n.String(), data); err != nil {
		log.Debug("look-ahead push not recorded", "file", n, "err", err)
	}
}

// describe computes the record for the file at path.
func describe(r *repo.Repo, path string) (marker, error) {
	f, err := os.Open(path)
	if err != nil {
		return marker{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return marker{}, err
	}
	sum, err := repo.Sum(f, fi.Size())
	if err != nil {
		return marker{}, err
	}
	return marker{Repo: r.String(), Size: fi.Size(), CRC: sum}, nil
}

// answerFromMarker returns true when a worker recorded n as durably stored
// with the content now at path: a record younger than RecordTTL answers
// alone; an older one after a look that the object is still in the store.
// The record is consumed either way.
func answerFromMarker(ctx context.Context, r *repo.Repo, sp *spool.Dir, path string, n wal.Name, log *slog.Logger) (Result, bool) {
	data, err := sp.Read(n.String())
	if err != nil {
		return Result{}, false
	}
	age, _ := sp.Age(n.String())
	defer sp.Remove(n.String())
	var m marker
	if json.Unmarshal(data, &m) != nil || m.Repo != r.String() {
		return Result{}, false
	}
	now, err := describe(r, path)
	if err != nil || now.Size != m.Size || now.CRC != m.CRC {
		return Result{}, false // the file changed since: push it properly
	}
	if age >= RecordTTL {
		if ok, err := r.Stored(ctx, n, m.Key); !ok {
			if err != nil {
				log.Debug("checking a look-ahead push", "file", n, "err", err)
			}
			return Result{}, false
		}
	}
	return Result{Name: n, Key: m.Key, Existed: true, Bytes: int(m.Size), Ahead: true, Newer: m.Newer}, true
}

// stillReady reports whether the server still waits for n to be archived
// (its .ready file is there).
func stillReady(walDir string, n wal.Name) bool {
	_, err := os.Stat(filepath.Join(walDir, "archive_status", n.String()+".ready"))
	return err == nil
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
