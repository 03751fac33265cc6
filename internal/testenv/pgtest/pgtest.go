// Package pgtest runs real PostgreSQL servers for walship's end-to-end
// tests: it finds the server binaries, builds walship's own binaries where
// the server's user can run them, and starts clusters as an unprivileged
// user when the tests run as root (PostgreSQL refuses to run as root).
//
// A test that needs PostgreSQL calls Require; without PostgreSQL it skips,
// except under CI=true, where it fails. Clusters run on the installation
// Require finds unless InitOptions.Server names another (Servers: the
// majors of WALSHIP_PG_VERSIONS, for the version matrix); the client
// programs (psql, pgbench, pg_basebackup) are always Require's.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	findOnce sync.Once
	pgBin    string
	findErr  error

	buildOnce sync.Once
	walBin    string
	buildErr  error
)

// InCI reports whether the tests run in CI, where a missing dependency is a
// failure, not a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require returns the directory of PostgreSQL's server binaries, or skips
// the test (fails it under CI=true) when there is none.
func Require(t testing.TB) string {
	t.Helper()
	findOnce.Do(func() { pgBin, findErr = findPG() })
	if findErr != nil {
		if InCI() {
			t.Fatalf("PostgreSQL is required in CI: %v", findErr)
		}
		t.Skipf("no PostgreSQL: %v (install postgresql-15, or set WALSHIP_PG_BIN)", findErr)
	}
	return pgBin
}

func findPG() (string, error) {
	if d := os.Getenv("WALSHIP_PG_BIN"); d != "" {
		return d, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("pg_ctl not found in PATH or /usr/lib/postgresql/*/bin")
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Tool is the path of a PostgreSQL program (pg_ctl, psql, pgbench, ...).
func Tool(t testing.TB, name string) string {
	return filepath.Join(Require(t), name)
}

// Walship builds walship's binaries once per test process into a directory
// every user can read and returns it.
func Walship(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "walship-bin-")
		if err != nil {
			buildErr = err
			return
		}
		os.Chmod(dir, 0o755)
		// The same build as make build: static and stripped.
		cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-trimpath", "-ldflags=-s -w", "-o", dir+"/", "./cmd/...")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		walBin = dir
	})
	if buildErr != nil {
		t.Fatalf("building walship: %v", buildErr)
	}
	return walBin
}

// Bin is the path of one walship binary.
func Bin(t testing.TB, name string) string { return filepath.Join(Walship(t), name) }

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the walship module")
	}
	return filepath.Dir(mod), nil
}

// Credential is who PostgreSQL runs as: nil when the tests are not root,
// otherwise the unprivileged user $WALSHIP_PG_USER (default postgres).
func Credential(t testing.TB) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	name := os.Getenv("WALSHIP_PG_USER")
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("tests run as root and PostgreSQL refuses root, but there is no user %q to run it as: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// Dir makes a fresh directory owned by the server's user, readable by all,
// removed when the test ends. Unlike t.TempDir it is reachable by the
// unprivileged server user, and its path is short enough for sockets.
func Dir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "wsp-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	Chown(t, d)
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("WALSHIP_KEEP") != "" {
			t.Logf("kept %s", d)
			return
		}
		os.RemoveAll(d)
	})
	return d
}

// Chown gives path (not recursively) to the server's user when running as root.
func Chown(t testing.TB, path string) {
	t.Helper()
	if c := Credential(t); c != nil {
		if err := os.Chown(path, int(c.Uid), int(c.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// Mkdir makes a directory owned by the server's user.
func Mkdir(t testing.TB, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	Chown(t, path)
	return path
}

// Command prepares a command that runs as the server's user with a clean
// locale and the PostgreSQL binaries first in PATH.
func Command(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PATH="+Require(t)+":"+Walship(t)+":"+os.Getenv("PATH"))
	if c := Credential(t); c != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c}
		cmd.Env = append(cmd.Env, "HOME=/tmp")
	}
	cmd.Dir = "/"
	return cmd
}

// Run runs a command as the server's user and returns its combined output,
// failing the test on a non-zero exit.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := RunErr(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// RunErr is Run that returns the error instead of failing.
func RunErr(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	cmd := Command(t, name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// FreePort returns a TCP port nobody listens on right now, and that it
// has not returned before: the servers of the tests listen on Unix sockets
// only (their port names the socket), which a TCP listener does not see,
// so the kernel may offer again a port a running cluster uses.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// Eventually polls cond every 100ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Cleanup removes the walship binaries built for this test process; call it
// from TestMain after the tests ran.
func Cleanup() {
	if walBin != "" {
		os.RemoveAll(walBin)
	}
}
