package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
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
}

// DefaultRetry is what the binaries use unless told otherwise.
var DefaultRetry = RetryPolicy{OpTimeout: 30 * time.Second, Budget: 60 * time.Second,
	FirstDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second}

// WithRetry wraps b so that each call is bounded by OpTimeout and calls that
// fail with ErrTransient (or time out) are tried again within Budget.
// Not-found and already-exists answers are final and never retried. Put is
// retried only when its reader can be rewound (io.Seeker).
func WithRetry(b Backend, p RetryPolicy) Backend { return &retrying{b: b, p: p} }

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
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.p.OpTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, r.p.OpTimeout)
		}
		err := f(actx)
		timedOut := actx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil || IsNotExist(err) || IsExist(err) || ctx.Err() != nil {
			return err
		}
		if timedOut {
			err = Transient(fmt.Errorf("%s %s: no answer within %s: %w", op, key, r.p.OpTimeout, err))
		}
		if !errors.Is(err, ErrTransient) {
			return err
		}
		wait := delay/2 + rand.N(delay/2+1)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %d attempts in %s: %w", attempt, r.p.Budget, err)
		}
		slog.Debug("storage call failed, retrying", "op", op, "key", key, "attempt", attempt, "err", err)
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
		last = r.b.Put(ctx, key, rd, size)
		return last
	})
}

func (r *retrying) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	var rc io.ReadCloser
	err := r.do(ctx, "open", key, func(context.Context) error {
		// The attempt's own context must outlive this function: it bounds
		// reading the body too, and ends when the reader is closed.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if r.p.OpTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, r.p.OpTimeout)
		}
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
		rc = &cancelOnClose{ReadCloser: body, cancel: cancel}
		return nil
	})
	return rc, err
}

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
