package s3

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
)

// newBackend returns a backend on srv, in bucket under prefix, with the
// server's credentials; edit changes its Config first.
func newBackend(t *testing.T, srv *s3test.Server, bucket, prefix string, edit func(*Config)) *Backend {
	t.Helper()
	cfg := Config{
		Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestConformance(t *testing.T) {
	srv := s3test.StartServer(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newBackend(t, srv, srv.NewBucket(t), "repo/main", nil)
	})
}

// The whole suite again with a multipart threshold that its 16 MiB object
// crosses, and without a prefix.
func TestConformanceMultipart(t *testing.T) {
	srv := s3test.StartServer(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		return newBackend(t, srv, srv.NewBucket(t), "", func(c *Config) {
			c.MultipartThreshold, c.PartSize = MinPartSize, MinPartSize
		})
	})
}

// onlyReader hides every method but Read: a stream of unknown length.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func pattern(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*31 + i>>11)
	}
	return data
}

// pendingUploads counts the multipart uploads started and neither
// completed nor aborted.
func pendingUploads(t *testing.T, srv *s3test.Server, bucket string) int {
	t.Helper()
	out, err := srv.Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	return len(out.Uploads)
}

func TestMultipart(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	b := newBackend(t, srv, bucket, "mp", func(c *Config) { c.MultipartThreshold, c.PartSize = 1<<20, MinPartSize })
	ctx := context.Background()

	cases := []struct {
		name string
		data []byte
		r    func([]byte) io.Reader
		size func([]byte) int64
	}{
		{"in memory, 3 parts", pattern(2*MinPartSize + 12345), func(d []byte) io.Reader { return bytes.NewReader(d) }, func(d []byte) int64 { return int64(len(d)) }},
		{"stream of unknown size", pattern(2*MinPartSize + 777), func(d []byte) io.Reader { return onlyReader{bytes.NewReader(d)} }, func([]byte) int64 { return -1 }},
		{"stream ending on a part boundary", pattern(2 * MinPartSize), func(d []byte) io.Reader { return onlyReader{bytes.NewReader(d)} }, func([]byte) int64 { return -1 }},
	}
	for i, c := range cases {
		key := fmt.Sprintf("big/%d", i)
		if err := b.Put(ctx, key, c.r(c.data), c.size(c.data)); err != nil {
			t.Fatalf("%s: Put: %v", c.name, err)
		}
		if got := storagetest.Get(t, b, key); !bytes.Equal(got, c.data) {
			t.Errorf("%s: read back %d bytes that differ from the %d put", c.name, len(got), len(c.data))
		}
		info, err := b.Stat(ctx, key)
		if err != nil || info.Size != int64(len(c.data)) {
			t.Errorf("%s: Stat = %+v, %v; want size %d", c.name, info, err, len(c.data))
		}
		err = b.Put(ctx, key, bytes.NewReader(c.data[:3<<20]), 3<<20)
		if !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s: Put over it: got %v, want fs.ErrExist", c.name, err)
		}
	}
	if got := storagetest.Get(t, b, "big/0"); !bytes.Equal(got, cases[0].data) {
		t.Errorf("a refused multipart Put changed the object")
	}

	// Concurrent multipart uploads of one key: all pass the existence
	// check, and only the conditional completion decides.
	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte{byte('a' + i)}, MinPartSize+100)
			errs[i] = b.Put(ctx, "race", bytes.NewReader(data), int64(len(data)))
		}()
	}
	wg.Wait()
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
		} else if !errors.Is(err, fs.ErrExist) {
			t.Errorf("concurrent multipart Put: %v", err)
		}
	}
	if winners != 1 {
		t.Errorf("%d concurrent multipart Puts succeeded, want 1", winners)
	}
	if got := storagetest.Get(t, b, "race"); len(got) != MinPartSize+100 || !bytes.Equal(got, bytes.Repeat(got[:1], len(got))) {
		t.Errorf("raced object has %d bytes or mixed content", len(got))
	}

	// A source that breaks in the second part: nothing visible, the
	// upload aborted.
	broken := io.MultiReader(bytes.NewReader(pattern(MinPartSize+1000)), &failAfter{})
	if err := b.Put(ctx, "broken", onlyReader{broken}, -1); err == nil {
		t.Fatal("Put from a breaking source succeeded")
	}
	if _, err := b.Stat(ctx, "broken"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed multipart Put left an object: Stat = %v", err)
	}
	if k := pendingUploads(t, srv, bucket); k != 0 {
		t.Errorf("%d multipart uploads left unfinished, want 0 (aborted)", k)
	}
}

type failAfter struct{}

func (*failAfter) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestWrongCredentials(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	const secret = "not-the-secret-at-all"
	for name, creds := range map[string]aws.CredentialsProvider{
		"wrong secret": credentials.NewStaticCredentialsProvider(srv.AccessKey, secret, ""),
		"unknown key":  credentials.NewStaticCredentialsProvider("AKIAUNKNOWNKEY000000", secret, ""),
	} {
		b := newBackend(t, srv, bucket, "p", func(c *Config) { c.Credentials = creds })
		ctx := context.Background()
		errs := map[string]error{
			"put":    b.Put(ctx, "k", strings.NewReader("x"), 1),
			"exists": b.Exists(ctx),
		}
		_, errs["open"] = b.Open(ctx, "k")
		if name != "unknown key" {
			// versitygw answers an unknown key with 404, and the answer
			// to a HEAD has no body to tell that from a missing object.
			_, errs["stat"] = b.Stat(ctx, "k")
		}
		errs["list"] = b.List(ctx, "", func(storage.Info) error { return nil })
		t.Logf("%s: put: %v", name, errs["put"])
		for op, err := range errs {
			switch {
			case !errors.Is(err, ErrAccessDenied):
				t.Errorf("%s: %s: got %v, want ErrAccessDenied", name, op, err)
			case errors.Is(err, storage.ErrTransient), errors.Is(err, fs.ErrNotExist):
				t.Errorf("%s: %s: %v is marked transient or not-exist", name, op, err)
			case !strings.Contains(err.Error(), "access denied: check the credentials"):
				t.Errorf("%s: %s: message %q does not say to check the credentials", name, op, err)
			case strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "\n"):
				t.Errorf("%s: %s: message %q shows the secret or spans lines", name, op, err)
			}
		}
	}
}

func TestMissingBucket(t *testing.T) {
	srv := s3test.StartServer(t)
	b := newBackend(t, srv, "no-such-bucket", "p", nil)
	ctx := context.Background()
	err := b.Exists(ctx)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) {
		t.Errorf("Exists: got %v, want fs.ErrNotExist naming the bucket", err)
	}
	err = b.Put(ctx, "k", strings.NewReader("x"), 1)
	if err == nil || errors.Is(err, storage.ErrTransient) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Put: got %v, want a permanent error saying the bucket does not exist", err)
	}
	if _, err := b.Open(ctx, "k"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open: got %v, want an error about the bucket, not a missing object", err)
	}

	good := newBackend(t, srv, srv.NewBucket(t), "p", nil)
	if err := good.Exists(ctx); err != nil {
		t.Errorf("Exists on an existing, empty bucket: %v", err)
	}
}

// wantTransient checks that a call failed on its own with an error worth
// retrying, rather than running into the test's own deadline (a hang).
func wantTransient(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	if ctx.Err() != nil {
		t.Errorf("%s: still running at the test's deadline, it hangs: %v", what, err)
	} else if !errors.Is(err, storage.ErrTransient) {
		t.Errorf("%s: got %v, want an error matching storage.ErrTransient", what, err)
	}
}

func TestServerDown(t *testing.T) {
	srv := s3test.StartServer(t)
	b := newBackend(t, srv, srv.NewBucket(t), "p", nil)
	storagetest.Put(t, b, "kept", []byte("still here"))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Every call fails on its own, not by running into the deadline.
	_, err := b.Stat(ctx, "kept")
	t.Logf("stat: %v", err)
	wantTransient(t, ctx, "Stat with the server down", err)
	err = b.Put(ctx, "new", bytes.NewReader([]byte("x")), 1)
	wantTransient(t, ctx, "Put with the server down", err)

	// Through the retry wrapper: retried, then given up as transient.
	r := storage.WithRetry(b, storage.RetryPolicy{OpTimeout: 2 * time.Second, Budget: 2 * time.Second,
		FirstDelay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond})
	_, err = r.Open(ctx, "kept")
	wantTransient(t, ctx, "Open through WithRetry with the server down", err)

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := storagetest.Get(t, r, "kept"); string(got) != "still here" {
		t.Errorf("after a restart: got %q", got)
	}
	storagetest.Put(t, r, "new", []byte("y"))
}

// A store that accepts connections and never answers: the retry wrapper's
// per-call timeout ends each attempt, and the error is transient.
func TestServerHangs(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	b, err := New(context.Background(), Config{Bucket: "b", Endpoint: "http://" + l.Addr().String(),
		Credentials: credentials.NewStaticCredentialsProvider("AK", "SK", "")})
	if err != nil {
		t.Fatal(err)
	}
	r := storage.WithRetry(b, storage.RetryPolicy{OpTimeout: 300 * time.Millisecond, Budget: 500 * time.Millisecond,
		FirstDelay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = r.Stat(ctx, "k")
	wantTransient(t, ctx, "Stat against a silent store", err)
}

func TestOpenViaURL(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	srv.Setenv(t) // credentials from the default chain
	b, err := storage.Open(context.Background(), "s3://"+bucket+"/a/b/", srv.Options(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "s3://"+bucket+"/a/b"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	storagetest.Put(t, b, "k", []byte("v"))
	out, err := srv.Client().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/b/k")})
	if err != nil || aws.ToInt64(out.ContentLength) != 1 {
		t.Errorf("object a/b/k in the bucket: %v", err)
	}
}

func TestListSkipsForeignKeys(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	b := newBackend(t, srv, bucket, "repo", nil)
	storagetest.Put(t, b, "wal/a", []byte("1"))
	c := srv.Client()
	for _, k := range []string{"repo/wal/.a.tmp", "repo/wal/sub/", "repo-other/wal/b", "repo2", "top"} {
		if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("")}); err != nil {
			t.Fatalf("PutObject %s: %v", k, err)
		}
	}
	if got := storagetest.Keys(t, b, ""); fmt.Sprint(got) != "[wal/a]" {
		t.Errorf("List = %v, want [wal/a]", got)
	}
}

func TestRemoveMany(t *testing.T) {
	srv := s3test.StartServer(t)
	b := newBackend(t, srv, srv.NewBucket(t), "p", nil)
	r := storage.WithRetry(b, storage.DefaultRetry)
	ctx := context.Background()
	// More than one DeleteObjects batch.
	const n = maxBatch + 5
	keys := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range keys {
		keys[i] = fmt.Sprintf("wal/%06d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := b.Put(ctx, keys[i], strings.NewReader("x"), 1); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	storagetest.Put(t, b, "keep", []byte("k"))
	if err := storage.RemoveMany(ctx, r, append(keys, "wal/missing")); err != nil {
		t.Fatalf("RemoveMany: %v", err)
	}
	if got := storagetest.Keys(t, b, ""); fmt.Sprint(got) != "[keep]" {
		t.Errorf("after RemoveMany: %d keys left (%.80v), want [keep]", len(got), got)
	}
	if err := b.RemoveMany(ctx, []string{"ok", "../bad"}); !errors.Is(err, storage.ErrBadKey) {
		t.Errorf("RemoveMany with a bad key: got %v, want ErrBadKey", err)
	}
}

func TestNoCredentials(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	srv.Setenv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	b, err := storage.Open(context.Background(), "s3://"+bucket+"/p", srv.Options(), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Put(context.Background(), "k", strings.NewReader("x"), 1)
	if !errors.Is(err, ErrNoCredentials) || errors.Is(err, storage.ErrTransient) {
		t.Errorf("Put without credentials: got %v, want ErrNoCredentials", err)
	}
}

// A store without conditional writes (or without multi-object delete)
// answers 501; simulated by a proxy in front of the real server.
func TestStoreWithoutConditionalWrites(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	target, _ := url.Parse(srv.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, multiDelete := r.URL.Query()["delete"]
		if r.Header.Get("If-None-Match") != "" || multiDelete {
			refused.Add(1)
			w.WriteHeader(http.StatusNotImplemented)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>not here</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()

	for _, mode := range []string{"detected", "configured"} {
		b := newBackend(t, srv, bucket, mode, func(c *Config) {
			c.Endpoint = front.URL
			c.MultipartThreshold, c.PartSize = 1<<20, MinPartSize
			c.NoConditionalPut = mode == "configured"
		})
		small, big := []byte("small"), pattern(MinPartSize+10)
		storagetest.Put(t, b, "small", small)
		storagetest.Put(t, b, "big", big)
		for key, data := range map[string][]byte{"small": small, "big": big} {
			if err := b.Put(context.Background(), key, bytes.NewReader(pattern(len(data))), int64(len(data))); !errors.Is(err, fs.ErrExist) {
				t.Errorf("%s: second Put of %s: got %v, want fs.ErrExist", mode, key, err)
			}
			if got := storagetest.Get(t, b, key); !bytes.Equal(got, data) {
				t.Errorf("%s: %s changed by a refused Put", mode, key)
			}
		}
		if err := storage.RemoveMany(context.Background(), b, []string{"small", "big", "missing"}); err != nil {
			t.Errorf("%s: RemoveMany one by one: %v", mode, err)
		}
		if keys := storagetest.Keys(t, b, ""); len(keys) != 0 {
			t.Errorf("%s: left after RemoveMany: %v", mode, keys)
		}
	}
	if refused.Load() == 0 {
		t.Error("the proxy refused nothing: the test tested nothing")
	}
}

// checksumFront is a proxy in front of the real server that can damage
// what passes: the bytes of uploads on their way to the store, and, in
// the store's answers to them, the CRC-32C it confirms, the ETag, and the
// bytes of the next object read.
type checksumFront struct {
	damageUploads, dropEcho, wrongEcho, foreignETag, damageRead atomic.Bool
	damaged, echoes, unsigned, reads                            atomic.Int64
	// refuseChecksum is the status (400 or 501) with which an upload with
	// a CRC-32C header is refused, as by a store that does not know it.
	refuseChecksum, refused atomic.Int64
}

func (f *checksumFront) handler(t *testing.T, srv *s3test.Server) http.Handler {
	target, _ := url.Parse(srv.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	flip := func(r io.ReadCloser) io.ReadCloser {
		data, _ := io.ReadAll(r)
		r.Close()
		if len(data) > 0 {
			data[len(data)/2] ^= 0x40
			f.damaged.Add(1)
		}
		return io.NopCloser(bytes.NewReader(data))
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		switch resp.Request.Method {
		case http.MethodPut:
			if resp.Header.Get("X-Amz-Checksum-Crc32c") != "" {
				f.echoes.Add(1)
			}
			if f.dropEcho.Load() {
				resp.Header.Del("X-Amz-Checksum-Crc32c")
			}
			if f.wrongEcho.Load() {
				resp.Header.Set("X-Amz-Checksum-Crc32c", "AAAAAA==")
			}
			if f.foreignETag.Load() {
				resp.Header.Set("ETag", `"not-an-md5-1"`)
			}
		case http.MethodGet:
			f.reads.Add(1)
			if f.damageRead.CompareAndSwap(true, false) {
				resp.Body = flip(resp.Body)
			}
		}
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("X-Amz-Content-Sha256") == "UNSIGNED-PAYLOAD" {
			f.unsigned.Add(1)
		}
		if st := f.refuseChecksum.Load(); st != 0 && r.Header.Get("X-Amz-Checksum-Crc32c") != "" {
			f.refused.Add(1)
			io.Copy(io.Discard, r.Body)
			code, msg := "InvalidArgument", "Unsupported header 'x-amz-checksum-crc32c' received for this API call."
			if st == 501 {
				code, msg = "NotImplemented", "Header 'x-amz-checksum-crc32c' with value 'x' not implemented"
			}
			w.WriteHeader(int(st))
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
			return
		}
		if r.Method == http.MethodPut && f.damageUploads.Load() && r.ContentLength > 0 {
			r.Body = flip(r.Body)
		}
		proxy.ServeHTTP(w, r)
	})
}

// An upload is kept only once the store has confirmed its bytes: a body
// damaged on the way is refused, also over TLS, where the body is not
// signed and only the checksum guards it; a store that does not confirm
// the CRC-32C is checked by its ETag or by reading the object back, and an
// object that does not match is removed.
func TestUploadChecksums(t *testing.T) {
	srv := s3test.StartServer(t)
	bucket := srv.NewBucket(t)
	var f checksumFront
	plain := httptest.NewServer(f.handler(t, srv))
	defer plain.Close()
	tls := httptest.NewTLSServer(f.handler(t, srv))
	defer tls.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tls.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", ca)
	front := func(endpoint, prefix string) *Backend {
		return newBackend(t, srv, bucket, prefix, func(c *Config) {
			c.Endpoint = endpoint
			c.MultipartThreshold, c.PartSize = 1<<20, MinPartSize
		})
	}
	small, big := pattern(100_000), pattern(MinPartSize+10)
	absent := func(b *Backend, key string) {
		t.Helper()
		if _, err := b.Stat(context.Background(), key); !storage.IsNotExist(err) {
			t.Errorf("%s after a refused put: Stat gives %v, want not found", key, err)
		}
	}
	put := func(b *Backend, key string, data []byte) error {
		return b.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
	}

	for name, endpoint := range map[string]string{"http": plain.URL, "tls": tls.URL} {
		b := front(endpoint, "damaged-"+name)
		f.damageUploads.Store(true)
		for key, data := range map[string][]byte{"small": small, "big": big} {
			if err := put(b, key, data); err == nil {
				t.Errorf("%s: a put of %s damaged on the way succeeded", name, key)
			}
		}
		f.damageUploads.Store(false)
		absent(b, "small")
		absent(b, "big")
		if n := pendingUploads(t, srv, bucket); n != 0 {
			t.Errorf("%s: %d multipart uploads left behind", name, n)
		}
		// Undamaged, both go in, and the store confirmed the CRC-32C.
		// The body is signed over plain HTTP only.
		echoes, unsigned, reads := f.echoes.Load(), f.unsigned.Load(), f.reads.Load()
		storagetest.Put(t, b, "small", small)
		storagetest.Put(t, b, "big", big)
		if f.reads.Load() != reads {
			t.Errorf("%s: a confirmed upload was read back", name)
		}
		if f.echoes.Load() == echoes {
			t.Errorf("%s: the store confirmed no CRC-32C of a PutObject", name)
		}
		if got, want := f.unsigned.Load()-unsigned, map[string]int64{"http": 0, "tls": 3}[name]; got != want {
			t.Errorf("%s: %d uploads left the body out of the signature, want %d", name, got, want)
		}
		if got := storagetest.Get(t, b, "small"); !bytes.Equal(got, small) {
			t.Errorf("%s: small read back differs", name)
		}
	}
	if f.damaged.Load() < 4 {
		t.Fatalf("the proxy damaged %d uploads, want 4: the test tested nothing", f.damaged.Load())
	}

	// A store that ignores the checksum: its answer lacks it.
	b := front(plain.URL, "unconfirmed")
	f.dropEcho.Store(true)
	reads := f.reads.Load()
	storagetest.Put(t, b, "by-etag", small) // the ETag is the MD5
	if n := f.reads.Load() - reads; n != 0 {
		t.Errorf("an object whose ETag is its MD5 was read back (%d GETs)", n)
	}
	f.foreignETag.Store(true)
	storagetest.Put(t, b, "read-back", small) // so it is read back
	if f.reads.Load() == reads {
		t.Error("an object whose ETag is not its MD5 was not read back")
	}
	f.damageRead.Store(true)
	damaged := f.damaged.Load()
	if err := put(b, "read-back-differs", small); err == nil || !strings.Contains(err.Error(), "did not keep the object as sent") {
		t.Errorf("an object read back different: got %v, want it refused", err)
	}
	if f.damaged.Load() == damaged {
		t.Error("the object was not read back")
	}
	absent(b, "read-back-differs")
	f.dropEcho.Store(false)
	f.foreignETag.Store(false)
	// A store that confirms another CRC-32C than the one sent.
	f.wrongEcho.Store(true)
	if err := put(b, "wrong-echo", small); err == nil || !strings.Contains(err.Error(), "CRC-32C") {
		t.Errorf("a store confirming another CRC-32C: got %v, want the put refused", err)
	}
	f.wrongEcho.Store(false)
	absent(b, "wrong-echo")
	// A store that refuses the header gets a Content-MD5 instead, and
	// still a conditional write; damage on the way is still refused.
	for _, st := range []int64{400, 501} {
		f.refuseChecksum.Store(st)
		refused := f.refused.Load()
		b := front(plain.URL, fmt.Sprintf("refused-%d", st))
		storagetest.Put(t, b, "small", small)
		if f.refused.Load() == refused {
			t.Errorf("%d: the proxy refused no upload", st)
		}
		if got := storagetest.Get(t, b, "small"); !bytes.Equal(got, small) {
			t.Errorf("%d: read back differs", st)
		}
		if err := put(b, "small", small); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%d: a second put: got %v, want fs.ErrExist", st, err)
		}
		if !b.conditional() {
			t.Errorf("%d: a refused checksum taken for a store without conditional writes", st)
		}
		f.damageUploads.Store(true)
		if err := put(b, "damaged", small); err == nil {
			t.Errorf("%d: a put damaged on the way succeeded", st)
		}
		f.damageUploads.Store(false)
		absent(b, "damaged")
	}
	f.refuseChecksum.Store(0)
	for _, key := range []string{"by-etag", "read-back"} {
		if got := storagetest.Get(t, b, key); !bytes.Equal(got, small) {
			t.Errorf("%s read back differs", key)
		}
	}
}

// Two stores with the same bucket and prefix are two places: a local
// cache keyed by storage.Place never answers for the other one.
func TestPlaceNamesTheEndpoint(t *testing.T) {
	ctx := context.Background()
	open := func(endpoint string) storage.Backend {
		b, err := storage.Open(ctx, "s3://bucket/pg", storage.Options{"endpoint": endpoint, "region": "us-east-1"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := open("http://127.0.0.1:9000"), open("http://127.0.0.1:9001")
	if a.String() != b.String() {
		t.Fatalf("String() %q and %q: the test wants the same bucket and prefix", a, b)
	}
	if pa, pb := storage.Place(a), storage.Place(b); pa == pb || !strings.Contains(pa, "127.0.0.1:9000") {
		t.Errorf("Place %q and %q, want two places naming their endpoints", pa, pb)
	}
	if p := storage.Place(storage.WithRetry(a, storage.DefaultRetry)); p != storage.Place(a) {
		t.Errorf("Place through the retry wrapper = %q", p)
	}
}
