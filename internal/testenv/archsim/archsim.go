// Package archsim drives an archive_command the way PostgreSQL's archiver
// process does, without a server: it takes the files marked ready in
// pg_wal/archive_status in the server's order (timeline history files
// first, then the oldest WAL), runs the command once per file with %p and
// %f substituted, and renames <file>.ready to <file>.done when the command
// exits 0. Like the server (PostgreSQL 15 and later), it skips a file whose
// .ready vanished since the directory was read: an archiver that pushes
// ahead and marks files .done itself (WAL-G does) is not called for them.
// It is for benchmarks and crash tests of archive commands.
package archsim

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/walship/walship/wal"
)

// Ready lists the files marked ready in walDir, in the archiver's order.
func Ready(walDir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(walDir, "archive_status"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), ".ready"); ok {
			if _, err := wal.ParseName(base); err == nil {
				names = append(names, base)
			}
		}
	}
	wal.SortArchiveOrder(names)
	return names, nil
}

// Command builds the process for one file from argv, in which the
// arguments "%p" and "%f" are replaced. %p is relative to the data
// directory (pg_wal/<name>) and the process runs there, as with the server.
type Command func(ctx context.Context, dataDir, p, f string) *exec.Cmd

// Argv returns a Command that runs argv with %p and %f substituted.
func Argv(argv ...string) Command {
	return func(ctx context.Context, dataDir, p, f string) *exec.Cmd {
		args := make([]string, len(argv))
		for i, a := range argv {
			args[i] = strings.NewReplacer("%p", p, "%f", f).Replace(a)
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = dataDir
		return cmd
	}
}

// Stats counts what a run did.
type Stats struct {
	Archived int // the command exited 0
	Skipped  int // marked .done by someone else before the command ran
	Failures int
	Elapsed  time.Duration
}

// Run archives every ready file of dataDir/pg_wal once, in order. A failing
// command is retried (up to three times, like the server, then the run
// stops with an error). Files that become ready during the run are taken
// too.
func Run(ctx context.Context, dataDir string, cmd Command) (Stats, error) {
	var st Stats
	start := time.Now()
	walDir := filepath.Join(dataDir, "pg_wal")
	for {
		names, err := Ready(walDir)
		if err != nil {
			return st, err
		}
		if len(names) == 0 {
			st.Elapsed = time.Since(start)
			return st, nil
		}
		for _, f := range names {
			if err := archiveOne(ctx, dataDir, walDir, f, cmd, &st); err != nil {
				st.Elapsed = time.Since(start)
				return st, err
			}
		}
	}
}

func archiveOne(ctx context.Context, dataDir, walDir, f string, cmd Command, st *Stats) error {
	status := filepath.Join(walDir, "archive_status", f)
	for attempt := 1; ; attempt++ {
		if _, err := os.Stat(status + ".ready"); errors.Is(err, fs.ErrNotExist) {
			st.Skipped++
			return nil
		}
		c := cmd(ctx, dataDir, filepath.Join("pg_wal", f), f)
		out, err := c.CombinedOutput()
		if err == nil {
			st.Archived++
			// The server only warns when the command renamed it already.
			if err := os.Rename(status+".ready", status+".done"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		}
		st.Failures++
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 3 {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return fmt.Errorf("archive command failed 3 times for %s (exit %d): %s", f, ee.ExitCode(), strings.TrimSpace(string(out)))
			}
			return fmt.Errorf("archive command for %s: %w", f, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
