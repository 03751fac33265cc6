// Command walship-restore is a restore_command: it fetches one WAL file from
// a walship repository into the path PostgreSQL names.
//
//	restore_command = 'walship-restore --repo /var/lib/walship %f %p'
//
// With --standby it waits for a segment that is not archived yet, for a
// warm standby fed by the archive alone (what pg_standby did):
//
//	restore_command = 'walship-restore --repo /var/lib/walship --standby --trigger /var/lib/postgresql/promote.trigger %f %p'
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/warmstandby"
)

// Exit statuses PostgreSQL understands.
const (
	exitOK       = 0
	exitNotFound = 1   // "not in the archive": the server tries streaming, waits, or ends recovery
	exitAbort    = 255 // above 125: the server stops recovery with FATAL
)

func main() {
	flags := append(cliutil.RepoFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "on-error", Value: "auto", EnvVars: []string{"WALSHIP_ON_ERROR"},
			Usage: "when the archive cannot be read (storage down, corrupt object): " +
				"'abort' exits 255 so PostgreSQL stops recovery instead of ending it early and losing the tail; " +
				"'missing' exits 1 (not found) so PostgreSQL retries; 'auto' is 'missing' in a standby (standby.signal, " +
				"or standby_mode in recovery.conf, in the data directory) and 'abort' otherwise"}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "prefetch", EnvVars: []string{"WALSHIP_PREFETCH"},
			Usage: "after restoring a segment, fetch the next N of its timeline in the background into --spool, so the next calls are a local rename (archive recovery and standbys; off for pg_rewind)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "spool", EnvVars: []string{"WALSHIP_SPOOL"},
			Usage: "directory outside the data directory for --prefetch"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Aliases: []string{"D"}, EnvVars: []string{"WALSHIP_DATA_DIR"},
			Usage: "data directory to look for standby.signal in (default: the current directory, which is the data directory when the server runs restore_command)"}),
	)
	flags = append(flags, standbyFlags()...)
	app := &cli.App{
		Name:      "walship-restore",
		Usage:     "restore one WAL file (PostgreSQL restore_command)",
		ArgsUsage: "%f %p",
		Flags:     flags,
		Before:    cliutil.Before(flags),
		Action:    run,
	}
	cliutil.Main(app, exitCode)
}

// readError is a failure to read the archive, with the exit status the
// --on-error policy chose for it.
type readError struct {
	err   error
	abort bool
}

func (e readError) Error() string {
	if e.abort {
		return e.err.Error() + " (aborting recovery: the archive cannot be read)"
	}
	return e.err.Error() + " (reported as not found so that the server retries)"
}
func (e readError) Unwrap() error { return e.err }

func run(c *cli.Context) error {
	args, err := cliutil.Args(c, "%f", "%p")
	if err != nil {
		return err
	}
	abort, err := abortOnError(c.String("on-error"), c.String("data-dir"))
	if err != nil {
		return cliutil.UsageError{Err: err}
	}
	standby, err := standbyOptions(c)
	if err != nil {
		return cliutil.UsageError{Err: err}
	}
	pf := restore.Prefetch{N: c.Int("prefetch"), Spool: c.String("spool")}
	if err := pf.Check(); err != nil {
		return cliutil.UsageError{Err: err}
	}
	r, err := cliutil.OpenRepo(c, nil)
	if err == nil && os.Getenv(prefetchWorkerEnv) != "" {
		return prefetchWorker(c, r, pf, args[0])
	}
	if err == nil && pf.Active(args[0], args[1]) && (standby == nil || !warmstandby.FastTriggered(*standby)) {
		n, _ := wal.ParseName(args[0])
		pf.Clean(r, n)
		if ok, terr := pf.Take(r, args[0], args[1]); ok {
			slog.Info("restored from the prefetch spool", "file", args[0])
			startPrefetch(r, pf, n, args[1])
			return nil
		} else if terr != nil {
			slog.Warn("prefetched copy unusable, fetching again", "file", args[0], "err", terr)
		}
	}
	if err == nil {
		var res restore.Result
		if standby != nil {
			res, err = warmstandby.Fetch(c.Context, r, args[0], args[1], *standby)
		} else {
			res, err = restore.Fetch(c.Context, r, args[0], args[1])
		}
		if err == nil {
			slog.Info("restored", "file", args[0], "from", res.Key, "bytes", res.Bytes)
			if pf.Active(args[0], args[1]) {
				startPrefetch(r, pf, res.Name, args[1])
			}
			return nil
		}
	}
	if storage.IsNotExist(err) {
		slog.Debug("not in the archive", "file", args[0])
		return cliutil.Quiet{Err: err}
	}
	if errors.Is(err, restore.ErrInvalid) {
		return cliutil.UsageError{Err: err}
	}
	return readError{fmt.Errorf("%s: %w", args[0], err), abort}
}

// abortOnError decides what a read failure does under the --on-error policy.
func abortOnError(policy, dataDir string) (bool, error) {
	switch policy {
	case "abort":
		return true, nil
	case "missing":
		return false, nil
	case "auto", "":
		return !pgdata.IsStandby(dataDir), nil
	}
	return false, fmt.Errorf("--on-error %q: use auto, abort or missing", policy)
}

// exitCode is the one place walship-restore chooses its exit status.
func exitCode(err error) int {
	var re readError
	switch {
	case err == nil:
		return exitOK
	case storage.IsNotExist(err):
		return exitNotFound
	case errors.As(err, &re):
		if re.abort {
			return exitAbort
		}
		return exitNotFound
	}
	return exitAbort // a usage error: a misconfigured restore_command must not end recovery early
}

// prefetchWorkerEnv marks the detached process that fills the prefetch
// spool; its value is the segment size.
const prefetchWorkerEnv = "WALSHIP_PREFETCH_WORKER"

// startPrefetch starts this same command again, detached in its own
// session, to fetch the segments after the one just restored into the spool
// while the server replays it, unless enough are spooled already or a
// worker is at it. Its output is discarded: the server does not wait for
// it, and a failure only means the server's next call fetches directly.
func startPrefetch(r *repo.Repo, pf restore.Prefetch, n wal.Name, restored string) {
	segSize, err := restore.SegSizeOf(restored)
	if err != nil || !pf.NeedsFill(r, n, segSize) {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", prefetchWorkerEnv, segSize))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		slog.Debug("prefetch not started", "err", err)
		return
	}
	cmd.Process.Release()
}

// prefetchWorker fills the spool with the segments after name.
func prefetchWorker(c *cli.Context, r *repo.Repo, pf restore.Prefetch, name string) error {
	segSize, err := strconv.ParseUint(os.Getenv(prefetchWorkerEnv), 10, 32)
	n, perr := wal.ParseName(name)
	if err != nil || perr != nil || wal.ValidSegSize(uint32(segSize)) != nil {
		return nil
	}
	if err := pf.Fill(c.Context, r, n, uint32(segSize)); err != nil {
		slog.Debug("prefetch stopped", "after", name, "err", err)
	}
	return nil
}
