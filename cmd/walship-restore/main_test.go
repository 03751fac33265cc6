package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/wal"
)

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
		{"read error, abort", &restore.ReadError{Err: storageDown, Abort: true}, exitAbort},
		{"read error, missing", &restore.ReadError{Err: storageDown, Abort: false}, exitNotFound},
		{"corrupt object, abort", &restore.ReadError{Err: &repo.CorruptError{Key: "k", Reason: "checksum"}, Abort: true}, exitAbort},
		{"wrapped read error", fmt.Errorf("context: %w", &restore.ReadError{Err: storageDown, Abort: true}), exitAbort},
		{"no repository, abort", &restore.ReadError{Err: repo.ErrNoRepository, Abort: true}, exitAbort},
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

// A %f that is not a WAL file name is a usage error, answered before the
// repository is looked at, and nothing is written to %p.
func TestBadNames(t *testing.T) {
	const good = "000000010000000000000003"
	root := filepath.Join(t.TempDir(), "nowhere") // would be a read error if it were looked at
	pgwal := t.TempDir()
	for _, bad := range []string{"", "../x", "../" + good, "pg_wal/" + good, good + ".lz4", "00000001000000000000000a", "RECOVERYXLOG"} {
		err := cliutil.Run(context.Background(), newApp(), "--repo", root, bad, filepath.Join(pgwal, "RECOVERYXLOG"))
		if !errors.Is(err, restore.ErrInvalid) || !errors.Is(err, wal.ErrBadName) {
			t.Errorf("%q: %v, want ErrInvalid and wal.ErrBadName", bad, err)
		}
		if code := exitCode(err); code != exitAbort {
			t.Errorf("%q: exit %d, want %d (a misconfigured restore_command must not end recovery)", bad, code, exitAbort)
		}
	}
	if entries, _ := os.ReadDir(pgwal); len(entries) != 0 {
		t.Errorf("pg_wal holds %d files, want none", len(entries))
	}
}

func TestConfigKeysListed(t *testing.T) {
	if missing := cliutil.ConfigFlagsUnlisted(newApp().Flags); len(missing) > 0 {
		t.Errorf("settings a config file can hold but cliutil does not list: %v", missing)
	}
}
