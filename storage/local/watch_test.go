package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// notified reports whether ch delivers within d.
func notified(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// A watch notifies when its key appears, also in directories that do not
// exist yet, and not for temporary files or other keys.
func TestWatch(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := b.Watch(ctx, []string{"wal/0000000100000000/000000010000000000000003.lz4"})
	if err != nil {
		t.Fatal(err)
	}
	drain := func() {
		for notified(ch, 50*time.Millisecond) {
		}
	}
	storagetest.Put(t, b, "wal/0000000100000000/000000010000000000000002.lz4", []byte("x"))
	drain() // the directories on the way appeared: the watch re-aims
	dir := filepath.Join(b.Root(), "wal", "0000000100000000")
	os.WriteFile(filepath.Join(dir, ".000000010000000000000003.lz4.tmp-1"), []byte("x"), 0o600)
	storagetest.Put(t, b, "wal/0000000100000000/000000010000000000000004.lz4", []byte("x"))
	if notified(ch, 200*time.Millisecond) {
		t.Error("notified for a temporary file or another key")
	}
	storagetest.Put(t, b, "wal/0000000100000000/000000010000000000000003.lz4", []byte("x"))
	if !notified(ch, 5*time.Second) {
		t.Fatal("no notification when the key appeared")
	}
	cancel()
	for range ch {
	}
}

// The watch is found through the retry wrapper, and hidden by a wrapper
// that does not unwrap (as a remote store has none).
func TestWatcherThroughWrappers(t *testing.T) {
	b, _ := New(t.TempDir())
	if w, ok := storage.As[storage.Watcher](storage.WithRetry(b, storage.DefaultRetry)); !ok || w != storage.Watcher(b) {
		t.Errorf("As[Watcher] through the retry wrapper = %v, %v; want the local backend", w, ok)
	}
	if _, ok := storage.As[storage.Watcher](&storagetest.Faulty{Backend: b}); ok {
		t.Error("As[Watcher] found the local backend behind a wrapper that does not unwrap")
	}
}

// A directory on the way that appears after the watch looked but before it
// watched the parent is still found: the watch looks again.
func TestWatchDirectoryAppearingWhileAiming(t *testing.T) {
	b, _ := New(filepath.Join(t.TempDir(), "repo"))
	key := "wal/0000000100000000/000000010000000000000003.lz4"
	deep := filepath.Join(b.Root(), "wal", "0000000100000000")
	beforeAdd = func(dir string) {
		if dir != deep {
			os.MkdirAll(deep, 0o700) // no event reaches a watch not yet in place
		}
	}
	defer func() { beforeAdd = nil }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Watch(ctx, []string{key})
	if err != nil {
		t.Fatal(err)
	}
	for notified(ch, 50*time.Millisecond) {
	}
	storagetest.Put(t, b, key, []byte("x"))
	if !notified(ch, 5*time.Second) {
		t.Fatal("no notification when the key appeared")
	}
}
