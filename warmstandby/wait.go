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
	"log/slog"
	"time"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// FetchFunc restores the segment once it is complete in the repository. Its
// errors tell the wait what happened: one matching fs.ErrNotExist means
// the segment is not there; a *repo.CorruptError of a plain object means a
// cp is still writing it; an error from the store (a *storage.Error, or
// one matching storage.ErrTransient or repo.ErrNoRepository) means the
// archive cannot be read right now. Any other error ends the wait.
type FetchFunc func(ctx context.Context) error

// Wait waits for segment n to be complete in the repository and restores
// it with fetch. It returns a *StopError, which matches fs.ErrNotExist,
// when the wait ends without the segment.
func Wait(ctx context.Context, r *repo.Repo, n wal.Name, o Options, fetch FetchFunc) error {
	o.defaults()
	w := &waiter{r: r, n: n, fetch: fetch, o: o, log: o.Log.With("file", n.String())}
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
	r     *repo.Repo
	n     wal.Name
	fetch FetchFunc
	o     Options
	log   *slog.Logger

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
	case Branched:
		msg += " so that the server follows the newer timeline"
	}
	w.log.Warn(msg, "why", detail)
	return &StopError{Name: w.n, Reason: reason, Detail: detail}
}

func (w *waiter) run(ctx context.Context) error {
	w.start = time.Now()
	w.headerOK = map[string]uint32{}
	if f := w.failover(); f == Fast {
		return w.stop(TriggeredFast, "fast failover requested by "+w.o.Trigger)
	}
	st, err := w.try(ctx)
	if st == restored || st == fatal {
		return err
	}
	if stopErr := w.stopNow(st); stopErr != nil {
		return stopErr
	}
	if st == missing {
		if stopErr := w.branched(ctx); stopErr != nil {
			return stopErr
		}
	}

	w.live = newLiveness(w.o.DataDir)
	w.log.Info("waiting for the segment to be archived", "repo", w.r.String(), "state", w.describe(st))
	if msg := PrefetchWarning(w.o.DataDir); msg != "" {
		w.log.Warn(msg)
	}

	var events <-chan struct{}
	pollEvery, backoff := w.o.FirstPoll, true
	if !w.o.NoWatch {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var err error
		// The segment, and the history file of a newer timeline that
		// would end the wait (branched).
		next := wal.Name{Kind: wal.KindHistory, Timeline: w.n.Timeline + 1}
		if events, err = w.r.Watch(wctx, w.n, next); err == nil {
			pollEvery, backoff = w.o.Poll, false
			// The object may have appeared before the watch was in place.
			if st, err = w.try(ctx); st == restored || st == fatal {
				return err
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
			return fmt.Errorf("waiting for %s: %w", w.n, ctx.Err())
		case _, ok := <-events:
			look = true
			if !ok {
				events = nil // the watch ended: the poll goes on
			}
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
			return w.stop(TriggeredFast, "fast failover requested by "+w.o.Trigger)
		}
		// A smart failover must not miss a segment archived since the last
		// look: look again before calling it missing.
		if look || f == Smart {
			if st, err = w.try(ctx); st == restored || st == fatal {
				return err
			}
		}
		if stopErr := w.stopNow(st); stopErr != nil {
			return stopErr
		}
		if look && st == missing {
			if stopErr := w.branched(ctx); stopErr != nil {
				return stopErr
			}
		}
		if why := w.live.gone(); why != "" {
			return w.stop(ServerGone, why)
		}
		if w.o.MaxWait > 0 && time.Since(w.start) >= w.o.MaxWait {
			if st == unreadable {
				// Not a missing segment: an archive that cannot be read.
				return fmt.Errorf("the archive could not be read for %s: %w", w.o.MaxWait, w.lastErr)
			}
			return w.stop(MaxWaitReached, fmt.Sprintf("not archived within %s", w.o.MaxWait))
		}
		if time.Since(lastLog) >= w.o.LogEvery {
			lastLog = time.Now()
			w.log.Info("still waiting for the segment", "for", time.Since(w.start).Round(time.Second), "state", w.describe(st))
		}
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
func (w *waiter) try(ctx context.Context) (status, error) {
	e, err := w.r.Find(ctx, w.n)
	if err == nil {
		if e.Codec == repo.CodecNone && isPlain(e.Key) {
			if done, why := w.plainComplete(ctx, e); !done {
				return w.partial(e.Key, e.Size, why), nil
			}
		}
		if err = w.fetch(ctx); err == nil {
			return restored, nil
		}
	}
	var ce *repo.CorruptError
	switch {
	case ctx.Err() != nil:
		return fatal, fmt.Errorf("waiting for %s: %w", w.n, ctx.Err())
	case storage.IsNotExist(err):
		return missing, nil
	case errors.As(err, &ce):
		if isPlain(ce.Key) {
			return w.partial(ce.Key, -1, ce.Reason), nil
		}
		return fatal, err
	case !fromStore(err):
		return fatal, err
	}
	w.lastErr = err
	if time.Since(w.errLogged) >= w.o.LogEvery {
		w.errLogged = time.Now()
		w.log.Warn("cannot read the archive, still waiting", "err", err)
	}
	return unreadable, nil
}

// fromStore reports whether err is a failure to read the archive, which
// waiting may cure.
func fromStore(err error) bool {
	var se *storage.Error
	return errors.As(err, &se) || errors.Is(err, storage.ErrTransient) || errors.Is(err, repo.ErrNoRepository)
}

// isPlain reports whether key is in the plain layout, where cp writes
// objects in place.
func isPlain(key string) bool {
	_, _, layout, ok := repo.ParseKey(key)
	return ok && layout == repo.LayoutPlain
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
func (w *waiter) plainComplete(ctx context.Context, e repo.Entry) (bool, string) {
	segSize, ok := w.headerOK[e.Key]
	if !ok {
		if e.Size < wal.LongHeaderSize {
			return false, fmt.Sprintf("%d bytes so far", e.Size)
		}
		o, err := w.r.OpenEntry(ctx, e)
		if err != nil {
			return false, err.Error()
		}
		head := make([]byte, wal.LongHeaderSize)
		_, err = io.ReadFull(o, head)
		o.Close()
		if err != nil {
			return false, err.Error()
		}
		h, err := repo.CheckHeader(head, w.n, nil)
		if err != nil {
			return false, err.Error()
		}
		segSize = h.SegSize
		w.headerOK[e.Key] = segSize
	}
	if e.Size != int64(segSize) {
		return false, fmt.Sprintf("%d of %d bytes", e.Size, segSize)
	}
	return true, ""
}

// branched ends the wait when a newer timeline in the repository left the
// segment's timeline at or before the segment's last byte: the segment
// will never be archived on this timeline (its primary was replaced; only
// a second writer would still archive it), and the server, once told it
// is not there, looks for newer timelines (recovery_target_timeline =
// 'latest') and asks for that timeline's segment instead. Without this, a
// warm standby waits for ever after a failover.
func (w *waiter) branched(ctx context.Context) error {
	segSize := w.segSize(ctx)
	if segSize == 0 {
		return nil
	}
	b, err := w.r.NewerTimeline(ctx, w.n.Timeline)
	if err != nil || b == nil || b.Unread {
		return nil
	}
	if end := w.n.StartLSN(segSize) + wal.LSN(segSize); b.SwitchPoint >= end {
		return nil // branched off after this segment: it is on both histories
	}
	return w.stop(Branched, fmt.Sprintf("timeline %d branched off timeline %d at %s (%s is in the repository), before the end of this segment",
		b.Timeline, w.n.Timeline, b.SwitchPoint, wal.Name{Kind: wal.KindHistory, Timeline: b.Timeline}))
}

// segSize is the repository's segment size, 0 while it has no identity.
func (w *waiter) segSize(ctx context.Context) uint32 {
	id, ok, err := w.r.Identity(ctx)
	if err != nil || !ok {
		return 0
	}
	return id.SegSize
}
