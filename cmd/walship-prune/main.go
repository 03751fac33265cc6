// Command walship-prune removes WAL a walship repository no longer needs,
// as a standby's archive_cleanup_command:
//
//	archive_cleanup_command = 'walship-prune --repo /var/lib/walship %r'
//
// or as a scheduled retention job:
//
//	walship-prune --repo /var/lib/walship --keep-backups 2 --keep-age 7d
package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/prune"
	"github.com/walship/walship/storage"
)

// Exit statuses (cliutil's table).
const (
	exitOK     = cliutil.ExitOK
	exitFailed = cliutil.ExitFailed // nothing (more) removed: a removal or a storage call failed, or the repository was refused
	exitUsage  = cliutil.ExitUsage  // bad arguments, no policy
)

func main() { cliutil.Main(newApp(), exitCode) }

// newApp defines the command line.
func newApp() *cli.App {
	flags := append(append(cliutil.RepoFlags(), cliutil.RetentionFlags()...),
		&cli.StringFlag{Name: "before", Usage: "remove the files before `SEGMENT` on every timeline, as %r does"},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "system-identifier", EnvVars: []string{"WALSHIP_SYSTEM_IDENTIFIER"},
			Usage: "refuse unless the repository belongs to the cluster with this database system `ID`"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Aliases: []string{"D"}, EnvVars: []string{"WALSHIP_DATA_DIR"},
			Usage: "refuse unless the repository belongs to the cluster in this data `DIR` (its global/pg_control); with %r the current directory, which is the data directory when the server runs archive_cleanup_command, is checked when readable"}),
	)
	return &cli.App{
		Name:      "walship-prune",
		Usage:     "remove WAL a walship repository no longer needs (archive_cleanup_command, or a retention job)",
		ArgsUsage: "[%r]",
		Description: "As a standby's archive_cleanup_command it removes the WAL before %r, the oldest file the standby still needs:\n\n" +
			"    archive_cleanup_command = '/usr/local/bin/walship-prune --config /etc/walship/walship.toml %r'\n\n" +
			"As a scheduled job it keeps what a retention policy says (--keep-backups, --keep-age, --before). " +
			"It never removes history files, walship.json, or the WAL of the newest base backup, and refuses a repository " +
			"that belongs to another cluster than the data directory's.",
		Flags:  flags,
		Before: cliutil.Before(flags),
		Action: run,
	}
}

func run(c *cli.Context) error {
	o, restartPoint, err := options(c)
	if err != nil {
		return err
	}
	log := cliutil.Logger(c)
	r, err := cliutil.OpenRepo(c, cliutil.Open{Log: log})
	if err != nil {
		return err
	}
	o.Bar = func(total int64) *progress.Bar { return progress.New("walship-prune", "files", total) }
	res, err := prune.Prune(c.Context, r, o)
	if errors.Is(err, prune.ErrNoIdentity) {
		err = fmt.Errorf("%w; to prune an archive of bare files (as cp writes them) say --layout plain", err)
	}
	for _, n := range res.Notes {
		log.Info(n)
	}
	if o.DryRun {
		for _, f := range res.Remove {
			fmt.Printf("would remove %s (%s)\n", f.Key, progress.Bytes(f.Size))
		}
	}
	if err != nil {
		if res.Removed > 0 {
			fmt.Println(res.Summary())
		}
		return err
	}
	if restartPoint && !o.DryRun {
		// Under the server, quiet unless asked: its log is not a report.
		log.Info(res.Summary(), "repo", r.String())
		return nil
	}
	fmt.Println(res.Summary())
	return nil
}

// exitCode is the one place walship-prune chooses its exit status.
// PostgreSQL logs a non-zero archive_cleanup_command status as a warning
// and goes on.
func exitCode(err error) int {
	var usage cliutil.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, prune.ErrNoPolicy), errors.Is(err, storage.ErrNotOwner):
		return exitUsage
	}
	// Refused too (prune.ErrRefused: the repository is not the cluster's,
	// or does not say whose it is): nothing was removed.
	return exitFailed
}
