// Package s3test runs a real S3 server for walship's tests: versitygw, an
// S3 gateway that keeps buckets as directories, on a free port of
// 127.0.0.1 with a temporary data directory and fixed test credentials.
//
// A test calls StartServer, makes a bucket with NewBucket, and points a
// backend or a walship binary at it with Options or Env:
//
//	srv := s3test.StartServer(t)
//	bucket := srv.NewBucket(t)
//	cmd.Env = append(os.Environ(), srv.Env()...)
//	// --repo s3://<bucket>/some/prefix
//
// Stop and Start take the server down and bring it back on the same port
// with the same data, for tests of what happens while the store is away.
// StartTLSServer serves HTTPS with a given certificate instead, for clients
// that speak only HTTPS to S3 (pgBackRest, in the benchmarks).
//
// The server binary is $WALSHIP_S3_SERVER, else
// /var/cache/walship/bin/versitygw, else versitygw in PATH
// (scripts/install-s3-server.sh builds it). Without one the test is
// skipped, except under CI=true, where it fails.
package s3test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/walship/walship/storage"
)

// The root account of every test server. They are test values, not secrets.
const (
	AccessKey = "WALSHIPTESTACCESSKEY"
	SecretKey = "walship-test-secret-key-0123456789abcdef"
	Region    = "us-east-1"
)

// DefaultBinary is where scripts/install-s3-server.sh puts the server.
const DefaultBinary = "/var/cache/walship/bin/versitygw"

const installHint = "run scripts/install-s3-server.sh (it builds github.com/versity/versitygw/cmd/versitygw into /var/cache/walship/bin), or set WALSHIP_S3_SERVER to a versitygw binary"

// Binary finds the S3 server: $WALSHIP_S3_SERVER, DefaultBinary, or
// versitygw in PATH.
func Binary() (string, error) {
	if p := os.Getenv("WALSHIP_S3_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("WALSHIP_S3_SERVER: %w", err)
		}
		return p, nil
	}
	if _, err := os.Stat(DefaultBinary); err == nil {
		return DefaultBinary, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", errors.New("versitygw not found in $WALSHIP_S3_SERVER, " + DefaultBinary + " or PATH")
}

// Require returns the server binary, or skips the test (fails it under
// CI=true) when there is none.
func Require(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("an S3 server is required in CI: %v: %s", err, installHint)
		}
		t.Skipf("no S3 server: %v: %s", err, installHint)
	}
	return bin
}

// Server is a running (or stopped) S3 server.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:port (https:// from
	// StartTLSServer).
	Endpoint string
	// AccessKey, SecretKey and Region are what clients must use.
	AccessKey, SecretKey, Region string

	bin, dataDir, logPath, addr string
	certFile, keyFile           string // TLS, when set

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}

	buckets atomic.Int64
}

// StartServer starts a server for the test and stops it when the test
// ends. It fails the test when the server does not come up.
func StartServer(t testing.TB) *Server {
	t.Helper()
	return start(t, "", "")
}

// StartTLSServer is StartServer serving HTTPS with the certificate and key
// in the PEM files certFile and keyFile (self-signed will do: the server's
// own probes and Client do not verify it). Endpoint is https://127.0.0.1:port.
func StartTLSServer(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	return start(t, certFile, keyFile)
}

func start(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	s := &Server{
		AccessKey: AccessKey, SecretKey: SecretKey, Region: Region,
		bin: bin, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "versitygw.log"),
		certFile: certFile, keyFile: keyFile,
	}
	if err := os.Mkdir(s.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 3 { // another process may take the free port first
		if s.addr, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
		s.Endpoint = s.scheme() + "://" + s.addr
		if err = s.Start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("starting the S3 server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the S3 server: %v", err)
		}
	})
	return s
}

func (s *Server) scheme() string {
	if s.certFile != "" {
		return "https"
	}
	return "http"
}

// httpClient is an HTTP client for the server's own endpoint: it does not
// verify a TLS server's (test) certificate.
func (s *Server) httpClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return &http.Client{Timeout: timeout, Transport: tr}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Start runs the server (again) on its port with its data, and returns
// once it answers. Starting a running server does nothing.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"--port", s.addr, "--region", s.Region, "--quiet"}
	if s.certFile != "" {
		args = append(args, "--cert", s.certFile, "--key", s.keyFile)
	}
	cmd := exec.Command(s.bin, append(args, "posix", s.dataDir)...)
	// Credentials through the environment, not the command line (ps).
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the test binary, even one that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited

	deadline := time.Now().Add(30 * time.Second)
	hc := s.httpClient(time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("%s exited at start: %s", s.bin, s.logTail())
		default:
		}
		// Any HTTP answer (403 to an unsigned request) means it serves.
		if resp, err := hc.Get(s.Endpoint + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			s.stopLocked()
			return fmt.Errorf("%s does not answer on %s after 30s: %s", s.bin, s.addr, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL) and returns once it is
// gone. Its data stays for Start. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) does not exit", s.bin, s.cmd.Process.Pid)
	}
}

// logTail is the end of the server's log, for error messages.
func (s *Server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	text := strings.TrimSpace(string(data))
	if len(text) > 2000 {
		text = "..." + text[len(text)-2000:]
	}
	if text == "" {
		return "(nothing in its log)"
	}
	return text
}

// DataDir is the directory that holds the buckets, one directory each.
func (s *Server) DataDir() string { return s.dataDir }

// Options are the storage options that point an s3:// backend at the
// server (credentials come from Env or the environment).
func (s *Server) Options() storage.Options {
	return storage.Options{"endpoint": s.Endpoint, "region": s.Region, "path-style": "true"}
}

// Env is the environment for a walship binary (or anything using the AWS
// SDK's default chain) to reach the server: credentials, region, the
// WALSHIP_S3_* endpoint settings, and no shared AWS config files or
// instance metadata from the machine.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + s.Region,
		"AWS_PROFILE=",
		"AWS_CONFIG_FILE=" + filepath.Join(s.dataDir, "..", "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.dataDir, "..", "no-aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"WALSHIP_S3_ENDPOINT=" + s.Endpoint,
		"WALSHIP_S3_REGION=" + s.Region,
		"WALSHIP_S3_PATH_STYLE=true",
	}
}

// Setenv sets Env in the test's own process, for the test's duration
// (it cannot be used in parallel tests).
func (s *Server) Setenv(t testing.TB) {
	t.Helper()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Client is an S3 client of the server's root account, for tests that
// look at or tamper with objects directly.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:                 s.httpClient(0),
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket makes a bucket and fails the test if it cannot.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
}

// NewBucket makes a bucket with a name no other test of this server uses.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("walship-test-%d", s.buckets.Add(1))
	s.CreateBucket(t, name)
	return name
}

// SelfSignedCert writes a self-signed certificate for 127.0.0.1 and
// localhost, and its key, into dir with openssl (cert.pem, key.pem,
// readable by all: the files are test values) and returns their paths.
// Without openssl the test is skipped (it fails under CI=true).
func SelfSignedCert(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("openssl is required in CI for a TLS test server: %v", err)
		}
		t.Skipf("no openssl for a TLS test server: %v", err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	out, err := exec.Command(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
		"-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
		"-keyout", keyFile, "-out", certFile).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	for _, f := range []string{certFile, keyFile} {
		os.Chmod(f, 0o644)
	}
	return certFile, keyFile
}
