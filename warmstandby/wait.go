// Package warmstandby is the wait loop of walship-restore --standby: a
// restore_command that, asked for a WAL segment not archived yet, waits for
// it instead of answering "not found", the way pg_standby did for warm
// standby servers.
//
// A local repository is watched for file system events, with a slow poll
// as a safety net; any other store is polled with backoff. The wait ends
// when the segment is complete in the repository (a segment still being
// copied into a plain repository by cp is never handed over), when a
// trigger file appears (smart: restore what is archived, then report the
// first missing segment; fast: stop at once), when the server is asked to
// promote (the data directory's promote file), after --max-wait, when the
// postmaster dies, or when the context ends. Requests for anything but a
// segment (timeline history files above all) never wait.
package warmstandby

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Options tune the wait. Zero values take the defaults.
type Options struct {
	// Trigger is the trigger file's path; "" means none.
	Trigger string
	// DataDir is the server's data directory (promote, postmaster.pid,
	// configuration); "" is the current directory, which is the data
	// directory when the server runs restore_command.
	DataDir string
	// MaxWait ends a wait for one segment after this long, as "not found";
	// 0 waits forever.
	MaxWait time.Duration
	// Poll is the longest pause between two looks at the repository. A
	// local repository is watched for events, so there it is only the
	// safety net; other stores are polled from FirstPoll, doubling up to
	// Poll. Default 5s.
	Poll time.Duration
	// FirstPoll is the first pause of the polling backoff. Default 100ms.
	FirstPoll time.Duration
	// Check is how often the trigger file, the promote file and the
	// postmaster are looked at. Default 200ms.
	Check time.Duration
	// Settle is how long a triggered (smart) failover waits for a plain
	// object that stopped growing before calling it missing: a primary that
	// died in the middle of a cp leaves a short file forever. Default 5s.
	Settle time.Duration
	// LogEvery is how often a long wait says it is still waiting. Default 1m.
	LogEvery time.Duration
	// Log receives the wait's messages; nil is slog.Default().
	Log *slog.Logger
	// NoWatch disables file system events (polling only).
	NoWatch bool
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Poll, 5*time.Second)
	def(&o.FirstPoll, 100*time.Millisecond)
	if o.FirstPoll > o.Poll {
		o.FirstPoll = o.Poll
	}
	def(&o.Check, 200*time.Millisecond)
	def(&o.Settle, 5*time.Second)
	def(&o.LogEvery, time.Minute)
	if o.DataDir == "" {
		o.DataDir = "."
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Reason is why a wait ended without the segment.
type Reason int

const (
	// Triggered: a smart failover and the segment is not archived.
	Triggered Reason = iota + 1
	// TriggeredFast: a fast failover.
	TriggeredFast
	// Promoted: the server was asked to promote and the segment is not archived.
	Promoted
	// MaxWaitReached: the segment did not come within MaxWait.
	MaxWaitReached
	// ServerGone: the postmaster (or our parent) exited.
	ServerGone
)

// ErrStopped is matched by every StopError.
var ErrStopped = errors.New("stopped waiting")

// StopError ends a wait without the segment. It also matches
// fs.ErrNotExist: PostgreSQL is told "not found".
type StopError struct {
	Name   wal.Name
	Reason Reason
	Detail string
}

func (e *StopError) Error() string {
	return fmt.Sprintf("stopped waiting for %s: %s", e.Name, e.Detail)
}

// Unwrap lets errors.Is match ErrStopped and fs.ErrNotExist.
func (e *StopError) Unwrap() []error { return []error{ErrStopped, fs.ErrNotExist} }

// Fetch restores the WAL file name into dest like restore.Fetch, but waits
// for a segment that is not (completely) in the repository yet. It returns
// a *StopError, which matches fs.ErrNotExist, when the wait ends without
// the segment; a request that is not for a segment never waits.
func Fetch(ctx context.Context, r *repo.Repo, name, dest string, o Options) (restore.Result, error) {
	n, err := wal.ParseName(name)
	if err != nil || n.Kind != wal.KindSegment {
		return restore.Fetch(ctx, r, name, dest)
	}
	o.defaults()
	w := &waiter{r: r, n: n, name: name, dest: dest, o: o, log: o.Log.With("file", name)}
	return w.run(ctx)
}

type status int

const (
	restored   status = iota
	missing           // not in the repository
	incomplete        // a plain object still being written
	unreadable        // the repository cannot be read right now
	fatal             // an error waiting cannot cure
)

type waiter struct {
	r          *repo.Repo
	n          wal.Name
	name, dest string
	o          Options
	log        *slog.Logger

	start     time.Time
	live      liveness
	failing   string // the failover in force: smart, fast, promote or ""
	oddLogged bool

	// What the last look found.
	lastErr     error
	errLogged   time.Time
	partKey     string
	partSize    int64
	partChanged time.Time
	partLogged  bool
	headerOK    map[string]uint32 // plain keys whose header checked out -> segment size
}

// failover combines the trigger file and the promote file, and notes in
// w.failing which one is in force.
func (w *waiter) failover() Failover {
	f, odd := readTrigger(w.o.Trigger)
	if odd != "" && !w.oddLogged {
		w.oddLogged = true
		w.log.Warn("trigger file "+odd, "trigger", w.o.Trigger)
	}
	switch {
	case f != NoFailover:
		w.failing = f.String()
	case pgdata.PromoteRequested(w.o.DataDir):
		f, w.failing = Smart, "promote"
	default:
		w.failing = ""
	}
	return f
}

// stop ends the wait without the segment, saying why in one line.
func (w *waiter) stop(reason Reason, detail string) error {
	msg := "reporting the segment as not found"
	switch reason {
	case Triggered, TriggeredFast:
		msg = "failover: " + msg + " so that recovery ends"
		if pgdata.HasStandbySignal(w.o.DataDir) {
			msg += "; but this server runs with standby.signal and will only ask again: " +
				"promote it with pg_ctl promote, or run the warm standby with recovery.signal"
		}
	case Promoted:
		msg = "promotion: " + msg + " so that the server promotes"
	case ServerGone:
		msg = "the server is gone, giving up"
	}
	w.log.Warn(msg, "why", detail)
	return &StopError{Name: w.n, Reason: reason, Detail: detail}
}

func (w *waiter) run(ctx context.Context) (restore.Result, error) {
	w.start = time.Now()
	w.headerOK = map[string]uint32{}
	if f := w.failover(); f == Fast {
		return restore.Result{}, w.stop(TriggeredFast, "fast failover requested by "+w.o.Trigger)
	}
	res, st, err := w.try(ctx)
	if st == restored || st == fatal {
		return res, err
	}
	if stopErr := w.stopNow(st); stopErr != nil {
		return restore.Result{}, stopErr
	}

	w.live = newLiveness(w.o.DataDir)
	w.log.Info("waiting for the segment to be archived", "repo", w.r.String(), "state", w.describe(st))
	if msg := PrefetchWarning(w.o.DataDir); msg != "" {
		w.log.Warn(msg)
	}

	var (
		wt        *watch
		events    <-chan fsnotify.Event
		watchErrs <-chan error
	)
	pollEvery, backoff := w.o.FirstPoll, true
	if root, ok := LocalRoot(w.r.Backend); ok && !w.o.NoWatch {
		var err error
		if wt, err = newWatch(root); err == nil {
			defer wt.Close()
			if err = wt.update(w.r.Layout(), w.n); err != nil {
				w.log.Debug("cannot watch every directory, the poll is the safety net", "err", err)
			}
			events, watchErrs, pollEvery, backoff = wt.w.Events, wt.w.Errors, w.o.Poll, false
			// The object may have appeared before the watch was in place.
			if res, st, err = w.try(ctx); st == restored || st == fatal {
				return res, err
			}
		} else {
			w.log.Debug("no file system events, polling", "err", err)
		}
	}

	check := time.NewTicker(w.o.Check)
	defer check.Stop()
	poll := time.NewTimer(pollEvery)
	defer poll.Stop()
	lastLog := time.Now()
	for {
		look := false
		select {
		case <-ctx.Done():
			return restore.Result{}, fmt.Errorf("waiting for %s: %w", w.n, ctx.Err())
		case ev := <-events:
			look = w.relevant(wt, ev)
		case err := <-watchErrs:
			w.log.Debug("file system events", "err", err)
			look = true // events may have been lost
		case <-poll.C:
			look = true
			if backoff && pollEvery < w.o.Poll {
				if pollEvery *= 2; pollEvery > w.o.Poll {
					pollEvery = w.o.Poll
				}
			}
			poll.Reset(pollEvery)
		case <-check.C:
		}
		f := w.failover()
		if f == Fast {
			return restore.Result{}, w.stop(TriggeredFast, "fast failover requested by "+w.o.Trigger)
		}
		// A smart failover must not miss a segment archived since the last
		// look: look again before calling it missing.
		if look || f == Smart {
			if res, st, err = w.try(ctx); st == restored || st == fatal {
				return res, err
			}
		}
		if stopErr := w.stopNow(st); stopErr != nil {
			return restore.Result{}, stopErr
		}
		if why := w.live.gone(); why != "" {
			return restore.Result{}, w.stop(ServerGone, why)
		}
		if w.o.MaxWait > 0 && time.Since(w.start) >= w.o.MaxWait {
			return restore.Result{}, w.stop(MaxWaitReached, fmt.Sprintf("not archived within %s", w.o.MaxWait))
		}
		if time.Since(lastLog) >= w.o.LogEvery {
			lastLog = time.Now()
			w.log.Info("still waiting for the segment", "for", time.Since(w.start).Round(time.Second), "state", w.describe(st))
		}
	}
}

// relevant reports whether a file system event (and any others already
// queued) may concern the segment, re-aiming the watch when a directory on
// the way to it appeared.
func (w *waiter) relevant(wt *watch, ev fsnotify.Event) bool {
	seen := false
	for {
		obj, dir := wt.relevant(ev)
		if dir {
			if err := wt.update(w.r.Layout(), w.n); err != nil {
				w.log.Debug("cannot watch every directory, the poll is the safety net", "err", err)
			}
		}
		seen = seen || obj || dir
		select {
		case ev = <-wt.w.Events:
			continue
		default:
		}
		return seen
	}
}

// stopNow decides, under a smart failover or a promotion, whether the
// segment counts as missing for good: it is not in the repository, or it
// is a plain object that stopped growing for Settle. Unreadable storage
// keeps the wait going: what it holds is unknown.
func (w *waiter) stopNow(st status) error {
	if w.failing == "" {
		return nil
	}
	reason, detail := Triggered, "smart failover requested by "+w.o.Trigger
	if w.failing == "promote" {
		reason, detail = Promoted, "promotion requested"
	}
	switch st {
	case missing:
		return w.stop(reason, detail+": every archived segment is restored, this one is not archived")
	case incomplete:
		if time.Since(w.partChanged) >= w.o.Settle {
			return w.stop(reason, detail+fmt.Sprintf(": %s stopped growing at %d bytes (a copy that died half-way)", w.partKey, w.partSize))
		}
	case unreadable:
		if time.Since(w.errLogged) >= w.o.LogEvery {
			w.errLogged = time.Now()
			hint := ""
			if w.o.Trigger != "" {
				hint = " (write fast into " + w.o.Trigger + " to fail over without it)"
			}
			w.log.Warn("failover requested but the archive cannot be read; still trying"+hint, "err", w.lastErr)
		}
	}
	return nil
}

func (w *waiter) describe(st status) string {
	switch st {
	case incomplete:
		return fmt.Sprintf("%s is still being written (%d bytes)", w.partKey, w.partSize)
	case unreadable:
		return fmt.Sprintf("archive unreadable: %v", w.lastErr)
	}
	return "not archived yet"
}

// try looks for the segment once and restores it when it is complete.
func (w *waiter) try(ctx context.Context) (restore.Result, status, error) {
	loc, info, err := w.r.Find(ctx, w.n)
	if err == nil {
		_, _, layout, _ := repo.ParseKey(loc.Key)
		if layout == repo.LayoutPlain && loc.Codec == repo.CodecNone {
			if done, why := w.plainComplete(ctx, loc.Key, info); !done {
				return restore.Result{}, w.partial(loc.Key, info.Size, why), nil
			}
		}
		var res restore.Result
		if res, err = restore.Fetch(ctx, w.r, w.name, w.dest); err == nil {
			return res, restored, nil
		}
	}
	var ce *repo.CorruptError
	switch {
	case ctx.Err() != nil:
		return restore.Result{}, fatal, fmt.Errorf("waiting for %s: %w", w.n, ctx.Err())
	case storage.IsNotExist(err):
		return restore.Result{}, missing, nil
	case errors.Is(err, restore.ErrInvalid):
		return restore.Result{}, fatal, err
	case errors.As(err, &ce):
		if _, _, layout, _ := repo.ParseKey(ce.Key); layout == repo.LayoutPlain {
			return restore.Result{}, w.partial(ce.Key, -1, ce.Reason), nil
		}
		return restore.Result{}, fatal, err
	}
	w.lastErr = err
	if time.Since(w.errLogged) >= w.o.LogEvery {
		w.errLogged = time.Now()
		w.log.Warn("cannot read the archive, still waiting", "err", err)
	}
	return restore.Result{}, unreadable, nil
}

// partial records a look at an object that is not complete yet.
func (w *waiter) partial(key string, size int64, why string) status {
	if key != w.partKey || size != w.partSize || w.partChanged.IsZero() {
		w.partKey, w.partSize, w.partChanged = key, size, time.Now()
	}
	if !w.partLogged {
		w.partLogged = true
		w.log.Info("segment is in the archive but not complete yet, waiting for the rest", "key", key, "why", why)
	}
	return incomplete
}

// plainComplete reports whether an uncompressed object in the plain layout
// (written in place by cp, perhaps not finished) holds a whole segment: a
// valid long page header for this segment, and exactly the segment size
// it names.
func (w *waiter) plainComplete(ctx context.Context, key string, info storage.Info) (bool, string) {
	segSize, ok := w.headerOK[key]
	if !ok {
		if info.Size < wal.LongHeaderSize {
			return false, fmt.Sprintf("%d bytes so far", info.Size)
		}
		rc, err := w.r.Backend.Open(ctx, key)
		if err != nil {
			return false, err.Error()
		}
		head := make([]byte, wal.LongHeaderSize)
		_, err = io.ReadFull(rc, head)
		rc.Close()
		if err != nil {
			return false, err.Error()
		}
		h, err := wal.ParseLongHeader(head)
		if err == nil {
			err = h.CheckName(w.n)
		}
		if err != nil {
			return false, err.Error()
		}
		segSize = h.SegSize
		w.headerOK[key] = segSize
	}
	if info.Size != int64(segSize) {
		return false, fmt.Sprintf("%d of %d bytes", info.Size, segSize)
	}
	return true, ""
}
