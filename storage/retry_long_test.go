package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// paced is a backend whose Put reads the data piece by piece and whose
// bodies are read the same way, checking the call's context between
// pieces, as a real store's upload or download does.
type paced struct {
	got  bytes.Buffer
	body func() io.Reader
}

func (p *paced) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	buf := make([]byte, 4)
	for {
		if err := ctx.Err(); err != nil {
			return &Error{Op: "put", Key: key, Err: err}
		}
		n, err := r.Read(buf)
		p.got.Write(buf[:n])
		if err == io.EOF {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
	}
}

func (p *paced) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	return io.NopCloser(&ctxBody{ctx: ctx, r: p.body()}), nil
}
func (p *paced) Stat(context.Context, string) (Info, error)           { return Info{}, nil }
func (p *paced) List(context.Context, string, func(Info) error) error { return nil }
func (p *paced) Remove(context.Context, string) error                 { return nil }
func (p *paced) String() string                                       { return "paced" }

// slowReader delivers its data four bytes at a time, pausing before each
// piece (and pausing stall before piece number stallAt).
type slowReader struct {
	data    []byte
	pause   time.Duration
	stallAt int
	stall   time.Duration
	n       int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	s.n++
	time.Sleep(s.pause)
	if s.n == s.stallAt {
		time.Sleep(s.stall)
	}
	k := copy(p[:min(len(p), 4)], s.data)
	s.data = s.data[k:]
	return k, nil
}

var longData = []byte("a base backup that takes a while to stream")

// The whole stream takes several times OpTimeout, each piece much less.
func newSlow() *slowReader { return &slowReader{data: longData, pause: 20 * time.Millisecond} }

const longOpTimeout = 100 * time.Millisecond

func TestLongPutBoundsProgressNotTheCall(t *testing.T) {
	p := quick
	p.OpTimeout = longOpTimeout
	f := &paced{}
	if err := WithRetry(f, p).Put(Long(context.Background()), "k", newSlow(), -1); err != nil {
		t.Fatalf("long put of a stream that keeps moving: %v", err)
	}
	if f.got.String() != string(longData) {
		t.Errorf("stored %q, want %q", f.got.String(), longData)
	}
	// The same put, not marked long, is cut by OpTimeout.
	f = &paced{}
	if err := WithRetry(f, p).Put(context.Background(), "k", newSlow(), -1); err == nil {
		t.Error("a put longer than OpTimeout was not cut without Long")
	}
}

func TestLongPutStalled(t *testing.T) {
	p := quick
	p.OpTimeout = longOpTimeout
	src := newSlow()
	src.stallAt, src.stall = 3, 3*longOpTimeout
	err := WithRetry(&paced{}, p).Put(Long(context.Background()), "k", src, -1)
	if err == nil {
		t.Fatal("a stream that stalled longer than OpTimeout was not cut")
	}
	if !strings.Contains(err.Error(), "no progress within") {
		t.Errorf("error %q does not say the call made no progress", err)
	}
}

func TestLongOpenBoundsProgressNotTheCall(t *testing.T) {
	p := quick
	p.OpTimeout = longOpTimeout
	f := &paced{body: func() io.Reader { return newSlow() }}
	rc, err := WithRetry(f, p).Open(Long(context.Background()), "k")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != string(longData) {
		t.Fatalf("long read of a body that keeps moving: %q, %v", got, err)
	}

	f.body = func() io.Reader { s := newSlow(); s.stallAt, s.stall = 3, 3*longOpTimeout; return s }
	rc, err = WithRetry(f, p).Open(Long(context.Background()), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
		t.Errorf("reading a body that stalled: %v, want it cut", err)
	}

	f.body = func() io.Reader { return newSlow() }
	rc, err = WithRetry(f, p).Open(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("a body read longer than OpTimeout was not cut without Long")
	}
}
