package main

// walship backup delete and walship backup expire

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/backup"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/prune"
	"github.com/walship/walship/repo"
)

func backupDelete(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError{Err: errors.New("give the ID of the backup to delete (walship backup list shows them)")}
	}
	id, err := repo.ParseBackupID(c.Args().First())
	if err != nil {
		return cliutil.UsageError{Err: err}
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	res, err := backup.Delete(c.Context, r, id, c.Bool("force"))
	if err != nil {
		return err
	}
	what := fmt.Sprintf("deleted backup %s (%s)", id, progress.Bytes(res.Stored.Bytes()))
	if m := res.Stored.Record; m != nil && m.Registered {
		what = fmt.Sprintf("deleted the record of backup %s; its files stay in %s", id, orDash(m.Directory))
	}
	fmt.Println(what)
	for _, b := range res.Broken {
		fmt.Printf("backup %s built on it and is no longer restorable\n", b)
	}
	return nil
}

// backupExpire is walship-prune's retention policy, by the name DBAs know
// from pgBackRest: the same plan, the same removals.
func backupExpire(c *cli.Context) error {
	var o prune.Options
	var err error
	if o.KeepBackups, o.KeepAge, err = cliutil.Retention(c); err != nil {
		return err
	}
	if o.KeepBackups == 0 && o.KeepAge == nil {
		return cliutil.UsageError{Err: fmt.Errorf("%w: give --keep-backups N or --keep-age DURATION", prune.ErrNoPolicy)}
	}
	o.DryRun = c.Bool("dry-run")
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	o.Bar = func(total int64) *progress.Bar { return progress.New("walship backup expire", "files", total) }
	res, err := prune.Prune(c.Context, r, o)
	if o.DryRun {
		for _, sb := range res.Backups {
			fmt.Printf("would remove backup %s (%s)\n", sb.ID, progress.Bytes(sb.Bytes()))
		}
		for _, f := range res.Remove {
			fmt.Printf("would remove %s (%s)\n", f.Key, progress.Bytes(f.Size))
		}
	}
	if err == nil || res.Removed > 0 || res.RemovedBackups > 0 {
		fmt.Println(res.Summary())
	}
	return err
}
