package rewind

import (
	"errors"

	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/pgserver"
)

// Step names, as they appear in errors and progress lines.
const (
	StepTarget  = "check target"
	StepTools   = "find PostgreSQL tools"
	StepSource  = "check source"
	StepRepo    = "check repository"
	StepRewind  = "pg_rewind"
	StepConfig  = "keep target configuration"
	StepStandby = "write standby configuration"
	StepStart   = "start target"
)

// Sentinels that StepError wraps, for callers (and tests) that need to tell
// the reasons apart with errors.Is.
var (
	ErrNotDataDir = pgdata.ErrNotDataDir
	ErrRunning    = errors.New("target server is running")
	ErrOwner      = errors.New("not the data directory's owner")
	ErrNoHints    = errors.New("target has neither data checksums nor wal_log_hints = on")
	// ErrVersion: the PostgreSQL versions do not fit (pgserver's error).
	ErrVersion = pgserver.ErrVersion
	// ErrUnreachable: the source cannot be connected to (pgserver's error).
	ErrUnreachable  = pgserver.ErrUnreachable
	ErrTargetAhead  = errors.New("target is ahead of the source on the same timeline")
	ErrRepo         = errors.New("repository unusable for this target")
	ErrRewindFailed = errors.New("pg_rewind failed")
	ErrInterrupted  = errors.New("interrupted")
	ErrNotStreaming = errors.New("target does not stream from the source")
)

// StepError is a failure of one step of the failback. Its message names the
// step, what went wrong and what to do next, on one line.
type StepError struct {
	Step string
	Err  error
	Next string // what the operator should do now
	// Changed is true when the target's data files were already modified
	// when the step failed (pg_rewind passed its point of no return): the
	// data directory is then probably unusable.
	Changed bool
}

func (e *StepError) Error() string {
	s := e.Step + ": " + e.Err.Error()
	if e.Next != "" {
		s += "; " + e.Next
	}
	return s
}

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(step string, err error, next string) *StepError {
	return &StepError{Step: step, Err: err, Next: next}
}
