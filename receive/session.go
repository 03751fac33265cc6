package receive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// One connection to the server: identify it, check it against the
// repository, store its timeline history, find where to start, and read
// its stream in a goroutine of its own.

type item struct {
	msg pgserver.Message
	err error
}

// connect connects and starts the stream.
func (rc *receiver) connect(ctx context.Context) error {
	conn, sys, err := pgserver.ConnectReplicationWith(ctx, rc.o.ConnString, pgserver.ConnectOptions{AppName: rc.o.AppName})
	if err != nil {
		return err
	}
	rc.conn, rc.sys = conn, sys
	if err := rc.begin(ctx); err != nil {
		rc.disconnect()
		return err
	}
	return nil
}

// begin prepares the stream on a new connection and starts it.
func (rc *receiver) begin(ctx context.Context) error {
	v, err := pgserver.Show(ctx, rc.conn, "wal_segment_size")
	if err != nil {
		return err
	}
	segSize, err := pgserver.ParseSize(v)
	if err != nil {
		return fmt.Errorf("the server's wal_segment_size %q: %w", v, err)
	}
	if err := rc.checkRepo(ctx, segSize); err != nil {
		return err
	}
	if rc.o.Synchronous {
		if names, err := pgserver.Show(ctx, rc.conn, "synchronous_standby_names"); err == nil && !strings.Contains(strings.ToLower(names), strings.ToLower(rc.o.AppName)) {
			rc.log.Warn("synchronous_standby_names does not name this receiver: commits do not wait for it", "application_name", rc.o.AppName, "synchronous_standby_names", names)
		}
	}
	hist, err := rc.storeHistory(ctx, rc.sys.Timeline)
	if err != nil {
		return err
	}
	if rc.o.CreateSlot {
		if err := pgserver.CreatePhysicalSlot(ctx, rc.conn, rc.o.Slot); err == nil {
			rc.log.Info("replication slot created", "slot", rc.o.Slot)
		} else if !errors.Is(err, pgserver.ErrSlotExists) {
			return err
		}
	}
	if err := rc.position(ctx, hist, segSize); err != nil {
		return err
	}
	return rc.startStream(ctx)
}

// checkRepo refuses a repository of another cluster, or one this receiver
// may not write (layout, encryption, format).
func (rc *receiver) checkRepo(ctx context.Context, segSize uint32) error {
	if err := rc.r.CheckWritable(ctx); err != nil {
		if errors.Is(err, repo.ErrMismatch) || errors.Is(err, repo.ErrEncryption) || errors.Is(err, repo.ErrOldFormat) || errors.Is(err, storage.ErrNotOwner) {
			return refused{err}
		}
		return err
	}
	id, ok, err := rc.r.Identity(ctx)
	if err != nil {
		return err
	}
	server := wal.Cluster{SystemID: rc.sys.SystemID, SegSize: segSize}
	if ok {
		if err := id.Cluster().Check("the server's WAL", server, "the repository "+rc.r.String()); err != nil {
			return refused{err}
		}
		if id.Layout == repo.LayoutPlain {
			return refused{fmt.Errorf("%w: %s", repo.ErrNoStreamLayout, rc.r)}
		}
	} else if rc.r.Layout() == repo.LayoutPlain {
		return refused{fmt.Errorf("%w: %s", repo.ErrNoStreamLayout, rc.r)}
	}
	if rc.segs != nil && rc.segs.segSize != segSize {
		return refused{fmt.Errorf("the server's segment size changed from %d to %d", rc.segs.segSize, segSize)}
	}
	return nil
}

// storeHistory stores the history files of tli and its ancestors, as
// archive_command stores them (before any WAL of those timelines), and
// returns tli's history (empty for timeline 1).
func (rc *receiver) storeHistory(ctx context.Context, tli uint32) (wal.History, error) {
	if tli <= 1 {
		return wal.History{Timeline: tli}, nil
	}
	var hist wal.History
	for t := tli; t > 1; t-- {
		n, content, err := pgserver.TimelineHistory(ctx, rc.conn, t)
		if err != nil {
			if t == tli {
				return wal.History{}, err
			}
			rc.log.Warn("the server has no history file of an ancestor timeline", "timeline", t, "err", err)
			continue
		}
		h, err := wal.ParseHistory(t, bytes.NewReader(content))
		if err != nil {
			return wal.History{}, fmt.Errorf("the server's %s: %w", n, err)
		}
		if t == tli {
			hist = h
		} else if !hist.Contains(t) {
			continue
		}
		if _, err := repo.ParseText(n, content, nil); err != nil {
			return wal.History{}, fmt.Errorf("the server's %s: %w", n, err)
		}
		if _, err := rc.r.Put(rc.io, n, content); err != nil {
			if errors.Is(err, repo.ErrDifferent) {
				return wal.History{}, refused{fmt.Errorf("%s is in the repository with other content than the server's: %w", n, err)}
			}
			return wal.History{}, fmt.Errorf("storing %s: %w", n, err)
		}
	}
	return hist, nil
}

// startStream asks for the stream where the receiver is, following the
// timelines the server switched to since.
func (rc *receiver) startStream(ctx context.Context) error {
	for {
		err := pgserver.StartStream(ctx, rc.conn, rc.o.Slot, rc.segs.tli, rc.segs.recvEnd)
		var end *pgserver.EndOfTimeline
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &end):
			if err := rc.switchTimeline(ctx, end); err != nil {
				return err
			}
			continue
		case gone(err):
			if err := rc.fillOrSkip(ctx); err != nil {
				return err
			}
			continue
		case errors.As(err, &pgErr) && pgErr.Code == "42704": // undefined_object: no such slot
			return refused{fmt.Errorf("%w (create it, or give --create-slot)", err)}
		case err != nil:
			return err
		}
		rc.log.Info("streaming", "timeline", rc.segs.tli, "from", rc.segs.recvEnd, "slot", rc.o.Slot, "synchronous", rc.o.Synchronous)
		rc.msgs, rc.stopRd = make(chan item, 64), make(chan struct{})
		go read(rc.conn, rc.msgs, rc.stopRd)
		rc.status(false)
		return nil
	}
}

// read forwards the stream's messages until an error, which it forwards
// too, or until stop is closed.
func read(conn *pgconn.PgConn, out chan<- item, stop <-chan struct{}) {
	for {
		m, err := pgserver.ReadMessage(context.Background(), conn)
		select {
		case out <- item{m, err}:
		case <-stop:
			return
		}
		if err != nil {
			return
		}
	}
}

// nextTimeline follows the server from a timeline that ended to the next
// one, on the same connection.
func (rc *receiver) nextTimeline(ctx context.Context, end *pgserver.EndOfTimeline) error {
	close(rc.stopRd)
	rc.msgs, rc.stopRd = nil, nil
	if end.Next == 0 {
		return end
	}
	if err := rc.switchTimeline(ctx, end); err != nil {
		return err
	}
	return rc.startStream(ctx)
}

// switchTimeline ends the timeline being received and makes ready for the
// next one, whose history file it stores first.
func (rc *receiver) switchTimeline(ctx context.Context, end *pgserver.EndOfTimeline) error {
	if end.Next <= rc.segs.tli {
		return fmt.Errorf("the server ended timeline %d without a newer one (%v)", rc.segs.tli, end)
	}
	if _, err := rc.storeHistory(ctx, end.Next); err != nil {
		return err
	}
	rc.log.Info("timeline switch", "from", rc.segs.tli, "to", end.Next, "at", end.Start)
	rc.segs.endTimeline()
	rc.flush()
	rc.segs.startAt(end.Next, end.Start-wal.LSN(uint64(end.Start)%uint64(rc.segs.segSize)))
	return nil
}

// disconnect closes the connection (its reader then ends).
func (rc *receiver) disconnect() {
	if rc.conn == nil {
		return
	}
	if rc.stopRd != nil {
		close(rc.stopRd)
		rc.stopRd = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	rc.conn.Close(ctx)
	cancel()
	rc.conn, rc.msgs = nil, nil
}
