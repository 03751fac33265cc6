package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/repo"
)

// How the tars reach the repository without touching local disk:
// pg_basebackup -D DIR -F tar writes one file per tablespace (<oid>.tar)
// and base.tar into DIR, which must be empty or absent when it starts
// (and it writes only one tablespace to stdout). So DIR starts absent;
// pg_basebackup creates it right after connecting, and walship then makes
// every tar it will write a named pipe, read by a goroutine that streams
// it into the repository. pg_basebackup writes into the pipes as into
// files; it blocks while the repository is slower, so nothing piles up.
//
// The pipes must exist before pg_basebackup opens its first tar. It prints
// its first message ("initiating base backup", -v) after it creates DIR
// and before it asks the server for the backup; its stderr is a pipe that
// walship fills before the start, so that this first write blocks until
// the named pipes are made, and only then drains it. The backup manifest
// (backup_manifest.tmp, then renamed and synced) stays a small local file.

// syncTimeout bounds the wait for pg_basebackup to create its directory
// (it connects first); past it, walship goes on without the guarantee.
const syncTimeout = 30 * time.Second

// archiveSink stores one tar as pg_basebackup writes it; it reads r to its
// end (or fails).
type archiveSink func(ctx context.Context, part repo.BackupPart, r io.Reader) error

// bbRun is one run of pg_basebackup into named pipes.
type bbRun struct {
	bin   string
	args  []string // without -D
	dir   string   // the output directory; must not exist
	parts []repo.BackupPart
	// suffix ends the name of every tar pg_basebackup writes (".lz4"
	// when the server compresses them).
	suffix string
	sink   archiveSink
	// progress, when set, gets pg_basebackup's -P counts (kB).
	progress func(doneKB, totalKB int64)
	log      *slog.Logger
	password string // for PGPASSWORD

	mu     sync.Mutex
	lines  []string // pg_basebackup's messages, the last few
	sent   map[repo.BackupPart]bool
	runErr error // the first failure of a sink
}

// run runs pg_basebackup and waits for every tar to be stored.
func (b *bbRun) run(ctx context.Context) error {
	b.sent = map[repo.BackupPart]bool{}
	errR, errW, filled, err := prefilledPipe()
	if err != nil {
		return fmt.Errorf("setting up pg_basebackup's output: %w", err)
	}
	defer errR.Close()
	args := append(append([]string{}, b.args...), "-D", b.dir)
	cmd := exec.Command(b.bin, args...)
	cmd.Env = pgserver.Env(true, b.password)
	cmd.Stderr = errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		errW.Close()
		return fmt.Errorf("%w: %v", ErrBaseBackup, err)
	}
	errW.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

	// Wait until pg_basebackup has made its directory (and blocks on its
	// first message), or ended.
	var exitErr error
	done := false
	deadline := time.Now().Add(syncTimeout)
	for !done {
		if _, err := os.Lstat(b.dir); err == nil {
			break
		}
		select {
		case exitErr = <-exited:
			done = true
		case <-ctx.Done():
			stop()
			exitErr, done = <-exited, true
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			break
		}
	}

	b.log.Debug("pg_basebackup made its directory", "ended", done)
	var wg sync.WaitGroup
	waiting := map[repo.BackupPart]chan struct{}{} // closed when the pipe's reader is done
	if !done {
		for _, p := range b.parts {
			path := b.pipe(p)
			if err := unix.Mkfifo(path, 0o600); err != nil {
				stop()
				<-exited
				if errors.Is(err, unix.EEXIST) {
					return fmt.Errorf("%w: it opened %s before walship could make it a pipe: run the backup again", ErrBaseBackup, p)
				}
				return fmt.Errorf("making the pipe %s: %w", path, err)
			}
			ch := make(chan struct{})
			waiting[p] = ch
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(ch)
				if err := b.readPipe(ctx, p, path); err != nil {
					b.fail(err)
					stop()
				}
			}()
		}
	}

	// Now let pg_basebackup go on: drain the filler, then read its messages.
	msgs := make(chan struct{})
	go func() {
		defer close(msgs)
		if _, err := io.CopyN(io.Discard, errR, int64(filled)); err == nil {
			b.readMessages(errR)
		}
	}()

	if !done {
		select {
		case exitErr = <-exited:
		case <-ctx.Done():
			stop()
			exitErr = <-exited
		}
	}
	// Pipes pg_basebackup never opened (a tablespace dropped meanwhile)
	// still have a reader waiting in open: let it see an empty stream.
	for p, ch := range waiting {
		release(b.pipe(p), ch)
	}
	wg.Wait()
	<-msgs

	if err := ctx.Err(); err != nil {
		return err
	}
	if b.runErr != nil {
		return b.runErr
	}
	if exitErr != nil {
		return fmt.Errorf("%w: %s", ErrBaseBackup, b.lastError(exitErr))
	}
	return b.checkDir()
}

// pipe is the path of the named pipe of part p.
func (b *bbRun) pipe(p repo.BackupPart) string { return filepath.Join(b.dir, p.String()+b.suffix) }

// readPipe waits for pg_basebackup to open one pipe and stores what it
// writes there; a pipe that is closed without a byte written was not used.
func (b *bbRun) readPipe(ctx context.Context, p repo.BackupPart, path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("opening the pipe %s: %w", path, err)
	}
	defer f.Close() // pg_basebackup gets EPIPE if the store gave up early
	// A larger pipe lets pg_basebackup run ahead instead of waking walship
	// for every 64 KiB (the most an unprivileged process may ask is 1 MiB
	// by default; a smaller one is fine).
	if sc, err := f.SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) { unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
	br := bufio.NewReaderSize(f, 1<<20)
	if _, err := br.Peek(1); err == io.EOF {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading %s from pg_basebackup: %w", p, err)
	}
	b.mu.Lock()
	b.sent[p] = true
	b.mu.Unlock()
	return b.sink(ctx, p, br)
}

// release opens a pipe for writing and closes it, until its reader (done
// closes ch) has returned: a reader waiting in open then reads an empty
// stream. The writer's open fails (ENXIO) while nobody reads, so it tries
// until the reader is there or done.
func release(path string, ch chan struct{}) {
	for {
		select {
		case <-ch:
			return
		default:
		}
		if fd, err := unix.Open(path, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		}
		select {
		case <-ch:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (b *bbRun) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.runErr == nil {
		b.runErr = err
	}
}

// checkDir refuses a run that wrote a tar walship had no pipe for (a
// tablespace created after the list was read): it went to local disk.
func (b *bbRun) checkDir() error {
	ents, err := os.ReadDir(b.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type()&fs.ModeNamedPipe != 0 || e.Name() == "backup_manifest" {
			continue
		}
		return fmt.Errorf("%w: it wrote %s, which walship had no pipe for (a tablespace created during the backup?): run the backup again", ErrBaseBackup, e.Name())
	}
	return nil
}

var progressLine = regexp.MustCompile(`^\s*(\d+)/(\d+) kB`)

// readMessages reads pg_basebackup's stderr: progress lines go to
// b.progress, the last messages are kept for the report.
func (b *bbRun) readMessages(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Split(splitLines)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if m := progressLine.FindStringSubmatch(line); m != nil {
			if b.progress != nil {
				done, _ := strconv.ParseInt(m[1], 10, 64)
				total, _ := strconv.ParseInt(m[2], 10, 64)
				b.progress(done, total)
			}
			continue
		}
		b.mu.Lock()
		if b.lines = append(b.lines, line); len(b.lines) > 20 {
			b.lines = b.lines[1:]
		}
		b.mu.Unlock()
	}
}

// splitLines splits at \n and at \r (progress lines on a terminal).
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		if c == '\n' || c == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// lastError is pg_basebackup's own words for its failure: its last error
// line, else its last line, else the exit status.
func (b *bbRun) lastError(exitErr error) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := len(b.lines) - 1; i >= 0; i-- {
		if l := b.lines[i]; strings.Contains(l, "error:") || strings.Contains(l, "FATAL") || strings.Contains(l, "ERROR") {
			return strings.TrimPrefix(l, "pg_basebackup: ")
		}
	}
	if n := len(b.lines); n > 0 {
		return strings.TrimPrefix(b.lines[n-1], "pg_basebackup: ")
	}
	return exitErr.Error()
}

// notices are pg_basebackup's warnings and notices, for the report.
func (b *bbRun) notices() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range b.lines {
		if strings.Contains(l, "all required WAL segments have been archived") {
			continue // what walship checks itself
		}
		if strings.HasPrefix(l, "NOTICE:") || strings.HasPrefix(l, "WARNING:") || strings.Contains(l, "warning:") {
			out = append(out, l)
		}
	}
	return out
}

// prefilledPipe is a pipe of the smallest capacity, filled: the first
// write to it blocks until the reader drains filled bytes.
func prefilledPipe() (r, w *os.File, filled int, err error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, 0, err
	}
	r, w = os.NewFile(uintptr(fds[0]), "pg_basebackup stderr"), os.NewFile(uintptr(fds[1]), "pg_basebackup stderr")
	fail := func(err error) (*os.File, *os.File, int, error) { r.Close(); w.Close(); return nil, nil, 0, err }
	unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, os.Getpagesize()) // smallest; a larger one only costs filling
	if err := unix.SetNonblock(fds[1], true); err != nil {
		return fail(err)
	}
	junk := make([]byte, 4096)
	for {
		n, err := unix.Write(fds[1], junk)
		if n > 0 {
			filled += n
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return fail(err)
		}
	}
	if err := unix.SetNonblock(fds[1], false); err != nil {
		return fail(err)
	}
	return r, w, filled, nil
}
