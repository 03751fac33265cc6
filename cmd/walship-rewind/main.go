// Command walship-rewind turns an old primary into a streaming standby of
// the server that took over from it, with pg_rewind fetching the WAL the
// old primary no longer has from the walship archive:
//
//	walship-rewind --repo /var/lib/walship -D /var/lib/postgresql/15/main \
//	  --source-server 'host=new-primary port=5432 user=postgres' --progress --start
//
// Run it as the user that owns the data directory, with the old primary
// stopped. --dry-run reports the divergence and the WAL to fetch and changes
// nothing.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/rewind"
)

// Exit statuses (cliutil's table).
const (
	exitOK         = cliutil.ExitOK
	exitFailed     = cliutil.ExitFailed // a check or step failed; the target's data files are unchanged
	exitUsage      = cliutil.ExitUsage
	exitDamaged    = cliutil.ExitRebuild    // pg_rewind failed after it started changing the target: new base backup
	exitNotStandby = cliutil.ExitNotStarted // rewound, but the standby configuration or the start failed
)

func main() { cliutil.Main(newApp(), exitCode) }

// newApp defines the command line.
func newApp() *cli.App {
	flags := append(cliutil.RepoFlags(),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Aliases: []string{"D"}, TakesFile: true,
			Usage: "the old primary's data directory (the target; it must be stopped)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "source-server", EnvVars: []string{"WALSHIP_SOURCE_SERVER"},
			Usage: "libpq connection string of the new primary (the source), e.g. 'host=new-primary port=5432 user=postgres'"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "primary-conninfo",
			Usage: "primary_conninfo the standby uses (default: --source-server)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "slot", Usage: "primary_slot_name the standby uses (default: none)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "restore-bin", TakesFile: true,
			Usage: "the walship-restore program for restore_command (default: the one next to walship-rewind)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pg-bin", TakesFile: true,
			Usage: "directory of pg_rewind, pg_controldata, pg_ctl and postgres of the target's version (default: PATH, then /usr/lib/postgresql/<version>/bin)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "config-file", TakesFile: true,
			Usage: "the target's postgresql.conf when it is not in the data directory (default: from postmaster.opts)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"},
			Usage: "report the divergence point, timelines and WAL to fetch; change nothing"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "progress", Aliases: []string{"P"},
			Usage: "show pg_rewind's progress and every WAL file fetched from the archive"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "start", Usage: "start the target (pg_ctl start) and wait until it streams from the source"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "start-log", TakesFile: true,
			Usage: "server log for --start (pg_ctl -l; default: beside the data directory, <data-dir>.walship-rewind-start.log)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "start-timeout", Value: 5 * time.Minute,
			Usage: "with --start: how long to wait for the server to start and stream"}),
	)
	return &cli.App{
		Name:  "walship-rewind",
		Usage: "failback: rewind the old primary with WAL from the archive and make it a standby of the new one",
		Description: "Run it on the old primary's host, as the owner of its data directory, with the old primary stopped:\n\n" +
			"    walship-rewind --config /etc/walship/walship.toml -D /var/lib/postgresql/15/main \\\n" +
			"      --source-server 'host=new-primary port=5432 user=postgres' --progress --start\n\n" +
			"It checks both servers and the repository before changing anything, runs pg_rewind --restore-target-wal " +
			"(PostgreSQL 13 and later) with walship-restore as its restore_command, puts back the old primary's own " +
			"configuration and writes its standby configuration. --dry-run changes nothing.",
		Flags:  flags,
		Before: cliutil.Before(flags),
		Action: run,
	}
}

func run(c *cli.Context) error {
	if c.NArg() != 0 {
		return cliutil.UsageError{Err: fmt.Errorf("unexpected arguments %v: walship-rewind takes only flags", c.Args().Slice())}
	}
	if c.String("data-dir") == "" {
		return cliutil.UsageError{Err: errors.New("no target: give -D the old primary's data directory")}
	}
	if c.String("source-server") == "" {
		return cliutil.UsageError{Err: errors.New("no source: give --source-server the new primary's connection string")}
	}
	bin := c.String("restore-bin")
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return cliutil.UsageError{Err: fmt.Errorf("cannot find walship-restore next to walship-rewind (%v): give --restore-bin", err)}
		}
		bin = filepath.Join(filepath.Dir(self), "walship-restore")
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	_, err = rewind.Run(c.Context, rewind.Options{
		DataDir:         c.String("data-dir"),
		SourceServer:    c.String("source-server"),
		PrimaryConnInfo: c.String("primary-conninfo"),
		SlotName:        c.String("slot"),
		PGBin:           c.String("pg-bin"),
		ConfigFile:      c.String("config-file"),
		RestoreBin:      bin,
		RestoreArgs:     cliutil.RepoArgs(c),
		Repo:            r,
		DryRun:          c.Bool("dry-run"),
		Progress:        c.Bool("progress"),
		Start:           c.Bool("start"),
		StartLog:        c.String("start-log"),
		StartTimeout:    c.Duration("start-timeout"),
		Out:             os.Stdout,
	})
	return err
}

// exitCode is the one place walship-rewind chooses its exit status.
func exitCode(err error) int {
	var se *rewind.StepError
	var ue cliutil.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se) && se.Changed:
		return exitDamaged
	case errors.As(err, &se) && (se.Step == rewind.StepStandby || se.Step == rewind.StepStart):
		return exitNotStandby
	}
	return exitFailed
}
