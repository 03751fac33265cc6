package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walship/walship/storage"
)

func TestParseURL(t *testing.T) {
	u, _ := url.Parse("s3://bucket/a/b/")
	cfg, err := ParseURL(u, storage.Options{"endpoint": "http://h:9000", "path-style": "false", "sse": "aws:kms",
		"sse-kms-key-id": "k1", "storage-class": "STANDARD_IA", "profile": "pr", "region": "eu-west-3", "part-size": "6000000"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bucket != "bucket" || cfg.Prefix != "a/b" || cfg.Endpoint != "http://h:9000" || cfg.PathStyle == nil || *cfg.PathStyle ||
		cfg.SSE != "aws:kms" || cfg.SSEKMSKeyID != "k1" || cfg.StorageClass != "STANDARD_IA" || cfg.Profile != "pr" ||
		cfg.Region != "eu-west-3" || cfg.PartSize != 6000000 || cfg.NoConditionalPut {
		t.Errorf("ParseURL = %+v", cfg)
	}

	for _, c := range []struct {
		url  string
		opts storage.Options
		want string
	}{
		{"s3:///prefix", nil, "no bucket"},
		{"s3://AKIA:secret@bucket/p", nil, "credentials do not belong in the URL"},
		{"s3://bucket/p?region=x", nil, "unexpected query"},
		{"s3://bucket/p", storage.Options{"path-style": "maybe"}, "path-style"},
		{"s3://bucket/p", storage.Options{"multipart-threshold": "-1"}, "multipart-threshold"},
	} {
		u, _ := url.Parse(c.url)
		_, err := ParseURL(u, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseURL(%s, %v): got %v, want an error about %q", c.url, c.opts, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%s): message %q shows the password", c.url, err)
		}
	}

	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Bucket: "b", SSE: "rot13"}, "sse"},
		{Config{Bucket: "b", SSEKMSKeyID: "k"}, "needs sse aws:kms"},
		{Config{Bucket: "b", PartSize: 1 << 20}, "minimum"},
		{Config{Bucket: "b", Prefix: "a/../b"}, "prefix"},
	} {
		if _, err := New(context.Background(), c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): got %v, want an error about %q", c.cfg, err, c.want)
		}
	}
}

func apiErr(code string, status int) error {
	return &statusErr{GenericAPIError: &smithy.GenericAPIError{Code: code, Message: "msg"}, status: status}
}

// statusErr is an API error with an HTTP status, as the SDK returns them.
type statusErr struct {
	*smithy.GenericAPIError
	status int
}

func (e *statusErr) HTTPStatusCode() int { return e.status }

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err                 error
		transient, notFound bool
		denied              bool
	}{
		{apiErr("SlowDown", 503), true, false, false},
		{apiErr("InternalError", 500), true, false, false},
		{apiErr("", 502), true, false, false},
		{apiErr("NoSuchKey", 404), false, true, false},
		{apiErr("NotFound", 404), false, true, false},
		{apiErr("AccessDenied", 403), false, false, true},
		{apiErr("SignatureDoesNotMatch", 403), false, false, true},
		{apiErr("InvalidAccessKeyId", 403), false, false, true},
		{apiErr("", 403), false, false, true},
		{apiErr("NotImplemented", 501), false, false, false},
		{&smithyhttp.RequestSendError{Err: syscall.ECONNREFUSED}, true, false, false},
		{fmt.Errorf("x: %w", io.ErrUnexpectedEOF), true, false, false},
		{context.DeadlineExceeded, false, false, false},
		{errors.New("something else"), false, false, false},
	} {
		got := classify(c.err, "b")
		if errors.Is(got, storage.ErrTransient) != c.transient || isNotFound(c.err) != c.notFound || errors.Is(got, ErrAccessDenied) != c.denied {
			t.Errorf("classify(%v) = %v: transient %v not-found %v denied %v, want %v %v %v", c.err, got,
				errors.Is(got, storage.ErrTransient), isNotFound(c.err), errors.Is(got, ErrAccessDenied), c.transient, c.notFound, c.denied)
		}
	}
	if !isTaken(apiErr("PreconditionFailed", 412)) || !isTaken(apiErr("ConditionalRequestConflict", 409)) || !isTaken(apiErr("", 412)) {
		t.Error("a refused conditional write is not recognised")
	}
	if isTaken(apiErr("OperationAborted", 409)) {
		t.Error("409 OperationAborted taken for a refused conditional write")
	}
}

func TestChecksumRefused(t *testing.T) {
	refusal := func(code, msg string, status int) error {
		return &statusErr{GenericAPIError: &smithy.GenericAPIError{Code: code, Message: msg}, status: status}
	}
	for _, c := range []struct {
		err  error
		want bool
	}{
		{refusal("InvalidArgument", "Unsupported header 'x-amz-checksum-crc32c' received for this API call.", 400), true},
		{refusal("NotImplemented", "Header 'x-amz-checksum-crc32c' with value 'x' not implemented", 501), true},
		{refusal("", "x-amz-checksum-crc32c: unknown", 501), true},
		{refusal("BadDigest", "The CRC32C you specified did not match the calculated checksum.", 400), false},
		{refusal("NotImplemented", "A header you provided implies functionality that is not implemented (If-None-Match)", 501), false},
		{refusal("InvalidArgument", "Invalid storage class", 400), false},
		{errors.New("checksum"), false},
	} {
		if got := checksumRefused(c.err); got != c.want {
			t.Errorf("checksumRefused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func TestSource(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	// A reader that was read from already starts where a Read would.
	r := bytes.NewReader(data)
	r.Seek(5, io.SeekStart)
	s := newSource(r, 15)
	p, small, err := s.whole(100)
	if err != nil || !small {
		t.Fatalf("whole: %v %v", small, err)
	}
	got, _ := io.ReadAll(p.body)
	if string(got) != string(data[5:]) {
		t.Errorf("piece = %q, want %q", got, data[5:])
	}
	s.finish()
	if pos, _ := r.Seek(0, io.SeekCurrent); pos != 20 {
		t.Errorf("reader left at %d, want 20", pos)
	}

	// The announced size must be the real one.
	if _, _, err := newSource(bytes.NewReader(data), 10).whole(100); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Errorf("size too small: got %v", err)
	}
	if _, _, err := newSource(bytes.NewReader(data), 30).whole(100); err == nil || !strings.Contains(err.Error(), "ended after 20") {
		t.Errorf("size too large: got %v", err)
	}

	// A stream larger than the threshold comes out in pieces of max bytes.
	s = newSource(strings.NewReader(string(data)), -1)
	if _, small, err := s.whole(7); small || err != nil {
		t.Fatalf("whole(7) of 20 bytes: small %v, err %v", small, err)
	}
	var parts []string
	for !s.finished() {
		p, err := s.next(6)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.body)
		parts = append(parts, string(b))
	}
	if fmt.Sprint(parts) != "[012345 6789ab cdefgh ij]" {
		t.Errorf("pieces = %q", parts)
	}
}
