package warmstandby

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/walship/walship/internal/logx"
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
	// Log receives the wait's messages (nil: none).
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
	o.Log = logx.Or(o.Log)
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
	// Branched: a newer timeline in the repository left the segment's
	// timeline at or before the segment: the server follows it once told
	// the segment is not there (recovery_target_timeline = 'latest').
	Branched
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
