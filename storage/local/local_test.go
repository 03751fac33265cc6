package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/atomicfile"
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

// The same contract where the filesystem has no unnamed files: named
// temporary files and a rename that refuses to replace.
func TestConformanceNamedTemporaryFiles(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := New(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		b.named.Store(true)
		return b
	})
}

// A put whose object is in place leaves nothing else in its directory,
// and a put onto a taken name neither replaces it nor leaves anything,
// small (learnt when linked) or large (learnt before writing).
func TestPutLeavesNothingBeside(t *testing.T) {
	for _, named := range []bool{false, true} {
		b, _ := New(filepath.Join(t.TempDir(), "repo"))
		b.named.Store(named)
		storagetest.Put(t, b, "d/small", []byte("1"))
		storagetest.Put(t, b, "d/large", make([]byte, smallPut+1))
		for _, c := range []struct {
			key  string
			size int
		}{{"d/small", 10}, {"d/large", smallPut + 10}} {
			err := b.Put(context.Background(), c.key, strings.NewReader(strings.Repeat("x", c.size)), int64(c.size))
			if !storage.IsExist(err) {
				t.Errorf("named %v: a put onto the taken %s: %v, want it refused as existing", named, c.key, err)
			}
		}
		ents, _ := os.ReadDir(filepath.Join(b.Root(), "d"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if strings.Join(names, ",") != "large,small" {
			t.Errorf("named %v: the directory holds %v, want large and small only", named, names)
		}
		if got, _ := os.ReadFile(filepath.Join(b.Root(), "d", "small")); string(got) != "1" {
			t.Errorf("named %v: d/small holds %q after a refused put", named, got)
		}
	}
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
		b, err := storage.Open(context.Background(), loc, nil, nil)
		if err != nil {
			t.Fatalf("Open(%q): %v", loc, err)
		}
		if b.String() != dir {
			t.Errorf("Open(%q) is rooted at %q, want %q", loc, b.String(), dir)
		}
	}
	if _, err := storage.Open(context.Background(), "gopher://x/y", nil, nil); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Errorf("unknown scheme: got %v", err)
	}
	// Locations that would silently name another directory than meant.
	for loc, want := range map[string]string{
		"file://tmp/x":    "file:///tmp/x", // the host "tmp", the path /x
		"file:relx":       "file://",       // a directory called "file:relx"
		"FILE:relx":       "file://",       // likewise
		"file://host/dir": "three slashes", // any host
		"file://":         "no directory",  // nothing at all
		"file:///x?y=1":   "no query",      // settings are not in the URL
	} {
		if _, err := storage.Open(context.Background(), loc, nil, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", loc, err, want)
		}
	}
	if b, err := storage.Open(context.Background(), "file://localhost"+dir, nil, nil); err != nil || b.String() != dir {
		t.Errorf("Open(file://localhost%s) = %v, %v", dir, b, err)
	}
}

// Temporary files a killed writer left are swept once stale: by the next
// writer's put into their directory, and by Sweep everywhere; fresh ones (a write
// under way) are left alone.
func TestSweep(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	storagetest.Put(t, b, "wal/a/x", []byte("x"))
	storagetest.Put(t, b, "wal/b/y", []byte("y"))
	old := time.Now().Add(-2 * atomicfile.StaleAfter)
	leave := func(dir, name string, stale bool) string {
		p := filepath.Join(b.Root(), dir, name)
		os.WriteFile(p, make([]byte, 100), 0o600)
		if stale {
			os.Chtimes(p, old, old)
		}
		return p
	}
	staleA := leave("wal/a", ".x2.tmp-1", true)
	fresh := leave("wal/a", ".x3.tmp-2", false)
	staleB := leave("wal/b", ".y2.tmp-3", true)
	if n, bytes, err := b.Sweep(context.Background(), false); err != nil || n != 2 || bytes != 200 {
		t.Errorf("Sweep(count) = %d, %d, %v; want 2, 200", n, bytes, err)
	}
	// The next archive_command call: a new process, a new backend.
	b, _ = New(b.Root())
	storagetest.Put(t, b, "wal/a/z", []byte("z"))
	if _, err := os.Stat(staleA); !os.IsNotExist(err) {
		t.Errorf("a put left a stale temporary file beside it: %v", err)
	}
	if _, err := os.Stat(staleB); err != nil {
		t.Errorf("a put swept another directory: %v", err)
	}
	if n, _, err := b.Sweep(context.Background(), true); err != nil || n != 1 {
		t.Errorf("Sweep(remove) = %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(staleB); !os.IsNotExist(err) {
		t.Errorf("Sweep left %s: %v", staleB, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}

// A long-running writer (walship receive stores a piece at every commit,
// thousands side by side) sweeps a directory at most once a sweepEvery,
// not at every put: a sweep reads every name in the directory.
func TestPutSweepsADirectoryOncePerInterval(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	storagetest.Put(t, b, "stream/p1", []byte("1"))
	stale := filepath.Join(b.Root(), "stream", ".p2.tmp-1")
	os.WriteFile(stale, []byte("x"), 0o600)
	old := time.Now().Add(-2 * atomicfile.StaleAfter)
	os.Chtimes(stale, old, old)
	storagetest.Put(t, b, "stream/p2", []byte("2"))
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("a second put within %s swept the directory again: %v", sweepEvery, err)
	}
	// sweepEvery later, the next put sweeps.
	dir := filepath.Join(b.Root(), "stream")
	b.swept.Store(dir, time.Now().Add(-sweepEvery))
	storagetest.Put(t, b, "stream/p3", []byte("3"))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a put %s after the last sweep left a stale temporary file: %v", sweepEvery, err)
	}
}

// A repository directory another user owns is refused for writing, with
// one line that names the user to run as; one the running user owns, or
// one that does not exist yet, is not. (The refusal needs a directory of
// another user: made by chown, as root, which CI runs as.)
func TestCheckOwner(t *testing.T) {
	root := filepath.Join(t.TempDir(), "repo")
	b, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckOwner(); err != nil {
		t.Errorf("a directory that does not exist yet: %v", err)
	}
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckOwner(); err != nil {
		t.Errorf("the running user's own directory: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("making a directory of another user needs root")
	}
	if err := os.Chown(root, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	err = storage.CheckOwner(storage.WithRetry(b, storage.DefaultRetry))
	if !errors.Is(err, storage.ErrNotOwner) || !strings.Contains(err.Error(), "run it as ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("root writing into a directory of uid 65534: %v, want ErrNotOwner in one line naming the owner", err)
	}
}
