package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/walship/walship/internal/detach"
	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/spool"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/warmstandby"
)

// Policy says what a failure to read the archive makes of a call.
type Policy string

const (
	// PolicyAuto is PolicyMissing in a standby and PolicyAbort otherwise.
	PolicyAuto Policy = "auto"
	// PolicyAbort makes the server stop recovery (exit above 125) rather
	// than end it early and lose the tail.
	PolicyAbort Policy = "abort"
	// PolicyMissing reports the file as not found, so the server retries.
	PolicyMissing Policy = "missing"
)

// ParsePolicy checks a policy name ("" is auto).
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case PolicyAuto, PolicyAbort, PolicyMissing:
		return p, nil
	case "":
		return PolicyAuto, nil
	}
	return "", fmt.Errorf("unknown policy %q: use auto, abort or missing", s)
}

// Request is one call of restore_command.
type Request struct {
	Name wal.Name
	Dest string
	// DataDir is the server's data directory; "" is the current directory,
	// which is the data directory when the server runs restore_command.
	DataDir string
	OnError Policy
	// Standby, when set, waits for a segment that is not archived yet.
	Standby  *warmstandby.Options
	Prefetch Prefetch
	// Spawn starts a detached prefetch worker for the segments after the
	// one just restored (SpawnSelf); nil starts none.
	Spawn func(segSize uint32) error
	// WorkerSegSize is set in a prefetch worker (WorkerFromEnv): the
	// process fills the spool after Name instead of restoring it.
	WorkerSegSize uint32
	// Log receives what the call does (restored, from where) and its
	// warnings (nil: none).
	Log *slog.Logger
}

// IdentityCache is the cache the repository at location is to be opened
// with for this request (repo.Options.Cache), or nil: the server's own
// recovery, its history probes included, and the prefetch worker read the
// identity from the spool's cache; never pg_rewind's calls, which want no
// side effects.
func (req Request) IdentityCache(location string) repo.IdentityCache {
	if req.WorkerSegSize != 0 || req.Prefetch.Recovery(req.Dest) {
		return spool.NewIdentityCache(req.Prefetch.Spool, location)
	}
	return nil
}

// ReadError is a failure to read the archive (or to write the file), with
// what the policy made of it: Abort means the server must stop recovery.
type ReadError struct {
	Err   error
	Abort bool
}

func (e *ReadError) Error() string {
	if e.Abort {
		return e.Err.Error() + " (aborting recovery rather than ending it early)"
	}
	return e.Err.Error() + " (reported as not found so that the server retries)"
}

// Unwrap returns the failure.
func (e *ReadError) Unwrap() error { return e.Err }

// Run serves one request: from the prefetch spool when the segment is
// there, else fetched (waiting for it with Standby), then starts prefetch
// for the next ones. It returns nil when the file is restored; an error
// matching fs.ErrNotExist when it is not in the archive (or a wait ended
// without it); an error matching ErrInvalid for a request that cannot be
// served; and a *ReadError for everything else.
func Run(ctx context.Context, r *repo.Repo, req Request) (Result, error) {
	req.Log = logx.Or(req.Log)
	req.Prefetch.Log = req.Log
	if req.WorkerSegSize != 0 {
		if err := req.checkServer(ctx, r); err != nil {
			req.Log.Debug("prefetch not started", "err", err)
			return Result{}, nil
		}
		if err := req.Prefetch.Fill(ctx, r, req.Name, req.WorkerSegSize); err != nil {
			req.Log.Debug("prefetch stopped", "after", req.Name, "err", err)
		}
		return Result{}, nil
	}
	if startingRecovery(req) {
		if msg := PromotionWarning(req.DataDir, r); msg != "" {
			req.Log.Warn(msg)
		}
	}
	req.clearTailMarks()
	res, err := req.serve(ctx, r)
	if err == nil || storage.IsNotExist(err) || errors.Is(err, ErrInvalid) {
		return res, err
	}
	return res, req.Fail(err)
}

// Fail is what the policy makes of a failure to read the archive,
// including one to open it at all: a *ReadError.
func (req Request) Fail(err error) error {
	abort := req.OnError == PolicyAbort || (req.OnError != PolicyMissing && !pgdata.IsStandby(req.DataDir))
	return &ReadError{Err: fmt.Errorf("%s: %w", req.Name, err), Abort: abort}
}

func (req Request) serve(ctx context.Context, r *repo.Repo) (Result, error) {
	if err := req.checkServer(ctx, r); err != nil {
		return Result{}, err
	}
	n, pf := req.Name, req.Prefetch
	active := pf.Active(n, req.Dest)
	if active && (req.Standby == nil || !warmstandby.FastTriggered(*req.Standby)) {
		pf.Clean(ctx, r, n)
		if ok, err := pf.Take(ctx, r, n, req.Dest); ok {
			req.Log.Info("restored from the prefetch spool", "file", n)
			if !req.startPrefetch(ctx, r, n) {
				if segSize, err := SegSizeOf(req.Dest); err == nil {
					req.spawn(ctx, r, n, segSize)
				}
			}
			return Result{Name: n, Spooled: true}, nil
		} else if err != nil {
			req.Log.Warn("prefetched copy unusable, fetching again", "file", n, "err", err)
		}
		// Not spooled: the worker fetches the next ones while this call
		// fetches n (once the segment size is known: a repository
		// without an identity file tells it by the segment itself).
		active = !req.startPrefetch(ctx, r, n)
	}
	var res Result
	var err error
	if req.Standby != nil && n.Kind == wal.KindSegment && !req.tailHanded() {
		err = warmstandby.Wait(ctx, r, n, *req.Standby, func(ctx context.Context) error {
			res, err = Fetch(ctx, r, n, req.Dest)
			return err
		})
	} else {
		res, err = Fetch(ctx, r, n, req.Dest)
	}
	if err != nil {
		if res, err = req.tail(ctx, r, err); err != nil {
			return Result{}, err
		}
		return res, nil
	}
	req.Log.Info("restored", "file", n, "from", res.Key, "bytes", res.Bytes)
	if active {
		if segSize, err := SegSizeOf(req.Dest); err == nil {
			req.spawn(ctx, r, n, segSize)
		}
	}
	return res, nil
}

// startPrefetch starts a worker to fetch the segments after n into the
// spool (see spawn), with the segment size of the repository's identity;
// it reports false when the repository has none to tell it.
func (req Request) startPrefetch(ctx context.Context, r *repo.Repo, n wal.Name) bool {
	id, ok, err := r.Identity(ctx)
	if err != nil || !ok {
		return false
	}
	req.spawn(ctx, r, n, id.SegSize)
	return true
}

// spawn starts a prefetch worker for the segments after n unless enough
// are spooled already or a worker is at it.
func (req Request) spawn(ctx context.Context, r *repo.Repo, n wal.Name, segSize uint32) {
	if req.Spawn == nil || !req.Prefetch.NeedsFill(ctx, r, n, segSize) {
		return
	}
	if err := req.Spawn(segSize); err != nil {
		req.Log.Debug("prefetch not started", "err", err)
	}
}

// workerEnv marks the detached process that fills the prefetch spool; its
// value is the segment size.
const workerEnv = "WALSHIP_PREFETCH_WORKER"

// SpawnSelf starts this same program again, detached, as a prefetch
// worker (see WorkerFromEnv). A failure only means the server's next call
// fetches directly.
func SpawnSelf(segSize uint32) error {
	return detach.Start(workerEnv, strconv.FormatUint(uint64(segSize), 10))
}

// WorkerFromEnv returns the segment size a process started by SpawnSelf
// fills the spool for, or 0 in any other process.
func WorkerFromEnv() uint32 {
	v, err := strconv.ParseUint(detach.Value(workerEnv), 10, 32)
	if err != nil || wal.ValidSegSize(uint32(v)) != nil {
		return 0
	}
	return uint32(v)
}

// checkServer compares the repository's cluster with the server's own, in
// the data directory's global/pg_control, when the data directory has one
// (the server runs restore_command there; pg_rewind's calls come from
// elsewhere): the server never gets another cluster's WAL, whatever a
// cache or a spool beside it says. Every segment is checked against the
// repository's cluster on its way (repo.Object.Copy, the spool's Take),
// and so against the server's.
func (req Request) checkServer(ctx context.Context, r *repo.Repo) error {
	dir := req.DataDir
	if dir == "" {
		dir = "."
	}
	sysid, err := pgdata.SystemID(dir)
	if err != nil {
		return nil // not a data directory's call
	}
	id, ok, err := r.Identity(ctx)
	if err != nil || !ok {
		return err
	}
	return wal.Cluster{SystemID: sysid, SegSize: id.SegSize}.Check("the repository "+r.String(), id.Cluster(), "the server in "+dir)
}
