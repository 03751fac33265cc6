package main

// walship backup create | list | restore | register

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/backup"
	"github.com/walship/walship/inspect"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "base backups in the repository: create, list, restore, register",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cliutil.UsageError{Err: errors.New("no backup command given: use create, list, restore or register (walship backup --help)")}
			}
			return cliutil.UsageError{Err: fmt.Errorf("unknown backup command %q: use create, list, restore or register (walship backup --help)", c.Args().First())}
		},
		Subcommands: []*cli.Command{
			command("create", "take a base backup with pg_basebackup and stream it into the repository", backupCreate,
				altsrc.NewStringFlag(&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, EnvVars: []string{"WALSHIP_DBNAME"},
					Usage: "libpq connection string of the server to back up, a primary or a standby (pg_basebackup -d; it needs the replication privilege)"}),
				&cli.StringFlag{Name: "label", Aliases: []string{"l"}, Usage: "the backup's label (default: walship and the backup's ID)"},
				altsrc.NewStringFlag(&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Value: "spread", EnvVars: []string{"WALSHIP_CHECKPOINT"},
					Usage: "fast or spread: how the server runs the checkpoint that starts the backup (pg_basebackup -c)"}),
				altsrc.NewStringFlag(&cli.StringFlag{Name: "pg-bin", TakesFile: true,
					Usage: "directory of pg_basebackup of the server's version (default: PATH, then /usr/lib/postgresql/<version>/bin)"})),
			command("list", "list the base backups: time, WAL range, sizes, and whether each can be restored", backupList,
				&cli.BoolFlag{Name: "json", Usage: "one JSON array"}),
		},
	}
}

func backupCreate(c *cli.Context) error {
	if c.String("dbname") == "" {
		return cliutil.UsageError{Err: errors.New("no server: give -d/--dbname the connection string of the server to back up")}
	}
	r, err := cliutil.OpenRepo(c, nil)
	if err != nil {
		return err
	}
	res, err := backup.Create(c.Context, r, backup.CreateOptions{
		ConnString: c.String("dbname"),
		Label:      c.String("label"),
		Checkpoint: c.String("checkpoint"),
		PGBin:      c.String("pg-bin"),
		Bar:        func(total int64) *progress.Bar { return progress.New("walship backup", "bytes", total) },
	})
	if err != nil {
		return err
	}
	for _, n := range res.Notices {
		fmt.Fprintf(os.Stderr, "walship backup: pg_basebackup: %s\n", n)
	}
	fmt.Println(res.Summary())
	return nil
}

func backupList(c *cli.Context) error {
	cat, err := scan(c)
	if err != nil {
		return err
	}
	list := inspect.BackupStatuses(cat)
	if c.Bool("json") {
		if list == nil {
			list = []inspect.BackupStatus{}
		}
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tSTARTED\tFROM\tTIMELINE\tWAL\tSIZE\tSTORED\tRESTORABLE")
	for _, b := range list {
		size, stored := "-", "-"
		switch {
		case b.Stored:
			size, stored = progress.Bytes(b.Size), progress.Bytes(b.StoredBytes)
		case b.Registered:
			stored = "registered: files kept elsewhere"
		default:
			stored = "backup history file only"
		}
		state := "yes"
		if !b.Restorable {
			state = "no: " + b.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s..%s\t%s\t%s\t%s\n", b.Name(), startTime(b), orDash(b.From), b.Timeline, b.Start, b.Stop, size, stored, state)
	}
	return tw.Flush()
}

// startTime shows when a backup started, in RFC 3339 whatever its source.
func startTime(b inspect.BackupStatus) string {
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05 MST"} {
		if t, err := time.Parse(layout, b.StartTime); err == nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return orDash(b.StartTime)
}

// backupExitCode refines exitCode for the backup commands.
func backupExitCode(err error) (int, bool) {
	switch {
	case errors.Is(err, backup.ErrStart):
		return exitStart, true
	}
	return 0, false
}
