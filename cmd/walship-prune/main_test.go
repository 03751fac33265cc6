package main

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/prune"
)

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0": 0, "90m": 90 * time.Minute, "36h": 36 * time.Hour, "7d": 7 * 24 * time.Hour,
		"2w": 14 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1w2d": 9 * 24 * time.Hour, " 3d ": 72 * time.Hour,
	} {
		got, err := cliutil.ParseAge(in)
		if err != nil || got != want {
			t.Errorf("cliutil.ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "7", "7x", "1.5d", "-3h", "7d-1h", "99999999d", "week"} {
		if got, err := cliutil.ParseAge(in); err == nil {
			t.Errorf("cliutil.ParseAge(%q) = %v, want an error", in, got)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{cliutil.UsageError{Err: errors.New("bad flag")}, exitUsage},
		{prune.ErrNoPolicy, exitUsage},
		{fmt.Errorf("%w: other cluster", prune.ErrRefused), exitFailed},
		{&prune.DeleteError{Failed: []string{"k"}, Err: errors.New("denied")}, exitFailed},
		{errors.New("storage down"), exitFailed},
	} {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestConfigKeysListed(t *testing.T) {
	if missing := cliutil.ConfigFlagsUnlisted(newApp().Flags); len(missing) > 0 {
		t.Errorf("settings a config file can hold but cliutil does not list: %v", missing)
	}
}
