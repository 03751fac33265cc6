package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/walship/walship/internal/cliutil"
)

func TestConfigKeysListed(t *testing.T) {
	for _, c := range newApp().Commands {
		if missing := cliutil.ConfigFlagsUnlisted(c.Flags); len(missing) > 0 {
			t.Errorf("walship %s: settings a config file can hold but cliutil does not list: %v", c.Name, missing)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{cliutil.UsageError{Err: errors.New("ls takes no arguments")}, 2},
		{problemsError(3), 1},
		{fmt.Errorf("wrapped: %w", problemsError(1)), 1},
		{errors.New("no walship repository at /nowhere"), 1}, // unreadable: 1, as for every program (was 3)
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
