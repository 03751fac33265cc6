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

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/restore"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Exit statuses PostgreSQL understands (cliutil's table).
const (
	exitOK       = cliutil.ExitOK
	exitNotFound = cliutil.ExitFailed // "not in the archive": the server tries streaming, waits, or ends recovery
	exitAbort    = cliutil.ExitAbort  // above 125: the server stops recovery with FATAL
)

func main() { cliutil.Main(newApp(), exitCode) }

// newApp defines the command line.
func newApp() *cli.App {
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
	return &cli.App{
		Name:      "walship-restore",
		Usage:     "restore one WAL file (PostgreSQL restore_command)",
		ArgsUsage: "%f %p",
		Description: "PostgreSQL runs it for every WAL file recovery needs, from postgresql.conf, with recovery.signal " +
			"(archive recovery, PITR) or standby.signal in the data directory:\n\n" +
			"    restore_command = '/usr/local/bin/walship-restore --config /etc/walship/walship.toml %f %p'\n\n" +
			"It writes %p atomically, after checking the object's checksum, size and page header. A file that is not archived " +
			"exits 1 at once. With --standby it waits for a segment that is not archived yet (a warm standby fed by the archive " +
			"alone; set recovery_prefetch = off on PostgreSQL 15 and later), until it arrives, the --trigger file appears, " +
			"the server is promoted or its postmaster dies.",
		Flags:  flags,
		Before: cliutil.Before(flags),
		Action: run,
	}
}

func run(c *cli.Context) error {
	args, err := cliutil.Args(c, "%f", "%p")
	if err != nil {
		return err
	}
	req, err := request(c, args[0], args[1])
	if err != nil {
		return err
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{Cache: req.IdentityCache, Log: req.Log})
	if err != nil {
		return req.Fail(err)
	}
	_, err = restore.Run(c.Context, r, req)
	if storage.IsNotExist(err) {
		req.Log.Debug("not in the archive", "file", args[0])
		return cliutil.Quiet{Err: err}
	}
	if errors.Is(err, restore.ErrInvalid) {
		return cliutil.UsageError{Err: err}
	}
	return err
}

// request turns the flags and arguments into a restore.Request.
func request(c *cli.Context, f, p string) (restore.Request, error) {
	usage := func(err error) (restore.Request, error) { return restore.Request{}, cliutil.UsageError{Err: err} }
	n, err := wal.ParseName(f)
	if err != nil {
		return usage(fmt.Errorf("%w: %w (restore_command takes %%f %%p)", restore.ErrInvalid, err))
	}
	policy, err := restore.ParsePolicy(c.String("on-error"))
	if err != nil {
		return usage(fmt.Errorf("--on-error: %w", err))
	}
	standby, err := standbyOptions(c, cliutil.Logger(c))
	if err != nil {
		return usage(err)
	}
	log := cliutil.Logger(c)
	pf := restore.Prefetch{N: c.Int("prefetch"), Spool: c.String("spool")}
	if err := pf.Check(); err != nil {
		return usage(fmt.Errorf("--prefetch %d --spool %q: %w", pf.N, pf.Spool, err))
	}
	return restore.Request{Name: n, Dest: p, DataDir: c.String("data-dir"), OnError: policy, Standby: standby,
		Prefetch: pf, Spawn: restore.SpawnSelf, WorkerSegSize: restore.WorkerFromEnv(), Log: log}, nil
}

// exitCode is the one place walship-restore chooses its exit status.
func exitCode(err error) int {
	var re *restore.ReadError
	switch {
	case err == nil:
		return exitOK
	case storage.IsNotExist(err):
		return exitNotFound
	case errors.As(err, &re):
		if re.Abort {
			return exitAbort
		}
		return exitNotFound
	}
	return exitAbort // a usage error: a misconfigured restore_command must not end recovery early
}
