package check

import (
	"testing"
	"time"
)

// The receiver's finding from what the server says of its slot and
// walsender: connected and caught up is OK with its lag and the WAL its
// slot keeps; lagging past --max-age, disconnected, or a slot that lost
// WAL is CRITICAL; a slot about to lose WAL a WARNING; no slot CRITICAL.
func TestReceiverFinding(t *testing.T) {
	o := Options{Slot: "walship", MaxAge: 20 * time.Second}
	connected := func() *Receiver {
		return &Receiver{Slot: "walship", Exists: true, Connected: true, AppName: "walship", State: "streaming", SyncState: "sync",
			LagBytes: 8192, LagSeconds: 0.004, Retained: 3 << 20, WALStatus: "reserved"}
	}
	check := func(rc *Receiver) *Report {
		rep := &Report{Server: &Server{Receiver: rc}, Time: now}
		checkReceiver(rep, o)
		return rep
	}
	want(t, check(connected()), "receiver", OK, "connected (walship, sync, slot walship)", "8.0 KiB (4ms) not yet in the repository", "keeps 3.0 MiB")
	rc := connected()
	rc.LagSeconds = 25
	want(t, check(rc), "receiver", Critical, "lags", "(25s)")
	rc = connected()
	rc.WALStatus = "unreserved"
	want(t, check(rc), "receiver", Warning, "about to lose WAL")
	rc = connected()
	rc.WALStatus = "lost"
	want(t, check(rc), "receiver", Critical, "lost WAL", "max_slot_wal_keep_size")
	rc = connected()
	rc.Connected, rc.LagBytes = false, 1<<20
	want(t, check(rc), "receiver", Critical, "not connected (slot walship)", "1.0 MiB")
	want(t, check(&Receiver{Slot: "walship"}), "receiver", Critical, "does not exist", "--create-slot")
}
