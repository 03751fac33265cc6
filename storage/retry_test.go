package storage

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
	"time"
)

// scripted is a fake backend whose every call is answered by answer, given
// the call's number (1-based, counted over all methods) and its context.
type scripted struct {
	mu     sync.Mutex
	calls  int
	answer func(ctx context.Context, call int) error
	// list, when set, answers List instead of answer.
	list   func(ctx context.Context, call int, fn func(Info) error) error
	bodies [][]byte // what each Put read
	ctxs   []context.Context
}

func (s *scripted) call(ctx context.Context) (int, error) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.ctxs = append(s.ctxs, ctx)
	s.mu.Unlock()
	if s.answer == nil {
		return n, nil
	}
	return n, s.answer(ctx, n)
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *scripted) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	body, rerr := io.ReadAll(r)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	if _, err := s.call(ctx); err != nil {
		return err
	}
	return rerr
}

// ctxBody is an object body that fails once the context of its Open ends.
type ctxBody struct {
	ctx context.Context
	r   io.Reader
}

func (b ctxBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}

func (b ctxBody) Close() error { return nil }

func (s *scripted) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if _, err := s.call(ctx); err != nil {
		return nil, err
	}
	return ctxBody{ctx, strings.NewReader("contents of " + key)}, nil
}

func (s *scripted) Stat(ctx context.Context, key string) (Info, error) {
	if _, err := s.call(ctx); err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: 7}, nil
}

func (s *scripted) List(ctx context.Context, prefix string, fn func(Info) error) error {
	if s.list != nil {
		s.mu.Lock()
		s.calls++
		n := s.calls
		s.mu.Unlock()
		return s.list(ctx, n, fn)
	}
	if _, err := s.call(ctx); err != nil {
		return err
	}
	for _, k := range []string{prefix + "a", prefix + "b"} {
		if err := fn(Info{Key: k}); err != nil {
			return err
		}
	}
	return nil
}

func (s *scripted) Remove(ctx context.Context, key string) error {
	_, err := s.call(ctx)
	return err
}

func (s *scripted) String() string { return "scripted" }

// quick retries fast and long enough for any test to finish.
var quick = RetryPolicy{Budget: time.Minute, FirstDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond}

var errFlaky = errors.New("connection reset")

// failFirst answers the first n calls with a transient error.
func failFirst(n int) func(context.Context, int) error {
	return func(_ context.Context, call int) error {
		if call <= n {
			return &Error{Op: "op", Key: "k", Err: Transient(fmt.Errorf("attempt %d: %w", call, errFlaky))}
		}
		return nil
	}
}

// ops calls every method of b once.
var ops = map[string]func(ctx context.Context, b Backend) error{
	"put": func(ctx context.Context, b Backend) error {
		return b.Put(ctx, "k", bytes.NewReader([]byte("data")), 4)
	},
	"open": func(ctx context.Context, b Backend) error {
		rc, err := b.Open(ctx, "k")
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	},
	"stat": func(ctx context.Context, b Backend) error {
		_, err := b.Stat(ctx, "k")
		return err
	},
	"list": func(ctx context.Context, b Backend) error {
		return b.List(ctx, "p/", func(Info) error { return nil })
	},
	"remove": func(ctx context.Context, b Backend) error {
		return b.Remove(ctx, "k")
	},
}

func TestRetryTransientUntilSuccess(t *testing.T) {
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			f := &scripted{answer: failFirst(3)}
			if err := op(context.Background(), WithRetry(f, quick)); err != nil {
				t.Fatalf("%s: %v, want success on the 4th attempt", name, err)
			}
			if got := f.count(); got != 4 {
				t.Errorf("%d calls, want 4", got)
			}
		})
	}
}

func TestRetryFinalAnswers(t *testing.T) {
	answers := map[string]error{
		"not found":           &Error{Op: "op", Key: "k", Err: fs.ErrNotExist},
		"not found, flagged":  Transient(&Error{Op: "op", Key: "k", Err: fs.ErrNotExist}),
		"exists":              &Error{Op: "op", Key: "k", Err: fs.ErrExist},
		"exists, flagged":     Transient(fmt.Errorf("put k: %w", fs.ErrExist)),
		"permission denied":   &Error{Op: "op", Key: "k", Err: fs.ErrPermission},
		"permanent":           errors.New("bucket does not exist"),
		"bad key":             fmt.Errorf("%w: %q", ErrBadKey, "../k"),
		"wrapped permanently": fmt.Errorf("no transient mark: %v", Transient(errFlaky)),
	}
	for aname, answer := range answers {
		for name, op := range ops {
			t.Run(aname+"/"+name, func(t *testing.T) {
				f := &scripted{answer: func(context.Context, int) error { return answer }}
				err := op(context.Background(), WithRetry(f, quick))
				if !errors.Is(err, answer) {
					t.Errorf("error %v, want %v", err, answer)
				}
				if got := f.count(); got != 1 {
					t.Errorf("%d calls, want 1: a final answer is never retried", got)
				}
			})
		}
	}
}

func TestRetryBudget(t *testing.T) {
	var last error
	var mu sync.Mutex
	f := &scripted{answer: func(_ context.Context, call int) error {
		mu.Lock()
		defer mu.Unlock()
		last = Transient(fmt.Errorf("attempt %d: %w", call, errFlaky))
		return last
	}}
	// Every pause is at least FirstDelay/2, and no pause is begun that would
	// end after the budget, so at most 1 + Budget/(FirstDelay/2) calls.
	p := RetryPolicy{Budget: 200 * time.Millisecond, FirstDelay: 20 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	err := WithRetry(f, p).Remove(context.Background(), "k")
	if err == nil {
		t.Fatal("Remove succeeded against a backend that always fails")
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(err, last) || !errors.Is(err, errFlaky) {
		t.Errorf("error %v does not wrap the last error %v", err, last)
	}
	if n := f.count(); n < 1 || n > 1+int(p.Budget/(p.FirstDelay/2)) {
		t.Errorf("%d calls within a budget of %s", n, p.Budget)
	}
}

func TestRetryNoBudget(t *testing.T) {
	f := &scripted{answer: failFirst(1)}
	_, err := WithRetry(f, RetryPolicy{FirstDelay: time.Millisecond}).Stat(context.Background(), "k")
	if !errors.Is(err, errFlaky) || !errors.Is(err, ErrTransient) {
		t.Errorf("error %v, want the transient error", err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d calls with no budget, want 1", n)
	}
}

func TestRetryPutRewinds(t *testing.T) {
	f := &scripted{answer: failFirst(2)}
	if err := WithRetry(f, quick).Put(context.Background(), "k", bytes.NewReader([]byte("whole body")), 10); err != nil {
		t.Fatal(err)
	}
	if len(f.bodies) != 3 {
		t.Fatalf("%d attempts, want 3", len(f.bodies))
	}
	for i, b := range f.bodies {
		if string(b) != "whole body" {
			t.Errorf("attempt %d read %q, want the whole body", i+1, b)
		}
	}
}

// stream hides the Seek of its reader.
type stream struct{ r io.Reader }

func (s stream) Read(p []byte) (int, error) { return s.r.Read(p) }

func TestRetryPutStream(t *testing.T) {
	f := &scripted{answer: failFirst(1)}
	err := WithRetry(f, quick).Put(context.Background(), "k", stream{strings.NewReader("body")}, -1)
	if err == nil {
		t.Fatal("Put from a consumed stream succeeded")
	}
	if n := f.count(); n != 1 {
		t.Errorf("backend Put called %d times, want 1: the stream was consumed", n)
	}
	// The failure that stopped it is reported, not only that it stopped.
	if !strings.Contains(err.Error(), errFlaky.Error()) {
		t.Errorf("error %q does not say why the put failed", err)
	}

	// A stream that succeeds the first time is fine.
	f = &scripted{}
	if err := WithRetry(f, quick).Put(context.Background(), "k", stream{strings.NewReader("body")}, -1); err != nil {
		t.Errorf("Put from a stream: %v", err)
	}
}

// slowFirst makes the first call hang until its context ends.
func slowFirst(ctx context.Context, call int) error {
	if call > 1 {
		return nil
	}
	select {
	case <-ctx.Done():
		return &Error{Op: "op", Key: "k", Err: ctx.Err()}
	case <-time.After(time.Minute):
		return errors.New("the slow call was not cut")
	}
}

func TestRetryOpTimeout(t *testing.T) {
	p := quick
	p.OpTimeout = 100 * time.Millisecond
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			f := &scripted{answer: slowFirst}
			if err := op(context.Background(), WithRetry(f, p)); err != nil {
				t.Fatalf("%s: %v, want the second attempt to succeed", name, err)
			}
			if n := f.count(); n != 2 {
				t.Errorf("%d calls, want 2", n)
			}
		})
	}
}

func TestRetryOpTimeoutBudget(t *testing.T) {
	p := RetryPolicy{OpTimeout: 10 * time.Millisecond, Budget: 0, FirstDelay: time.Millisecond}
	f := &scripted{answer: slowFirst}
	_, err := WithRetry(f, p).Stat(context.Background(), "k")
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTransient) {
		t.Errorf("error %v, want a transient timeout", err)
	}
	if err != nil && !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("error %q does not say the call timed out", err)
	}
}

func TestRetryCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := &scripted{answer: func(ctx context.Context, call int) error {
		cancel() // the caller gives up while the call runs
		return Transient(&Error{Op: "op", Key: "k", Err: ctx.Err()})
	}}
	_, err := WithRetry(f, quick).Stat(ctx, "k")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if n := f.count(); n != 1 {
		t.Errorf("%d calls, want 1: a canceled call is not retried", n)
	}
}

func TestRetryOpenBodyOutlivesCall(t *testing.T) {
	p := quick
	p.OpTimeout = time.Minute
	f := &scripted{}
	rc, err := WithRetry(f, p).Open(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	// The body is read after Open returned, with the attempt's context.
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != "contents of k" {
		t.Errorf("reading the body: %q, %v", got, err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if ctx := f.ctxs[0]; ctx.Err() == nil {
		t.Error("the attempt's context outlives Close")
	}
}

func TestRetryListOnlyBeforeFirstItem(t *testing.T) {
	f := &scripted{list: func(ctx context.Context, call int, fn func(Info) error) error {
		if err := fn(Info{Key: fmt.Sprintf("item of call %d", call)}); err != nil {
			return err
		}
		return &Error{Op: "list", Key: "", Err: Transient(errFlaky)}
	}}
	var seen []string
	err := WithRetry(f, quick).List(context.Background(), "", func(i Info) error {
		seen = append(seen, i.Key)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), errFlaky.Error()) {
		t.Errorf("error %v, want the listing reported as interrupted", err)
	}
	if n := f.count(); n != 1 || len(seen) != 1 {
		t.Errorf("%d calls, fn saw %v; want 1 call and one item", n, seen)
	}
}

func TestRetryListTimeoutAfterItems(t *testing.T) {
	// The listing hangs after it delivered an item, and is cut by
	// OpTimeout: it cannot start over, and it must not pass for complete.
	p := quick
	p.OpTimeout = 20 * time.Millisecond
	f := &scripted{list: func(ctx context.Context, call int, fn func(Info) error) error {
		if err := fn(Info{Key: "first"}); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return &Error{Op: "list", Key: "", Err: ctx.Err()}
		case <-time.After(time.Minute):
			return nil
		}
	}}
	var seen []string
	err := WithRetry(f, p).List(context.Background(), "", func(i Info) error {
		seen = append(seen, i.Key)
		return nil
	})
	if err == nil {
		t.Error("an interrupted listing returned nil")
	}
	if len(seen) != 1 {
		t.Errorf("fn saw %v, want the first item once", seen)
	}
}

func TestRetryListFnError(t *testing.T) {
	for name, fnErr := range map[string]error{
		"permanent": errors.New("stop here"),
		"transient": Transient(errors.New("removing failed for now")),
		"not found": fmt.Errorf("gone: %w", fs.ErrNotExist),
	} {
		t.Run(name, func(t *testing.T) {
			f := &scripted{}
			calls := 0
			p := quick
			p.Budget = 200 * time.Millisecond // a bounded failure if fn's error were retried
			err := WithRetry(f, p).List(context.Background(), "", func(Info) error {
				calls++
				return fnErr
			})
			// An error from fn stops the listing and is returned as it is.
			if !errors.Is(err, fnErr) || err.Error() != fnErr.Error() {
				t.Errorf("List = %v, want %v", err, fnErr)
			}
			if n := f.count(); n != 1 || calls != 1 {
				t.Errorf("%d List calls, fn called %d times; want 1 and 1", n, calls)
			}
		})
	}
}

func TestRetryUnwrap(t *testing.T) {
	f := &scripted{}
	b := WithRetry(f, quick)
	if b.String() != f.String() {
		t.Errorf("String = %q, want the wrapped backend's %q", b.String(), f.String())
	}
	u, ok := b.(interface{ Unwrap() Backend })
	if !ok || u.Unwrap() != Backend(f) {
		t.Error("Unwrap does not return the wrapped backend")
	}
}

// streamer is a scripted backend that says it streams puts.
type streamer struct{ scripted }

func (*streamer) StreamsPuts() bool { return true }

func TestStreamsPutsThroughRetry(t *testing.T) {
	if StreamsPuts(WithRetry(&scripted{}, quick)) {
		t.Error("a backend that is no Streamer reported as streaming")
	}
	if !StreamsPuts(WithRetry(&streamer{}, quick)) {
		t.Error("a Streamer behind the retry wrapper reported as not streaming")
	}
}

// An error about the whole store names the operation alone, never an
// empty key ("list : ...").
func TestErrorWithoutKey(t *testing.T) {
	if got := (&Error{Op: "list", Err: errors.New("permission denied")}).Error(); got != "list: permission denied" {
		t.Errorf("got %q", got)
	}
	if got := (&Error{Op: "open", Key: "walship.json", Err: errors.New("gone")}).Error(); got != "open walship.json: gone" {
		t.Errorf("got %q", got)
	}
}
