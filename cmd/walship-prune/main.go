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
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/prune"
	"github.com/walship/walship/wal"
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
	flags := append(cliutil.RepoFlags(),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "keep-backups", EnvVars: []string{"WALSHIP_KEEP_BACKUPS"},
			Usage: "keep the `N` newest base backups (stored with walship backup, from a primary or a standby, or known from .backup files) and the WAL they need"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "keep-age", EnvVars: []string{"WALSHIP_KEEP_AGE"},
			Usage: "keep the WAL archived within this `DURATION` (7d, 2w, 36h, 90m), everything after it, and the newest base backup taken before it"}),
		&cli.StringFlag{Name: "before", Usage: "remove the files before `SEGMENT` on every timeline, as %r does"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be removed and the bytes freed; remove nothing"},
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

// options turns the flags into prune.Options; restartPoint says the
// program runs as archive_cleanup_command (a %r argument).
func options(c *cli.Context) (o prune.Options, restartPoint bool, err error) {
	usage := func(format string, args ...any) (prune.Options, bool, error) {
		return prune.Options{}, false, cliutil.UsageError{Err: fmt.Errorf(format, args...)}
	}
	if c.NArg() > 1 {
		return usage("expected at most one argument (%%r), got %d: usage: %s [flags] [%%r]", c.NArg(), c.App.Name)
	}
	before := c.String("before")
	if c.NArg() == 1 {
		if before != "" {
			return usage("give either %%r or --before, not both")
		}
		before, restartPoint = c.Args().First(), true
	}
	if before != "" {
		n, err := wal.ParseName(before)
		if err != nil || !n.HasSegment() {
			return usage("%q is not a WAL segment name (archive_cleanup_command takes %%r)", before)
		}
		o.Before = &n
	}
	if c.IsSet("keep-backups") {
		if o.KeepBackups = c.Int("keep-backups"); o.KeepBackups < 1 {
			return usage("--keep-backups %d: must be at least 1", o.KeepBackups)
		}
	}
	if s := c.String("keep-age"); s != "" {
		d, err := parseAge(s)
		if err != nil {
			return usage("%v", err)
		}
		o.KeepAge = &d
	}
	if o.Before == nil && o.KeepBackups == 0 && o.KeepAge == nil {
		return prune.Options{}, false, cliutil.UsageError{Err: fmt.Errorf("%w: give %%r (archive_cleanup_command), --before SEGMENT, --keep-backups N or --keep-age DURATION", prune.ErrNoPolicy)}
	}
	o.DryRun = c.Bool("dry-run")
	if s := c.String("system-identifier"); s != "" {
		id, err := strconv.ParseUint(s, 10, 64)
		if err != nil || id == 0 {
			return usage("--system-identifier %q: expected the database system identifier, a positive decimal number (pg_controldata shows it)", s)
		}
		o.SystemID, o.SystemIDFrom = id, "--system-identifier"
	}
	dataDir, explicit := c.String("data-dir"), true
	if dataDir == "" && restartPoint {
		dataDir, explicit = ".", false
	}
	if dataDir != "" {
		id, err := pgdata.SystemID(dataDir)
		switch {
		case err == nil:
			if o.SystemID != 0 && o.SystemID != id {
				return prune.Options{}, false, fmt.Errorf("%w: --system-identifier %d, but the cluster in %s is %d", prune.ErrRefused, o.SystemID, dataDir, id)
			}
			o.SystemID, o.SystemIDFrom = id, dataDir+"/"+pgdata.ControlFile
		case explicit:
			return prune.Options{}, false, fmt.Errorf("%w: cannot read the cluster's identity: %w", prune.ErrRefused, err)
		case !errors.Is(err, fs.ErrNotExist):
			cliutil.Logger(c).Debug("not checking the data directory's identity", "err", err)
		}
	}
	return o, restartPoint, nil
}

// parseAge reads a duration that may start with days and weeks (7d, 2w,
// 1d12h), which time.ParseDuration lacks.
func parseAge(s string) (time.Duration, error) {
	bad := fmt.Errorf("--keep-age %q: use a duration like 7d, 2w, 36h or 90m", s)
	rest := strings.TrimSpace(s)
	if rest == "" {
		return 0, bad
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || (rest[i] != 'd' && rest[i] != 'w') {
			break
		}
		n, err := strconv.ParseInt(rest[:i], 10, 32)
		if err != nil {
			return 0, bad
		}
		unit := 24 * time.Hour
		if rest[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return 0, bad
		}
		total += d
	}
	if total < 0 || total > 100*365*24*time.Hour {
		return 0, bad
	}
	return total, nil
}

// exitCode is the one place walship-prune chooses its exit status.
// PostgreSQL logs a non-zero archive_cleanup_command status as a warning
// and goes on.
func exitCode(err error) int {
	var usage cliutil.UsageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &usage), errors.Is(err, prune.ErrNoPolicy):
		return exitUsage
	}
	// Refused too (prune.ErrRefused: the repository is not the cluster's,
	// or does not say whose it is): nothing was removed.
	return exitFailed
}
