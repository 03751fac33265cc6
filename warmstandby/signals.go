package warmstandby

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/pgdata"
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
	word := strings.ToLower(string(bytes.TrimSpace(buf)))
	switch word {
	case "smart":
		return Smart, ""
	case "fast":
		return Fast, ""
	}
	// Empty or unknown: it may be "fast" being written (echo fast > file
	// creates the file before it writes). Decide once the file has been
	// still for a moment; the caller looks again soon.
	if fi, err := file.Stat(); err == nil && time.Since(fi.ModTime()) < triggerSettle {
		return NoFailover, ""
	}
	if word == "" {
		return Smart, ""
	}
	return Smart, fmt.Sprintf("unknown content %q (want empty, smart or fast): taken as smart", word)
}

// triggerSettle is how long an empty or unreadable trigger file must stay
// unchanged before it counts: a file being written is not read half-way.
const triggerSettle = 100 * time.Millisecond

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

// newLiveness finds the postmaster in dataDir's postmaster.pid (none when
// walship-restore runs by hand, or for a tool rather than a server; a
// single-user backend when that is what runs recovery).
func newLiveness(dataDir string) liveness {
	l := liveness{ppid: os.Getppid(), pmFile: filepath.Join(dataDir, pgdata.PostmasterPIDFile)}
	if p, err := pgdata.ReadPIDFile(dataDir); err == nil && p.PID > 1 {
		l.pmPid = p.PID
	}
	return l
}

// gone returns why the server is gone, or "" while it is there.
func (l liveness) gone() string {
	if l.ppid > 1 && os.Getppid() != l.ppid {
		return fmt.Sprintf("our parent process (pid %d) has exited", l.ppid)
	}
	if l.pmPid > 0 && !pgdata.ProcessAlive(l.pmPid) {
		return fmt.Sprintf("the postmaster (pid %d in %s) has exited", l.pmPid, l.pmFile)
	}
	return ""
}

// FastTriggered reports whether the trigger file asks for a fast failover
// now. Callers that could answer a request without waiting (a prefetched
// copy) check it first, since a fast failover serves nothing more.
func FastTriggered(o Options) bool {
	f, _ := readTrigger(o.Trigger)
	return f == Fast
}
