package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/archive"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// A %f that is not a WAL file name is refused before any I/O: the
// repository is not even created.
func TestBadNames(t *testing.T) {
	const good = "000000010000000000000001"
	n, _ := wal.ParseName(good)
	path := filepath.Join(t.TempDir(), good)
	if err := os.WriteFile(path, waltest.FakeSegment(n, 7229286521432618453, 1<<20, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		"",
		"../x",
		"../" + good,
		"pg_wal/" + good,
		"/tmp/" + good,
		"00000001000000000000000a",
		good + ".lz4",
		good + ".tmp",
		"RECOVERYXLOG",
		"walship.json",
		"archive_status",
	} {
		t.Run(bad, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "repo")
			// %p exists and is a valid segment: only the name is wrong.
			err := cliutil.Run(context.Background(), newApp(), "--repo", root, path, bad)
			if !errors.Is(err, archive.ErrInvalid) || !errors.Is(err, wal.ErrBadName) {
				t.Errorf("%q: %v, want ErrInvalid and wal.ErrBadName", bad, err)
			}
			if code := exitCode(err); code != exitUsage {
				t.Errorf("%q: exit %d, want %d (called wrongly)", bad, code, exitUsage)
			}
			if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the repository was touched: %v", err)
			}
		})
	}
}

func TestConfigKeysListed(t *testing.T) {
	if missing := cliutil.ConfigFlagsUnlisted(newApp().Flags); len(missing) > 0 {
		t.Errorf("settings a config file can hold but cliutil does not list: %v", missing)
	}
}
