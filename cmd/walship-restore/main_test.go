package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/repo"
)

// dataDirWith makes a data directory holding the given files.
func dataDirWith(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestAbortOnError(t *testing.T) {
	standby := dataDirWith(t, map[string]string{"standby.signal": ""})
	recovery := dataDirWith(t, map[string]string{"recovery.signal": ""})
	oldStandby := dataDirWith(t, map[string]string{"recovery.conf": "standby_mode = 'on'\n"})
	tests := []struct {
		policy, dataDir string
		want            bool
	}{
		{"abort", standby, true},
		{"abort", recovery, true},
		{"missing", standby, false},
		{"missing", recovery, false},
		{"auto", standby, false}, // the server retries: "not found" is right
		{"auto", oldStandby, false},
		{"auto", recovery, true}, // archive recovery would end early and lose the tail
		{"", standby, false},
		{"", recovery, true},
	}
	for _, tt := range tests {
		got, err := abortOnError(tt.policy, tt.dataDir)
		if err != nil || got != tt.want {
			t.Errorf("abortOnError(%q, %s) = %v, %v; want %v", tt.policy, filepath.Base(tt.dataDir), got, err, tt.want)
		}
	}
	for _, bad := range []string{"fail", "Abort", "ignore", "1"} {
		if _, err := abortOnError(bad, standby); err == nil {
			t.Errorf("abortOnError(%q) = nil error", bad)
		}
	}
}

func TestExitCode(t *testing.T) {
	notFound := fmt.Errorf("open 000000010000000000000009: %w", fs.ErrNotExist)
	storageDown := errors.New("connection refused")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"restored", nil, exitOK},
		{"not in the archive", cliutil.Quiet{Err: notFound}, exitNotFound},
		{"not found, bare", notFound, exitNotFound},
		{"read error, abort", readError{err: storageDown, abort: true}, exitAbort},
		{"read error, missing", readError{err: storageDown, abort: false}, exitNotFound},
		{"corrupt object, abort", readError{err: &repo.CorruptError{Key: "k", Reason: "checksum"}, abort: true}, exitAbort},
		{"wrapped read error", fmt.Errorf("context: %w", readError{err: storageDown, abort: true}), exitAbort},
		{"no repository, abort", readError{err: repo.ErrNoRepository, abort: true}, exitAbort},
		{"usage error", cliutil.UsageError{Err: errors.New("expected 2 arguments")}, exitAbort},
		{"anything else", errors.New("surprise"), exitAbort},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestExitStatusesMeanWhatPostgreSQLReads(t *testing.T) {
	// Above 125 PostgreSQL aborts recovery; 1 to 125 means "not found".
	if exitAbort <= 125 || exitAbort > 255 {
		t.Errorf("exitAbort = %d, want 126..255", exitAbort)
	}
	if exitNotFound < 1 || exitNotFound > 125 {
		t.Errorf("exitNotFound = %d, want 1..125", exitNotFound)
	}
}

func TestReadErrorMessage(t *testing.T) {
	cause := errors.New("connection refused")
	for abort, want := range map[bool]string{true: "aborting recovery", false: "not found"} {
		e := readError{err: cause, abort: abort}
		if msg := e.Error(); !strings.Contains(msg, cause.Error()) || !strings.Contains(msg, want) {
			t.Errorf("readError{abort: %v} = %q, want the cause and %q", abort, msg, want)
		}
		if !errors.Is(e, cause) {
			t.Errorf("readError{abort: %v} does not unwrap to its cause", abort)
		}
	}
}
