// Package storagetest is the conformance suite every storage.Backend must
// pass. A backend's own test calls Run with a function that returns a new,
// empty backend.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/walship/walship/storage"
)

// Run exercises the storage.Backend contract on backends made by newBackend,
// each empty and independent of the others.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	t.Run("PutOpenRoundTrip", func(t *testing.T) { testRoundTrip(t, newBackend(t)) })
	t.Run("PutIsCreateOnly", func(t *testing.T) { testCreateOnly(t, newBackend(t)) })
	t.Run("ConcurrentPutsOneWins", func(t *testing.T) { testConcurrentPut(t, newBackend(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newBackend(t)) })
	t.Run("ListSortedByPrefix", func(t *testing.T) { testList(t, newBackend(t)) })
	t.Run("Remove", func(t *testing.T) { testRemove(t, newBackend(t)) })
	t.Run("BadKeys", func(t *testing.T) { testBadKeys(t, newBackend(t)) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, newBackend(t)) })
	t.Run("FailedPutLeavesNothing", func(t *testing.T) { testFailedPut(t, newBackend(t)) })
	t.Run("LargeObject", func(t *testing.T) { testLarge(t, newBackend(t)) })
}

// Put stores data under key and fails the test on error.
func Put(t *testing.T, b storage.Backend, key string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// Get reads key back and fails the test on error.
func Get(t *testing.T, b storage.Backend, key string) []byte {
	t.Helper()
	rc, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return data
}

// Keys lists every key under prefix.
func Keys(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	keys := []string{}
	if err := b.List(context.Background(), prefix, func(i storage.Info) error {
		keys = append(keys, i.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return keys
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	want := []byte("the quick brown fox")
	Put(t, b, "wal/0000000100000000/000000010000000000000001", want)
	if got := Get(t, b, "wal/0000000100000000/000000010000000000000001"); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	info, err := b.Stat(context.Background(), "wal/0000000100000000/000000010000000000000001")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != int64(len(want)) || info.Key != "wal/0000000100000000/000000010000000000000001" {
		t.Fatalf("Stat = %+v, want size %d", info, len(want))
	}
	// Unknown size (-1) is allowed.
	if err := b.Put(context.Background(), "unknown-size", strings.NewReader("abc"), -1); err != nil {
		t.Fatalf("Put with size -1: %v", err)
	}
	if got := Get(t, b, "unknown-size"); string(got) != "abc" {
		t.Fatalf("got %q, want abc", got)
	}
	// Empty objects exist.
	Put(t, b, "empty", nil)
	if got := Get(t, b, "empty"); len(got) != 0 {
		t.Fatalf("empty object read back as %q", got)
	}
}

func testCreateOnly(t *testing.T, b storage.Backend) {
	Put(t, b, "k", []byte("first"))
	err := b.Put(context.Background(), "k", strings.NewReader("second"), 6)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Put: got %v, want an error matching fs.ErrExist", err)
	}
	if got := Get(t, b, "k"); string(got) != "first" {
		t.Fatalf("object changed to %q by a refused Put", got)
	}
}

func testConcurrentPut(t *testing.T, b storage.Backend) {
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + i)}, 4096)
			errs[i] = b.Put(context.Background(), "race", bytes.NewReader(data), int64(len(data)))
		}()
	}
	wg.Wait()
	winners := 0
	for _, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, fs.ErrExist):
			t.Errorf("concurrent Put: unexpected error %v", err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d concurrent Puts succeeded, want exactly 1", winners)
	}
	got := Get(t, b, "race")
	if len(got) != 4096 || !bytes.Equal(got, bytes.Repeat(got[:1], 4096)) {
		t.Fatalf("object is a mix of writers: %q...", got[:16])
	}
}

func testNotFound(t *testing.T, b storage.Backend) {
	ctx := context.Background()
	if _, err := b.Open(ctx, "missing/key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open missing: got %v, want fs.ErrNotExist", err)
	}
	if _, err := b.Stat(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat missing: got %v, want fs.ErrNotExist", err)
	}
	Put(t, b, "dir/file", []byte("x"))
	if _, err := b.Stat(ctx, "dir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a key prefix: got %v, want fs.ErrNotExist", err)
	}
	if _, err := b.Open(ctx, "dir"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a key prefix: got %v, want fs.ErrNotExist", err)
	}
	if keys := Keys(t, b, "nothing/here/"); len(keys) != 0 {
		t.Errorf("List of an absent prefix = %v, want none", keys)
	}
}

func testList(t *testing.T, b storage.Backend) {
	keys := []string{
		"wal/0000000100000001/000000010000000100000000.lz4",
		"wal/00000002.history",
		"wal/0000000100000000/000000010000000000000002.lz4",
		"wal/0000000100000000/000000010000000000000001.lz4",
		"walship.json",
		"wal/0000000200000000/000000020000000000000005",
	}
	for _, k := range keys {
		Put(t, b, k, []byte(k))
	}
	got := Keys(t, b, "")
	want := []string{
		"wal/0000000100000000/000000010000000000000001.lz4",
		"wal/0000000100000000/000000010000000000000002.lz4",
		"wal/0000000100000001/000000010000000100000000.lz4",
		"wal/00000002.history",
		"wal/0000000200000000/000000020000000000000005",
		"walship.json",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List(\"\") =\n%v\nwant\n%v", got, want)
	}
	if got := Keys(t, b, "wal/0000000100000000/"); fmt.Sprint(got) != fmt.Sprint(want[0:2]) {
		t.Errorf("List(dir prefix) = %v, want %v", got, want[0:2])
	}
	if got := Keys(t, b, "wal/00000001"); fmt.Sprint(got) != fmt.Sprint(want[0:3]) {
		t.Errorf("List(partial prefix) = %v, want %v", got, want[0:3])
	}
	var sizes []int64
	b.List(context.Background(), "walship", func(i storage.Info) error { sizes = append(sizes, i.Size); return nil })
	if len(sizes) != 1 || sizes[0] != int64(len("walship.json")) {
		t.Errorf("List sizes = %v, want [%d]", sizes, len("walship.json"))
	}
	stop := errors.New("stop")
	n := 0
	err := b.List(context.Background(), "", func(storage.Info) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("List with a failing callback: err %v after %d calls, want stop after 1", err, n)
	}
}

func testRemove(t *testing.T, b storage.Backend) {
	Put(t, b, "a/b", []byte("x"))
	if err := b.Remove(context.Background(), "a/b"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := b.Stat(context.Background(), "a/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat after Remove: %v, want fs.ErrNotExist", err)
	}
	if err := b.Remove(context.Background(), "a/b"); err != nil {
		t.Fatalf("Remove of a missing key: %v, want nil", err)
	}
	// After a remove the key can be created again.
	Put(t, b, "a/b", []byte("y"))
}

func testBadKeys(t *testing.T, b storage.Backend) {
	for _, k := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/./b", ".hidden", "a\\b"} {
		if err := b.Put(context.Background(), k, strings.NewReader("x"), 1); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Put(%q): got %v, want ErrBadKey", k, err)
		}
		if _, err := b.Open(context.Background(), k); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Open(%q): got %v, want ErrBadKey", k, err)
		}
	}
}

func testCancelled(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Put(ctx, "c", strings.NewReader("x"), 1); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	if _, err := b.Stat(context.Background(), "c"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cancelled Put left an object: Stat = %v", err)
	}
	if _, err := b.Stat(ctx, "c"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat with a cancelled context: got %v, want a cancellation error", err)
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("source broke")
	}
	n := min(len(p), f.n)
	for i := range p[:n] {
		p[i] = 'z'
	}
	f.n -= n
	return n, nil
}

func testFailedPut(t *testing.T, b storage.Backend) {
	err := b.Put(context.Background(), "broken", &failingReader{n: 100000}, 200000)
	if err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	if _, err := b.Stat(context.Background(), "broken"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Put left a visible object: Stat = %v", err)
	}
	if keys := Keys(t, b, ""); len(keys) != 0 {
		t.Fatalf("failed Put left listed objects: %v", keys)
	}
	Put(t, b, "broken", []byte("ok"))
}

func testLarge(t *testing.T, b storage.Backend) {
	data := make([]byte, 16<<20+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	Put(t, b, "big", data)
	if got := Get(t, b, "big"); !bytes.Equal(got, data) {
		t.Fatalf("large object differs after round trip (len %d, want %d)", len(got), len(data))
	}
}
