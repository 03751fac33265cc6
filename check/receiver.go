package check

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/wal"
)

// The receiver (walship receive), as the server sees it: its slot
// (pg_replication_slots) and, while it is connected, its walsender
// (pg_stat_replication). It reports as flushed only what is durable in the
// repository, so the server's own view of it is the answer: the bytes
// between the server's flush position and the receiver's flushed one are
// what the repository lacks, and flush_lag how long the newest of them has
// waited. Disconnected, the slot keeps the WAL and its restart_lsn is what
// the repository holds; how long the repository has lacked it is then told
// by the time the newest streamed data was stored.

// Receiver is what the server says of the receiver's slot and connection.
type Receiver struct {
	Slot      string `json:"slot"`
	Exists    bool   `json:"exists"`
	Connected bool   `json:"connected"`
	// AppName, State and SyncState are pg_stat_replication's
	// (application_name, state, sync_state) while connected.
	AppName   string `json:"application_name,omitempty"`
	State     string `json:"state,omitempty"`
	SyncState string `json:"sync_state,omitempty"`
	// Durable is what the receiver reported flushed (connected) or the
	// slot's restart_lsn; ServerFlush the server's flush position.
	Durable     wal.LSN `json:"-"`
	ServerFlush wal.LSN `json:"-"`
	// LagBytes is ServerFlush - Durable; LagSeconds how long the oldest of
	// those bytes waits (flush_lag; without a connection, since the newest
	// streamed data was stored; 0 without lag).
	LagBytes   int64   `json:"lag_bytes"`
	LagSeconds float64 `json:"lag_seconds"`
	// Retained is the WAL the slot keeps on the server (from its
	// restart_lsn to the current position); WALStatus pg_replication_slots'
	// wal_status (reserved, extended, unreserved, lost).
	Retained  int64  `json:"retained_bytes"`
	WALStatus string `json:"wal_status,omitempty"`
}

// readReceiver reads the receiver's slot and walsender.
func readReceiver(ctx context.Context, conn *pgx.Conn, slot string) (*Receiver, error) {
	rc := &Receiver{Slot: slot}
	var restart, flushed, serverFlush *string
	var appName, state, syncState, walStatus *string
	var lag *float64
	var retained *int64
	err := conn.QueryRow(ctx, `SELECT s.active, s.restart_lsn::text, r.flush_lsn::text, extract(epoch FROM r.flush_lag)::float8,
			r.application_name, r.state, r.sync_state, s.wal_status,
			(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_flush_lsn() END)::text,
			pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint
		FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
		WHERE s.slot_name = $1 AND s.slot_type = 'physical'`, slot).
		Scan(&rc.Connected, &restart, &flushed, &lag, &appName, &state, &syncState, &walStatus, &serverFlush, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return rc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the replication slot %s: %w", slot, err)
	}
	rc.Exists = true
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	rc.AppName, rc.State, rc.SyncState, rc.WALStatus = str(appName), str(state), str(syncState), str(walStatus)
	rc.Connected = rc.Connected && state != nil
	durable := str(restart)
	if rc.Connected && flushed != nil {
		durable = *flushed
	}
	if durable != "" {
		if rc.Durable, err = wal.ParseLSN(durable); err != nil {
			return nil, err
		}
	}
	if serverFlush != nil {
		if rc.ServerFlush, err = wal.ParseLSN(*serverFlush); err != nil {
			return nil, err
		}
	}
	if rc.Durable != 0 && rc.ServerFlush > rc.Durable {
		rc.LagBytes = int64(rc.ServerFlush - rc.Durable)
	}
	if lag != nil {
		rc.LagSeconds = *lag
	}
	if retained != nil {
		rc.Retained = *retained
	}
	return rc, nil
}

// checkReceiver makes the receiver's finding, once the repository is
// scanned (the time of its newest streamed data).
func checkReceiver(rep *Report, o Options) {
	s := rep.Server
	if o.Slot == "" || s == nil {
		return
	}
	rc := s.Receiver
	if s.ReceiverErr != nil || rc == nil {
		rep.add("receiver", Unknown, "cannot read the receiver's slot %s: %v", o.Slot, s.ReceiverErr)
		return
	}
	if !rc.Exists {
		rep.add("receiver", Critical, "the replication slot %s of walship receive does not exist on the server: nothing is streamed (walship receive --create-slot makes it)", rc.Slot)
		return
	}
	if !rc.Connected && rc.LagBytes > 0 && rep.Catalog != nil {
		if t, ok := rep.Catalog.NewestStreamed(); ok {
			rc.LagSeconds = max(0, rep.Time.Sub(t.Newest).Seconds())
		}
	}
	lag := fmt.Sprintf("%s (%s) not yet in the repository", progress.Bytes(rc.LagBytes), (time.Duration(rc.LagSeconds * float64(time.Second))).Round(time.Millisecond))
	held := fmt.Sprintf("the slot keeps %s of WAL on the server", progress.Bytes(rc.Retained))
	switch {
	case rc.WALStatus == "lost":
		rep.add("receiver", Critical, "the slot %s lost WAL the repository lacks (wal_status lost, max_slot_wal_keep_size): walship receive cannot resume without a gap; archive_command must fill it", rc.Slot)
	case !rc.Connected:
		rep.add("receiver", Critical, "walship receive is not connected (slot %s): %s; %s", rc.Slot, lag, held)
	case rc.LagSeconds > o.MaxAge.Seconds():
		rep.add("receiver", Critical, "walship receive (%s, %s) lags: %s; %s", rc.AppName, rc.SyncState, lag, held)
	case rc.WALStatus == "unreserved":
		rep.add("receiver", Warning, "the slot %s is about to lose WAL (wal_status unreserved): %s", rc.Slot, lag)
	default:
		rep.add("receiver", OK, "walship receive is connected (%s, %s, slot %s): %s; %s", rc.AppName, rc.SyncState, rc.Slot, lag, held)
	}
}
