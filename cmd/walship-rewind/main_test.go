package main

import (
	"errors"
	"testing"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/rewind"
	"github.com/walship/walship/wal"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{cliutil.UsageError{Err: errors.New("no target")}, exitUsage},
		{&rewind.StepError{Step: rewind.StepSource, Err: wal.ErrOtherCluster}, exitFailed},
		{&rewind.StepError{Step: rewind.StepRewind, Err: rewind.ErrRewindFailed}, exitFailed},
		{&rewind.StepError{Step: rewind.StepRewind, Err: rewind.ErrRewindFailed, Changed: true}, exitDamaged},
		{&rewind.StepError{Step: rewind.StepStandby, Err: errors.New("disk full")}, exitNotStandby},
		{&rewind.StepError{Step: rewind.StepStart, Err: rewind.ErrNotStreaming}, exitNotStandby},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestConfigKeysListed(t *testing.T) {
	if missing := cliutil.ConfigFlagsUnlisted(newApp().Flags); len(missing) > 0 {
		t.Errorf("settings a config file can hold but cliutil does not list: %v", missing)
	}
}
