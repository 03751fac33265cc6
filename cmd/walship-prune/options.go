package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/prune"
	"github.com/walship/walship/wal"
)

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
	if o.KeepBackups, o.KeepAge, err = cliutil.Retention(c); err != nil {
		return prune.Options{}, false, err
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
