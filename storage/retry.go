package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/walship/walship/internal/logx"
)

// RetryPolicy bounds how long the retry wrapper keeps trying.
type RetryPolicy struct {
	// OpTimeout bounds one attempt of one call.
	OpTimeout time.Duration
	// Budget bounds all attempts of one call together.
	Budget time.Duration
	// FirstDelay is the pause after the first failed attempt; it doubles up
	// to MaxDelay, with jitter.
	FirstDelay, MaxDelay time.Duration
	// Log receives a debug line for each retry (nil: none).
	Log *slog.Logger
}

// DefaultRetry is what the binaries use unless told otherwise.
var DefaultRetry = RetryPolicy{OpTimeout: 30 * time.Second, Budget: 60 * time.Second,
	FirstDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

// WithRetry wraps b so that each call is bounded by OpTimeout and calls that
// fail with ErrTransient (or time out) are tried again within Budget.
// Not-found and already-exists answers are final and never retried. Put is
// retried only when its reader can be rewound (io.Seeker).
func WithRetry(b Backend, p RetryPolicy) Backend {
	p.Log = logx.Or(p.Log)
	return &retrying{b: b, p: p}
}

type retrying struct {
	b Backend
	p RetryPolicy
}

func (r *retrying) String() string { return r.b.String() }

// Unwrap returns the wrapped backend.
func (r *retrying) Unwrap() Backend { return r.b }

func (r *retrying) do(ctx context.Context, op, key string, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(r.p.Budget)
	delay := r.p.FirstDelay
	for attempt := 1; ; attempt++ {
		actx, cancel := r.attempt(ctx)
		err := f(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		var fin finalError
		if errors.As(err, &fin) {
			return fin.err
		}
		if err == nil || IsNotExist(err) || IsExist(err) || ctx.Err() != nil {
			return err
		}
		if timedOut {
			what := "no answer"
			if isLong(ctx) {
				what = "no progress"
			}
			err = Transient(fmt.Errorf("%s %s: %s within %s: %w", op, key, what, r.p.OpTimeout, err))
		}
		if !errors.Is(err, ErrTransient) {
			return err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %d attempts in %s: %w", attempt, r.p.Budget, err)
		}
		r.p.Log.Debug("storage call failed, retrying", "op", op, "key", key, "attempt", attempt, "err", err)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return err
		}
		if delay *= 2; delay > r.p.MaxDelay {
			delay = r.p.MaxDelay
		}
	}
}

func (r *retrying) Put(ctx context.Context, key string, rd io.Reader, size int64) error {
	seeker, canRewind := rd.(io.Seeker)
	first := true
	var last error
	parent := ctx
	return r.do(ctx, "put", key, func(ctx context.Context) error {
		if !first {
			if !canRewind {
				// Not retried: %v drops the transient mark.
				return fmt.Errorf("cannot retry a put from a stream: %v", last)
			}
			if _, err := seeker.Seek(0, io.SeekStart); err != nil {
				return err
			}
		}
		first = false
		src := rd
		if t := touchOf(ctx); t != nil {
			src = &touchReader{r: rd, touch: t} // reading the data is progress
		}
		last = r.b.Put(ctx, key, src, size)
		if last != nil && !canRewind && ctx.Err() != nil && parent.Err() == nil {
			// Cut by the timeout, and there is no second attempt:
			// say so now (%v: not transient, so not retried).
			what := "no answer"
			if isLong(parent) {
				what = "no progress"
			}
			return finalError{fmt.Errorf("put %s: %s within %s: %v", key, what, r.p.OpTimeout, last)}
		}
		return last
	})
}

func (r *retrying) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "open", key, func(context.Context) error {
		// The attempt's own context must outlive this function: it bounds
		// reading the body too, and ends when the reader is closed.
		actx, cancel := r.attempt(ctx)
		body, err := r.b.Open(actx, key)
		if err != nil {
			// This context, not do's, cut the call: do may not see a timeout.
			timedOut := actx.Err() != nil && ctx.Err() == nil
			cancel()
			if timedOut {
				return Transient(err)
			}
			return err
		}
		if t := touchOf(actx); t != nil {
			body = &touchReadCloser{ReadCloser: body, touch: t} // each read is progress
		}
		rc = &cancelOnClose{ReadCloser: body, cancel: cancel}
		return nil
	})
	return rc, err
}

// finalError is an attempt's error that must not be retried, even though
// the attempt timed out.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }

// Long marks ctx for calls that move an object of unbounded size (a base
// backup, streamed in and out): the retry wrapper then bounds each wait
// for progress (the next read of the data being put, the next read of the
// body being fetched, an answer) by its OpTimeout instead of the whole
// call, which may rightly take hours.
func Long(ctx context.Context) context.Context { return context.WithValue(ctx, longKey{}, true) }

type longKey struct{}

func isLong(ctx context.Context) bool { v, _ := ctx.Value(longKey{}).(bool); return v }

type touchKey struct{}

// touchOf is the function that records progress in an attempt of a long
// call, or nil.
func touchOf(ctx context.Context) func() { t, _ := ctx.Value(touchKey{}).(func()); return t }

// attempt is the context of one attempt: it ends after OpTimeout, or, for
// a long call, after OpTimeout without progress.
func (r *retrying) attempt(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.p.OpTimeout <= 0 {
		return context.WithCancel(ctx)
	}
	if !isLong(ctx) {
		return context.WithTimeout(ctx, r.p.OpTimeout)
	}
	actx, cancel := context.WithCancel(ctx)
	d := r.p.OpTimeout
	timer := time.AfterFunc(d, cancel)
	touch := func() { timer.Reset(d) }
	return context.WithValue(actx, touchKey{}, touch), func() { timer.Stop(); cancel() }
}

type touchReader struct {
	r     io.Reader
	touch func()
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.touch()
	return n, err
}

type touchReadCloser struct {
	io.ReadCloser
	touch func()
}

func (t *touchReadCloser) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.touch()
	return n, err
}

// Unwrap returns the backend's own reader.
func (t *touchReadCloser) Unwrap() io.ReadCloser { return t.ReadCloser }

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Unwrap returns the backend's own reader, so that a copy from a local
// file can still be done by the kernel.
func (c *cancelOnClose) Unwrap() io.ReadCloser { return c.ReadCloser }

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func (r *retrying) Stat(ctx context.Context, key string) (Info, error) {
	var info Info
	err := r.do(ctx, "stat", key, func(ctx context.Context) error {
		var err error
		info, err = r.b.Stat(ctx, key)
		return err
	})
	return info, err
}

func (r *retrying) List(ctx context.Context, prefix string, fn func(Info) error) error {
	// A listing is retried only until it has delivered its first item, so
	// fn never sees an item twice. An error from fn is returned as it is,
	// never retried.
	delivered := false
	var fnErr, interrupted error
	err := r.do(ctx, "list", prefix, func(ctx context.Context) error {
		if interrupted != nil {
			return interrupted // an attempt that had delivered items timed out
		}
		err := r.b.List(ctx, prefix, func(i Info) error {
			delivered = true
			if fnErr = fn(i); fnErr != nil {
				return fnErr
			}
			return nil
		})
		if fnErr != nil {
			return nil
		}
		if delivered && err != nil {
			// Not retried: %v drops the transient mark.
			interrupted = fmt.Errorf("listing interrupted: %v", err)
			return interrupted
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

func (r *retrying) Remove(ctx context.Context, key string) error {
	return r.do(ctx, "remove", key, func(ctx context.Context) error { return r.b.Remove(ctx, key) })
}

// removeBatch bounds the keys of one retried RemoveMany call (S3's limit).
const removeBatch = 1000

// RemoveMany implements BatchRemover. Batches of the wrapped backend are
// retried whole (deleting is idempotent), each within OpTimeout; a backend
// without batches gets one retried Remove per key.
func (r *retrying) RemoveMany(ctx context.Context, keys []string) error {
	br, ok := r.b.(BatchRemover)
	if !ok {
		for _, k := range keys {
			if err := r.Remove(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), removeBatch)]
		keys = keys[len(batch):]
		if err := r.do(ctx, "remove", batch[0], func(ctx context.Context) error { return br.RemoveMany(ctx, batch) }); err != nil {
			return err
		}
	}
	return nil
}

var (
	_ Backend      = (*retrying)(nil)
	_ BatchRemover = (*retrying)(nil)
)
