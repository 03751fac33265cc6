package test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/receive"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage/storagetest"
)

// The floor experiment of BenchmarkReceive: the receiver itself, run in
// the benchmark's process on a store whose pieces cost what a standby's
// WAL flush costs (a write into a preallocated, zero-filled file and
// fdatasync), instead of a create-only durable object. It is not a
// repository anyone could recover from (the objects live in memory): it
// tells how much of the gap to a streaming standby is the receiver and how
// much the durable creation of one new object per flush.

// floorLabel is the floor experiment's row in the table.
const floorLabel = "floor experiment: the same receiver, each piece made durable as a standby flushes"

// flushFloor is storagetest.Mem whose puts of streamed pieces also write
// the piece into a preallocated file and fdatasync it.
type flushFloor struct {
	*storagetest.Mem
	mu  sync.Mutex
	f   *os.File
	off int64
}

// flushFloorSize is the preallocated file's size (a segment's, as a
// standby's WAL file); writes wrap around in it.
const flushFloorSize = 16 << 20

func newFlushFloor(b *testing.B, dir string) *flushFloor {
	f, err := os.OpenFile(filepath.Join(dir, "flush-floor"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	if err := preallocate(f, flushFloorSize); err != nil {
		b.Fatal(err)
	}
	return &flushFloor{Mem: storagetest.NewMem(), f: f}
}

// preallocate fills f with size zero bytes and syncs it, as the server
// fills a new WAL segment: later writes into it change no metadata.
func preallocate(f *os.File, size int) error {
	if _, err := f.WriteAt(make([]byte, size), 0); err != nil {
		return err
	}
	return f.Sync()
}

func (s *flushFloor) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if !strings.HasPrefix(key, repo.StreamPrefix) {
		return s.Mem.Put(ctx, key, r, size)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(data) > flushFloorSize {
		return errors.New("a piece larger than the floor's file")
	}
	s.mu.Lock()
	if s.off+int64(len(data)) > flushFloorSize {
		s.off = 0
	}
	off := s.off
	s.off += int64(len(data))
	s.mu.Unlock()
	if _, err := s.f.WriteAt(data, off); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil { // the server's default wal_sync_method on Linux
		return err
	}
	return s.Mem.Put(ctx, key, bytes.NewReader(data), int64(len(data)))
}

// floorReceiver runs the receiver in this process against p on a
// flushFloor store, as the synchronous standby "walship"; stop ends it.
func floorReceiver(b *testing.B, base string, p *pgtest.Cluster) (stop func()) {
	r := repo.New(newFlushFloor(b, base), repo.Options{Create: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- receive.Run(ctx, r, receive.Options{ConnString: p.ConnString(), Slot: "walship", CreateSlot: true, Synchronous: true})
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("the floor experiment's receiver: %v", err)
		}
	}
}
