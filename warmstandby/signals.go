package warmstandby

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Failover is what a trigger file asks for.
type Failover int

const (
	// NoFailover: there is no trigger file; keep waiting.
	NoFailover Failover = iota
	// Smart restores every segment already in the archive, then answers
	// "not found" at the first missing one so the server ends recovery.
	Smart
	// Fast answers "not found" at once, even for a segment that is in the
	// archive.
	Fast
)

func (f Failover) String() string {
	switch f {
	case Smart:
		return "smart"
	case Fast:
		return "fast"
	}
	return "none"
}

// readTrigger reads the trigger file at path. An empty file or one that
// says "smart" asks for a smart failover, "fast" for a fast one. Other
// content is taken as smart, the choice that loses nothing, and reported
// in odd. A file that exists but cannot be read still triggers (smart).
func readTrigger(path string) (f Failover, odd string) {
	if path == "" {
		return NoFailover, ""
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NoFailover, ""
	}
	if err != nil {
		if _, serr := os.Stat(path); serr != nil {
			return NoFailover, ""
		}
		return Smart, fmt.Sprintf("cannot read it (%v): taken as smart", err)
	}
	defer file.Close()
	buf, _ := io.ReadAll(io.LimitReader(file, 64))
	switch word := strings.ToLower(string(bytes.TrimSpace(buf))); word {
	case "", "smart":
		return Smart, ""
	case "fast":
		return Fast, ""
	default:
		return Smart, fmt.Sprintf("unknown content %q (want empty, smart or fast): taken as smart", word)
	}
}

// promoteFile is the file pg_ctl promote and pg_promote() create in the
// data directory; the server looks for it only after restore_command
// returns, so a waiting restore_command must notice it itself.
const promoteFile = "promote"

func promoteRequested(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, promoteFile))
	return err == nil
}

// liveness tells whether the server that called us is still there. The
// restore_command is a child of the startup process (possibly through a
// shell), which is a child of the postmaster; while we wait the startup
// process waits for us and does not notice the postmaster's death, so we
// watch the postmaster ourselves.
type liveness struct {
	ppid   int // our parent when the wait began
	pmPid  int // the postmaster, from postmaster.pid; 0 when unknown
	pmFile string
}

func newLiveness(dataDir string) liveness {
	l := liveness{ppid: os.Getppid(), pmFile: filepath.Join(dataDir, "postmaster.pid")}
	l.pmPid = readPostmasterPID(l.pmFile)
	return l
}

// readPostmasterPID returns the PID on the first line of postmaster.pid,
// or 0 when there is no such file (walship-restore run by hand, or by a
// tool rather than a server).
func readPostmasterPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 1 {
		return 0
	}
	return pid
}

// gone returns why the server is gone, or "" while it is there.
func (l liveness) gone() string {
	if l.ppid > 1 && os.Getppid() != l.ppid {
		return fmt.Sprintf("our parent process (pid %d) has exited", l.ppid)
	}
	if l.pmPid > 0 && !processAlive(l.pmPid) {
		return fmt.Sprintf("the postmaster (pid %d in %s) has exited", l.pmPid, l.pmFile)
	}
	return ""
}

// processAlive reports whether pid runs. A zombie (dead, not yet reaped by
// a parent that may never reap it) counts as dead.
func processAlive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// pid (comm) state ...: comm may hold spaces and parentheses.
		if i := bytes.LastIndexByte(data, ')'); i >= 0 && i+2 < len(data) {
			switch data[i+2] {
			case 'Z', 'X', 'x':
				return false
			}
		}
		return true
	}
	err = unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// FastTriggered reports whether the trigger file asks for a fast failover
// now. Callers that could answer a request without waiting (a prefetched
// copy) check it first, since a fast failover serves nothing more.
func FastTriggered(o Options) bool {
	f, _ := readTrigger(o.Trigger)
	return f == Fast
}
