package pgdata

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func writePIDFile(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, PostmasterPIDFile), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPostmasterPID(t *testing.T) {
	dir := t.TempDir()
	if pid, alive, err := PostmasterPID(dir); pid != 0 || alive || err != nil {
		t.Errorf("no file: %d %v %v", pid, alive, err)
	}
	if _, err := ReadPIDFile(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadPIDFile without a file: %v", err)
	}
	writePIDFile(t, dir, strconv.Itoa(os.Getpid())+"\n/data\n1700000000\n5432\n/tmp\n*\n  5432001    32768\nready   \n")
	if pid, alive, err := PostmasterPID(dir); pid != os.Getpid() || !alive || err != nil {
		t.Errorf("live process: %d %v %v", pid, alive, err)
	}
	p, err := ReadPIDFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.DataDir != "/data" || p.Port != 5432 || p.SocketDir != "/tmp" || p.ListenAddr != "*" || p.Status != "ready" || p.SingleUser {
		t.Errorf("ReadPIDFile = %+v", p)
	}
	if host, port, err := p.Address(); host != "/tmp" || port != 5432 || err != nil {
		t.Errorf("Address = %q %d %v", host, port, err)
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	writePIDFile(t, dir, strconv.Itoa(gone.Process.Pid)+"\n/data\n")
	if pid, alive, err := PostmasterPID(dir); pid != gone.Process.Pid || alive || err != nil {
		t.Errorf("stale file: %d %v %v", pid, alive, err)
	}
	for _, bad := range []string{"garbage\n", "0\n/data\n", "\n", ""} {
		writePIDFile(t, dir, bad)
		if _, _, err := PostmasterPID(dir); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestPIDFileSingleUser: a single-user backend (postgres --single, as
// pg_rewind runs for crash recovery) writes its PID negated; that process
// is the server.
func TestPIDFileSingleUser(t *testing.T) {
	dir := t.TempDir()
	writePIDFile(t, dir, "-"+strconv.Itoa(os.Getpid())+"\n/data\n1700000000\n5432\n\n\n")
	p, err := ReadPIDFile(dir)
	if err != nil || p.PID != os.Getpid() || !p.SingleUser || !p.Alive() {
		t.Fatalf("ReadPIDFile = %+v, %v", p, err)
	}
	if pid, alive, err := PostmasterPID(dir); pid != os.Getpid() || !alive || err != nil {
		t.Errorf("PostmasterPID = %d %v %v", pid, alive, err)
	}
}

func TestPIDFileAddress(t *testing.T) {
	dir := t.TempDir()
	for content, want := range map[string]string{
		"1\n/d\n0\n5433\n/run/pg\n*\n":      "/run/pg",
		"1\n/d\n0\n5433\n\n10.0.0.1\n":      "10.0.0.1",
		"1\n/d\n0\n5433\n\n*\n":             "localhost",
		"1\n/d\n0\n5433\n\n0.0.0.0\n":       "localhost",
		"1\n/d\n0\n5433\n\n::\n":            "localhost",
		"1\n/d\n0\n5433\n\n\n":              "localhost",
		"1\n/d\n0\n5433\n/tmp\n":            "/tmp", // the first five lines are written at once
		"1\n/d\n0\n5433\n":                  "",     // not complete yet
		"1\n/d\n0\n\n/tmp\n*\n":             "",     // no port
		"1\n/d\n0\nfive\n/tmp\n*\n":         "",
		"1\n/d\n0\n5433\n/tmp\n*\nk\nready": "/tmp",
	} {
		writePIDFile(t, dir, content)
		p, err := ReadPIDFile(dir)
		if err != nil {
			t.Fatal(err)
		}
		host, port, err := p.Address()
		if want == "" {
			if err == nil {
				t.Errorf("%q: Address = %q %d, want an error", content, host, port)
			}
			continue
		}
		if host != want || port != 5433 || err != nil {
			t.Errorf("%q: Address = %q %d %v, want %q 5433", content, host, port, err, want)
		}
	}
}

// TestProcessAliveZombie: a process that has exited and that its parent
// has not reaped is dead, though kill(pid, 0) still succeeds.
func TestProcessAliveZombie(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	if !ProcessAlive(pid) {
		t.Fatal("a running process is not alive")
	}
	cmd.Process.Kill()
	// Not reaped: wait until the kernel has made it a zombie.
	for i := 0; ; i++ {
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if z := len(data) > 0 && zombieState(data); z {
			break
		}
		if i > 500 {
			t.Fatal("the killed process never became a zombie")
		}
		sleepBriefly()
	}
	if ProcessAlive(pid) {
		t.Error("a zombie counts as alive")
	}
	dir := t.TempDir()
	writePIDFile(t, dir, strconv.Itoa(pid)+"\n/data\n")
	if _, alive, _ := PostmasterPID(dir); alive {
		t.Error("PostmasterPID: a zombie postmaster counts as alive")
	}
	for _, pid := range []int{0, -1} {
		if ProcessAlive(pid) {
			t.Errorf("ProcessAlive(%d) = true", pid)
		}
	}
}

func zombieState(stat []byte) bool {
	for i := len(stat) - 1; i >= 0; i-- {
		if stat[i] == ')' {
			return i+2 < len(stat) && stat[i+2] == 'Z'
		}
	}
	return false
}

func sleepBriefly() { time.Sleep(10 * time.Millisecond) }
