package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/walship/walship/storage"
)

// The test doubles every package's unit tests share: an in-memory store,
// and a wrapper that counts, delays and fails calls.

// Mem is an in-memory storage.Backend with the full contract (create-only
// puts, sorted listings, not-found errors), for unit tests that want a
// store that is neither a directory nor a server.
type Mem struct {
	mu      sync.Mutex
	objects map[string]memObject
	Name    string // for String; "mem" when empty
}

type memObject struct {
	data []byte
	mod  time.Time
}

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{objects: map[string]memObject{}} }

var _ storage.Backend = (*Mem)(nil)

func (m *Mem) String() string {
	if m.Name == "" {
		return "mem"
	}
	return m.Name
}

func memErr(op, key string, err error) error { return &storage.Error{Op: op, Key: key, Err: err} }

// Put implements storage.Backend.
func (m *Mem) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := storage.CheckKey(key); err != nil {
		return memErr("put", key, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return memErr("put", key, err)
	}
	if err := ctx.Err(); err != nil {
		return memErr("put", key, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return memErr("put", key, errors.New("size does not match the data"))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return memErr("put", key, fs.ErrExist)
	}
	m.objects[key] = memObject{data: data, mod: time.Now()}
	return nil
}

func (m *Mem) get(op, key string) (memObject, error) {
	if err := storage.CheckKey(key); err != nil {
		return memObject{}, memErr(op, key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return memObject{}, memErr(op, key, fs.ErrNotExist)
	}
	return o, nil
}

// Open implements storage.Backend.
func (m *Mem) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, memErr("open", key, err)
	}
	o, err := m.get("open", key)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Stat implements storage.Backend.
func (m *Mem) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := ctx.Err(); err != nil {
		return storage.Info{}, memErr("stat", key, err)
	}
	o, err := m.get("stat", key)
	if err != nil {
		return storage.Info{}, err
	}
	return storage.Info{Key: key, Size: int64(len(o.data)), ModTime: o.mod}, nil
}

// List implements storage.Backend.
func (m *Mem) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := ctx.Err(); err != nil {
		return memErr("list", prefix, err)
	}
	m.mu.Lock()
	var items []storage.Info
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			items = append(items, storage.Info{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	m.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].Key < items[j].Key })
	for _, it := range items {
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

// Remove implements storage.Backend.
func (m *Mem) Remove(ctx context.Context, key string) error {
	if err := storage.CheckKey(key); err != nil {
		return memErr("remove", key, err)
	}
	if err := ctx.Err(); err != nil {
		return memErr("remove", key, err)
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// SetModTime changes when key was (said to be) stored.
func (m *Mem) SetModTime(key string, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok {
		o.mod = t
		m.objects[key] = o
	}
}

// ErrInjected is what Faulty's injected failures wrap unless Fail says
// otherwise.
var ErrInjected = errors.New("injected failure")

// Faulty wraps a backend for unit tests: it counts calls, runs a hook
// before each, and fails those Fail chooses. It does not unwrap, so the
// wrapped backend's optional capabilities (a local directory's Watcher and
// Streamer) are hidden: through Faulty a store behaves like a remote one.
// Batching adds batch deletes. Its fields may be set before first use;
// Fail and Before may be called from several goroutines.
type Faulty struct {
	storage.Backend
	// Fail, when set, is asked before each call ("put", "open", "stat",
	// "list", "remove"); a non-nil error is returned instead of the call.
	Fail func(op, key string) error
	// Before, when set, runs before each call that is made.
	Before func(op, key string)
	// Streams is what StreamsPuts answers.
	Streams bool
	// FailPutAfter, when positive, makes a put read that many bytes of its
	// data, then fail with ErrInjected.
	FailPutAfter int64

	mu       sync.Mutex
	calls    map[string]int
	putSizes []int64
	batches  []int
}

var _ storage.Streamer = (*Faulty)(nil)

func (f *Faulty) enter(op, key string) error {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[op]++
	f.mu.Unlock()
	if f.Fail != nil {
		if err := f.Fail(op, key); err != nil {
			return err
		}
	}
	if f.Before != nil {
		f.Before(op, key)
	}
	return nil
}

// Calls counts the calls of op made so far (failed ones included).
func (f *Faulty) Calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// PutSizes are the sizes the puts announced, in order.
func (f *Faulty) PutSizes() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.putSizes...)
}

// BatchSizes are the sizes of the batch deletes made through Batching.
func (f *Faulty) BatchSizes() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int(nil), f.batches...)
}

// StreamsPuts implements storage.Streamer.
func (f *Faulty) StreamsPuts() bool { return f.Streams }

// Put implements storage.Backend.
func (f *Faulty) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	f.mu.Lock()
	f.putSizes = append(f.putSizes, size)
	f.mu.Unlock()
	if err := f.enter("put", key); err != nil {
		return err
	}
	if f.FailPutAfter > 0 {
		if _, err := io.CopyN(io.Discard, r, f.FailPutAfter); err != nil {
			return err
		}
		return memErr("put", key, ErrInjected)
	}
	return f.Backend.Put(ctx, key, r, size)
}

// Open implements storage.Backend.
func (f *Faulty) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := f.enter("open", key); err != nil {
		return nil, err
	}
	return f.Backend.Open(ctx, key)
}

// Stat implements storage.Backend.
func (f *Faulty) Stat(ctx context.Context, key string) (storage.Info, error) {
	if err := f.enter("stat", key); err != nil {
		return storage.Info{}, err
	}
	return f.Backend.Stat(ctx, key)
}

// List implements storage.Backend.
func (f *Faulty) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if err := f.enter("list", prefix); err != nil {
		return err
	}
	return f.Backend.List(ctx, prefix, fn)
}

// Remove implements storage.Backend.
func (f *Faulty) Remove(ctx context.Context, key string) error {
	if err := f.enter("remove", key); err != nil {
		return err
	}
	return f.Backend.Remove(ctx, key)
}

// Batching returns f as a store that deletes in batches (as S3 does): each
// batch is recorded (BatchSizes) and passed to the wrapped backend's own
// batch delete if it has one, else carried out key by key through f, so
// that Fail applies to each key.
func Batching(f *Faulty) storage.Backend { return batching{f} }

type batching struct{ *Faulty }

var _ storage.BatchRemover = batching{}

func (b batching) RemoveMany(ctx context.Context, keys []string) error {
	b.mu.Lock()
	b.batches = append(b.batches, len(keys))
	b.mu.Unlock()
	if br, ok := b.Backend.(storage.BatchRemover); ok {
		return br.RemoveMany(ctx, keys)
	}
	for _, k := range keys {
		if err := b.Remove(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Down returns a Fail function that fails every call with a transient
// error ("connection refused") while down reports true.
func Down(down func() bool) func(op, key string) error {
	return func(op, key string) error {
		if down() {
			return &storage.Error{Op: op, Key: key, Err: storage.Transient(errors.New("connection refused"))}
		}
		return nil
	}
}
