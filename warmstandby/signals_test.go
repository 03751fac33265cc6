package warmstandby

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestFastTriggered(t *testing.T) {
	dir := t.TempDir()
	trig := filepath.Join(dir, "trigger")
	o := Options{Trigger: trig}
	if FastTriggered(o) {
		t.Fatal("no trigger file: FastTriggered = true")
	}
	for content, want := range map[string]bool{"": false, "smart": false, "fast": true, "FAST\n": true} {
		if err := os.WriteFile(trig, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := FastTriggered(o); got != want {
			t.Errorf("trigger %q: FastTriggered = %v, want %v", content, got, want)
		}
	}
}

// TestLivenessPostmasterPID: the process in postmaster.pid is watched, a
// single-user backend's negated PID too, and it is gone once it has
// exited, even while a zombie.
func TestLivenessPostmasterPID(t *testing.T) {
	for _, single := range []bool{false, true} {
		pm := exec.Command("sleep", "60")
		if err := pm.Start(); err != nil {
			t.Skipf("cannot start a stand-in postmaster: %v", err)
		}
		dir := t.TempDir()
		pid := strconv.Itoa(pm.Process.Pid)
		if single {
			pid = "-" + pid
		}
		if err := os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(pid+"\n"+dir+"\n1700000000\n5432\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		l := newLiveness(dir)
		if l.pmPid != pm.Process.Pid {
			t.Errorf("single-user %v: watching pid %d, want %d", single, l.pmPid, pm.Process.Pid)
		}
		if why := l.gone(); why != "" {
			t.Errorf("single-user %v: gone while it runs: %s", single, why)
		}
		pm.Process.Kill()
		deadline := time.Now().Add(5 * time.Second)
		for l.gone() == "" && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if l.gone() == "" {
			t.Errorf("single-user %v: a killed, unreaped postmaster is not gone", single)
		}
		pm.Wait()
	}
	if l := newLiveness(t.TempDir()); l.pmPid != 0 {
		t.Errorf("no postmaster.pid: watching pid %d", l.pmPid)
	}
}
