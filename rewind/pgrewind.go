package rewind

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/wal"
)

// RewindOutput is what walship reads from pg_rewind's messages (and from
// the lines walship-restore logs when pg_rewind runs it).
type RewindOutput struct {
	HaveDivergence bool
	Diverged       wal.LSN
	DivergedTLI    uint32
	Checkpoint     wal.LSN
	CheckpointTLI  uint32
	SameTimeline   bool // "source and target cluster are on the same timeline"
	NoRewind       bool // "no rewind required"
	CrashRecovery  bool // pg_rewind ran the target's crash recovery first
	Copying        bool // "need to copy": past the point of no return
	CopyMB         int64
	TotalMB        int64
	Done           bool
	Restored       []Restored // WAL files walship-restore fetched
	Errors         []string   // error, detail and hint lines
}

// Restored is one WAL file fetched from the archive for pg_rewind.
type Restored struct {
	Name  string
	Bytes int64
}

// RestoredBytes adds up what was fetched.
func (o *RewindOutput) RestoredBytes() int64 {
	var n int64
	for _, r := range o.Restored {
		n += r.Bytes
	}
	return n
}

var (
	reDiverged   = regexp.MustCompile(`servers diverged at WAL location ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)`)
	reCheckpoint = regexp.MustCompile(`rewinding from last common checkpoint at ([0-9A-F]+/[0-9A-F]+) on timeline (\d+)`)
	reNeedCopy   = regexp.MustCompile(`need to copy (\d+) MB \(total source directory size is (\d+) MB\)`)
	reMessage    = regexp.MustCompile(`^(pg_rewind|walship-restore): (?:(error|fatal|detail|hint): )?`)
	// What walship-restore (cliutil's log format) writes: its time and
	// pid, then its name; a file restored, a log line of another level,
	// or its one-line failure report.
	reLogPrefix = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] `)
	reRestored  = regexp.MustCompile(`^walship-restore: restored file=([0-9A-F]{24})\b.*\bbytes=(\d+)`)
	reLogLevel  = regexp.MustCompile(`^walship-restore: (DEBUG|WARNING|ERROR): `)
)

// Line reads one line of output. It returns what to show the operator
// with --progress ("" for nothing).
func (o *RewindOutput) Line(line string) string {
	line = reLogPrefix.ReplaceAllString(strings.TrimSpace(line), "")
	if line == "" {
		return ""
	}
	if m := reRestored.FindStringSubmatch(line); m != nil {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		o.Restored = append(o.Restored, Restored{Name: m[1], Bytes: n})
		return fmt.Sprintf("fetched %s from the archive (%s; %d so far)", m[1], mib(n), len(o.Restored))
	}
	if reLogLevel.MatchString(line) { // walship-restore's other log lines (not found, ...)
		return ""
	}
	if m := reMessage.FindStringSubmatch(line); m != nil {
		switch m[2] {
		case "error", "fatal", "detail", "hint":
			o.Errors = append(o.Errors, line)
			return line
		}
		if m[1] == "walship-restore" { // its one-line failure report
			o.Errors = append(o.Errors, line)
			return line
		}
	}
	switch {
	case reDiverged.MatchString(line):
		m := reDiverged.FindStringSubmatch(line)
		o.Diverged, _ = wal.ParseLSN(m[1])
		o.DivergedTLI = atou32(m[2])
		o.HaveDivergence = true
	case reCheckpoint.MatchString(line):
		m := reCheckpoint.FindStringSubmatch(line)
		o.Checkpoint, _ = wal.ParseLSN(m[1])
		o.CheckpointTLI = atou32(m[2])
	case reNeedCopy.MatchString(line):
		m := reNeedCopy.FindStringSubmatch(line)
		o.CopyMB, _ = strconv.ParseInt(m[1], 10, 64)
		o.TotalMB, _ = strconv.ParseInt(m[2], 10, 64)
		o.Copying = true
	case strings.Contains(line, "source and target cluster are on the same timeline"):
		o.SameTimeline = true
	case strings.Contains(line, "no rewind required"):
		o.NoRewind = true
	case strings.Contains(line, "to complete crash recovery"):
		o.CrashRecovery = true
	case strings.HasSuffix(line, "Done!"):
		o.Done = true
	}
	return line
}

// ErrorText is pg_rewind's own account of a failure, on one line.
func (o *RewindOutput) ErrorText() string {
	var parts []string
	for _, e := range o.Errors {
		parts = append(parts, reMessage.ReplaceAllString(e, ""))
	}
	return strings.Join(parts, "; ")
}

func atou32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 10, 32)
	return uint32(v)
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// runPgRewind runs pg_rewind (with the source's password, if any, in its
// environment: see pgserver.ForChild), feeding each output line to out.Line and
// showing what it returns through show. When ctx ends, pg_rewind gets
// SIGTERM (the terminal already sent SIGINT on Ctrl-C) and runPgRewind
// waits for it to exit.
func runPgRewind(ctx context.Context, bin string, args []string, password string, out *RewindOutput, show func(string)) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = pgserver.Env(true, password)
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	w.Close()
	stop := context.AfterFunc(ctx, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		time.AfterFunc(time.Minute, func() { cmd.Process.Kill() })
	})
	defer stop()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(scanLinesOrCR)
	for sc.Scan() {
		if s := out.Line(sc.Text()); s != "" {
			show(s)
		}
	}
	io.Copy(io.Discard, r)
	r.Close()
	return cmd.Wait()
}

// scanLinesOrCR splits at \n and at \r (progress on a terminal).
func scanLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}
