package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestPermissions(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	storagetest.Put(t, b, "wal/x/y", []byte("z"))
	fi, err := os.Stat(filepath.Join(b.Root(), "wal", "x", "y"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	di, _ := os.Stat(filepath.Join(b.Root(), "wal", "x"))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
	}
}

func TestTempFilesAreInvisible(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	storagetest.Put(t, b, "d/real", []byte("1"))
	// What a writer killed before its rename leaves behind, and an rsync
	// partial copy.
	for _, n := range []string{".real2.tmp-123", ".000000010000000000000001.AbCdEf"} {
		if err := os.WriteFile(filepath.Join(b.Root(), "d", n), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := storagetest.Keys(t, b, ""); strings.Join(got, ",") != "d/real" {
		t.Fatalf("List = %v, want only d/real", got)
	}
}

func TestOpenViaURL(t *testing.T) {
	dir := t.TempDir()
	for _, loc := range []string{dir, "file://" + dir} {
		b, err := storage.Open(context.Background(), loc, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", loc, err)
		}
		if b.String() != dir {
			t.Errorf("Open(%q) is rooted at %q, want %q", loc, b.String(), dir)
		}
	}
	if _, err := storage.Open(context.Background(), "gopher://x/y", nil); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Errorf("unknown scheme: got %v", err)
	}
}
