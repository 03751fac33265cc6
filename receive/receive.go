package receive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Options say what to stream, from where, and how.
type Options struct {
	// ConnString is the libpq connection string of the server to stream
	// from (a role with the REPLICATION privilege).
	ConnString string
	// Slot is the physical replication slot to stream through; CreateSlot
	// creates it when it does not exist.
	Slot       string
	CreateSlot bool
	// AppName is the application_name the server sees (what
	// synchronous_standby_names names); "" is DefaultAppName.
	AppName string
	// Synchronous stores what arrives at once and reports it flushed as
	// soon as it is durable, for a synchronous standby; otherwise what
	// arrives is stored at most every FlushInterval.
	Synchronous   bool
	FlushInterval time.Duration
	// StatusInterval is the longest time between two status updates
	// (default 10s, as wal_receiver_status_interval).
	StatusInterval time.Duration
	// Parallel is how many pieces may be on their way to the store at
	// once (default 8).
	Parallel int
	// StopTimeout bounds how long a stop waits for what was received to be
	// stored (default 60s).
	StopTimeout time.Duration
	// Log receives what the receiver does (nil: nothing).
	Log *slog.Logger
}

// DefaultAppName is the application_name a receiver connects with.
const DefaultAppName = "walship"

// DefaultFlushInterval is how often an asynchronous receiver stores what
// it received.
const DefaultFlushInterval = time.Second

// ErrRefused is matched by errors that stop the receiver for good: a
// repository or server that is not the one it should be, a slot that
// does not exist.
var ErrRefused = errors.New("refusing to receive")

// Limits on what is held in memory while the store is slower than the
// stream: past them the stream is not read (the slot keeps the WAL).
const (
	maxUnstored = 256 << 20
	maxSegments = 8
)

func (o *Options) defaults() error {
	if o.AppName == "" {
		o.AppName = DefaultAppName
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.Parallel <= 0 {
		o.Parallel = 8
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = time.Minute
	}
	return pgserver.CheckSlotName(o.Slot)
}

// receiver is the state of one Run.
type receiver struct {
	r   *repo.Repo
	o   Options
	log *slog.Logger
	// io is the context of storage calls: it outlives the run's until the
	// stop has stored what it could.
	io context.Context

	segs    *segments
	claimed bool
	id      repo.Identity

	conn   *pgconn.PgConn
	sys    pgserver.System
	msgs   chan item
	stopRd chan struct{}

	inFlight int
	queue    []cutPiece
	putDone  chan putResult
	folding  bool
	foldDone chan foldResult
	retryAt  time.Time // when a failed store is tried again
	lastWarn time.Time // the last line about a failing store

	tried      map[wal.LSN]bool // resume points the server no longer had
	reported   wal.LSN
	lastStatus time.Time
	serverEnd  wal.LSN
	stored     int64        // pieces stored, for the log
	segsStored atomic.Int64 // segments stored whole
}

// Run receives until ctx ends, then stores what it received and returns
// nil (an error when that failed: the slot keeps the rest on the server).
// Connections that fail are made again; it returns early only for an
// error matching ErrRefused or a repository that refuses the writes.
func Run(ctx context.Context, r *repo.Repo, o Options) error {
	if err := o.defaults(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// The unfinished segment's pieces are read back when the receiver
	// starts again: in an encrypted repository it needs --identity too.
	if err := r.CheckReadsBack(); err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	io, cancelIO := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelIO()
	rc := &receiver{r: r, o: o, log: logx.Or(o.Log), io: io,
		putDone: make(chan putResult, o.Parallel), foldDone: make(chan foldResult, 1)}
	err := rc.loop(ctx)
	stopErr := rc.stop(cancelIO)
	if err != nil {
		return err
	}
	return stopErr
}

// tick is how often the loop looks at its timers.
const tick = 50 * time.Millisecond

func (rc *receiver) loop(ctx context.Context) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	var nextConnect time.Time
	backoff := time.Second
	lastFlush := time.Now()
	for {
		if rc.conn == nil && !time.Now().Before(nextConnect) {
			err := rc.connect(ctx)
			switch {
			case ctx.Err() != nil:
				return nil
			case isRefused(err):
				return err
			case err != nil:
				rc.log.Warn("cannot stream from the server; trying again", "in", backoff, "err", err)
				nextConnect = time.Now().Add(backoff)
				backoff = min(2*backoff, 30*time.Second)
			default:
				backoff = time.Second
			}
		}
		var msgs chan item
		if rc.conn != nil && !rc.full() {
			msgs = rc.msgs
		}
		select {
		case <-ctx.Done():
			return nil
		case it := <-msgs:
			if err := rc.handle(ctx, it); err != nil {
				if isRefused(err) {
					return err
				}
				rc.log.Warn("the stream ended; connecting again", "err", err)
				rc.disconnect()
				nextConnect = time.Now().Add(time.Second)
			}
		case res := <-rc.putDone:
			rc.piecePut(res)
		case res := <-rc.foldDone:
			rc.folded(res)
		case <-t.C:
			if !rc.o.Synchronous && time.Since(lastFlush) >= rc.o.FlushInterval {
				rc.flush()
				lastFlush = time.Now()
			}
			rc.dispatch()
			rc.startFold()
			if rc.conn != nil && time.Since(rc.lastStatus) >= rc.o.StatusInterval {
				rc.status(false)
			}
		}
	}
}

// full reports whether memory holds as much unstored WAL as it may.
func (rc *receiver) full() bool {
	if rc.segs == nil {
		return false
	}
	b, n := rc.segs.unstored()
	return b >= maxUnstored || n >= maxSegments
}

// handle takes one message of the stream.
func (rc *receiver) handle(ctx context.Context, it item) error {
	if it.err != nil {
		var end *pgserver.EndOfTimeline
		if errors.As(it.err, &end) {
			return rc.nextTimeline(ctx, end)
		}
		if gone(it.err) {
			if err := rc.fillOrSkip(ctx); err != nil {
				return err
			}
		}
		return it.err
	}
	m := it.msg
	rc.serverEnd = max(rc.serverEnd, m.ServerEnd)
	if m.Data == nil {
		if m.ReplyRequested {
			rc.status(false)
		}
		return nil
	}
	completed, err := rc.segs.add(m.Start, m.Data)
	if err != nil {
		return err
	}
	if !rc.claimed {
		if err := rc.claim(); err != nil {
			return err
		}
	}
	if !rc.o.Synchronous {
		// Stored whole at once: no pieces for what a segment holds.
		for _, b := range completed {
			rc.startFoldOf(b)
		}
		return nil
	}
	if len(rc.msgs) == 0 {
		rc.flush() // all that arrived so far, in as few pieces as it takes
	}
	rc.startFold()
	return nil
}

// flush cuts what was received into pieces and sends them to the store.
func (rc *receiver) flush() {
	if rc.segs == nil || !rc.claimed {
		return
	}
	rc.queue = append(rc.queue, rc.segs.pieces()...)
	rc.dispatch()
}

// status sends a status update: durable as flushed.
func (rc *receiver) status(replyRequested bool) {
	if rc.conn == nil || rc.segs == nil {
		return
	}
	if err := pgserver.SendStatus(rc.conn, rc.segs.recvEnd, rc.segs.durable, replyRequested); err != nil {
		rc.log.Debug("sending a status update failed", "err", err)
		return
	}
	rc.reported, rc.lastStatus = rc.segs.durable, time.Now()
}

// stop stores what was received (within StopTimeout), reports it to the
// server, and closes the connection.
func (rc *receiver) stop(cancelIO context.CancelFunc) error {
	defer rc.disconnect()
	if rc.segs == nil {
		return nil
	}
	deadline := time.NewTimer(rc.o.StopTimeout)
	defer deadline.Stop()
	t := time.NewTicker(tick)
	defer t.Stop()
	rc.flush()
	for rc.inFlight > 0 || len(rc.queue) > 0 || rc.folding {
		select {
		case res := <-rc.putDone:
			rc.piecePut(res)
		case res := <-rc.foldDone:
			rc.folded(res)
		case <-t.C:
			rc.dispatch()
		case <-deadline.C:
			cancelIO()
			for rc.inFlight > 0 || rc.folding {
				select {
				case res := <-rc.putDone:
					rc.piecePut(res)
				case res := <-rc.foldDone:
					rc.folded(res)
				}
			}
			rc.queue = nil
		}
	}
	rc.status(false)
	if b, _ := rc.segs.unstored(); b > 0 {
		return fmt.Errorf("stopped with %d bytes received but not stored, from %s on timeline %d (the slot keeps them on the server)",
			b, rc.segs.durable, rc.segs.tli)
	}
	rc.log.Info("stopped", "timeline", rc.segs.tli, "durable", rc.segs.durable, "pieces", rc.stored, "segments", rc.segsStored.Load())
	return nil
}

// refused marks an error that ends the receiver.
type refused struct{ err error }

func (e refused) Error() string   { return e.err.Error() }
func (e refused) Unwrap() []error { return []error{e.err, ErrRefused} }

func isRefused(err error) bool { return err != nil && errors.Is(err, ErrRefused) }
