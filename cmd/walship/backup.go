package main

// walship backup create | list | restore | register

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/backup"
	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/pgdata"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "base backups in the repository: create, list, restore, register, delete, expire",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cliutil.UsageError{Err: errors.New("no backup command given: use create, list, restore, register, delete or expire")}
			}
			return cliutil.UsageError{Err: fmt.Errorf("unknown backup command %q: use create, list, restore, register, delete or expire", c.Args().First())}
		},
		Subcommands: []*cli.Command{
			writerCommand("create", "take a base backup over a replication connection and stream it into the repository", backupCreate,
				altsrc.NewStringFlag(&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, EnvVars: []string{"WALSHIP_DBNAME"},
					Usage: "libpq connection string of the server to back up, a primary or a standby (it needs the replication privilege)"}),
				&cli.StringFlag{Name: "label", Aliases: []string{"l"}, Usage: "the backup's label (default: walship backup)"},
				altsrc.NewStringFlag(&cli.StringFlag{Name: "checkpoint", Aliases: []string{"c"}, Value: "spread", EnvVars: []string{"WALSHIP_CHECKPOINT"},
					Usage: "fast or spread: how the server runs the checkpoint that starts the backup"}),
				altsrc.NewStringFlag(&cli.StringFlag{Name: "compress-at", EnvVars: []string{"WALSHIP_COMPRESS_AT"},
					Usage: "server or client: who compresses the tars with lz4 (default: the server where it can: 15 or later, built with lz4)"}),
				altsrc.NewStringFlag(&cli.StringFlag{Name: "max-rate", EnvVars: []string{"WALSHIP_MAX_RATE"},
					Usage: "limit how fast the server sends the backup: kB/s, or with a suffix k or M (32k to 1024M; default: no limit)"}),
				&cli.BoolFlag{Name: "incremental", Usage: "an incremental backup (PostgreSQL 17 or later, summarize_wal = on) on the newest stored backup; refused where none can be taken"},
				&cli.BoolFlag{Name: "incremental-or-full", Usage: "an incremental backup where one can be taken, else a full one, saying why (for scheduled runs)"}),
			command("list", "list the base backups: time, WAL range, sizes, and whether each can be restored", backupList,
				&cli.BoolFlag{Name: "json", Usage: "one JSON array"}),
			command("restore", "restore a base backup into a new data directory, to a point in time or as a standby", backupRestore, restoreFlags()...),
			withArgs(command("register", "record a base backup taken by hand (pg_basebackup output in DIR, with its manifest), so that retention and verify count it", nil), "DIR", backupRegister),
			withArgs(command("delete", "delete the backup ID from the repository (not the newest restorable one, nor one another builds on, without --force)", nil,
				&cli.BoolFlag{Name: "force", Usage: "delete it even when it is the newest restorable backup or another builds on it"}), "ID", backupDelete),
			command("expire", "apply a retention policy, as walship-prune does: remove the backups and the WAL it does not keep", backupExpire,
				cliutil.RetentionFlags()...),
		},
	}
}

func backupCreate(c *cli.Context) error {
	if c.String("dbname") == "" {
		return cliutil.UsageError{Err: errors.New("no server: give -d/--dbname the connection string of the server to back up")}
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{Create: true})
	if err != nil {
		return err
	}
	kind := backup.Full
	switch {
	case c.Bool("incremental") && c.Bool("incremental-or-full"):
		return cliutil.UsageError{Err: errors.New("--incremental or --incremental-or-full: give one")}
	case c.Bool("incremental"):
		kind = backup.Incremental
	case c.Bool("incremental-or-full"):
		kind = backup.IncrementalOrFull
	}
	rate, err := parseRate(c.String("max-rate"))
	if err != nil {
		return cliutil.UsageError{Err: err}
	}
	o := backup.CreateOptions{
		MaxRate:    rate,
		Log:        cliutil.Logger(c),
		Status:     cliutil.LoggerAt(c, slog.LevelInfo),
		ConnString: c.String("dbname"),
		Label:      c.String("label"),
		Checkpoint: c.String("checkpoint"),
		CompressAt: c.String("compress-at"),
		Kind:       kind,
	}
	if progress.IsTerminal(os.Stderr) {
		o.Bar = func(total int64) *progress.Bar { return progress.New("walship backup", "bytes", total) }
	}
	res, err := backup.Create(c.Context, r, o)
	if errors.Is(err, backup.ErrOptions) {
		return cliutil.UsageError{Err: err}
	}
	if err != nil {
		return err
	}
	for _, n := range res.Notices {
		o.Status.Info("the server says: " + n)
	}
	fmt.Println(res.Summary())
	return nil
}

// parseRate reads --max-rate: kB/s, or with a suffix k or M.
func parseRate(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	orig, mult := s, 1
	switch {
	case strings.HasSuffix(s, "M"):
		s, mult = strings.TrimSuffix(s, "M"), 1024
	case strings.HasSuffix(s, "k"):
		s = strings.TrimSuffix(s, "k")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n*mult < 32 || n*mult > 1048576 {
		return 0, fmt.Errorf("--max-rate %q: kB/s from 32 to 1048576, or with a suffix k or M (2M)", orig)
	}
	return n * mult, nil
}

func restoreFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "data-dir", Aliases: []string{"D"}, TakesFile: true, Usage: "the new data `DIR`ectory: absent or empty"},
		&cli.StringFlag{Name: "backup", Usage: "restore backup `ID` (default: the newest that can reach the target)"},
		&cli.StringFlag{Name: "target-time", Usage: "recover to this `TIME` (2024-01-02T03:04:05Z, or 2024-01-02 03:04:05+01; local without a zone)"},
		&cli.StringFlag{Name: "target-name", Usage: "recover to the restore point `NAME` (pg_create_restore_point)"},
		&cli.StringFlag{Name: "target-lsn", Usage: "recover to this WAL position (`LSN`, 0/3000028)"},
		&cli.BoolFlag{Name: "target-latest", Usage: "recover everything in the archive (the default)"},
		&cli.StringFlag{Name: "target-action", Value: "promote", Usage: "at the target: promote, pause or shutdown"},
		&cli.BoolFlag{Name: "standby", Usage: "make a standby: streaming from --primary-conninfo, or without it archive-only (walship-restore --standby)"},
		&cli.StringFlag{Name: "primary-conninfo", Usage: "with --standby: the primary to stream from (primary_conninfo)"},
		&cli.StringFlag{Name: "slot", Usage: "with --primary-conninfo: primary_slot_name"},
		&cli.StringFlag{Name: "trigger", TakesFile: true, Usage: "with --standby and no --primary-conninfo: the trigger `FILE` that ends recovery and promotes (archive recovery, as in the 8.2 scheme)"},
		&cli.BoolFlag{Name: "keep-archive-mode", Usage: "keep the backup's archive_mode in a copy (default: archive_mode = off, so that the copy cannot archive a new timeline into the repository)"},
		&cli.StringSliceFlag{Name: "tablespace-mapping", Aliases: []string{"T"}, Usage: "restore the tablespace in `OLDDIR=NEWDIR` elsewhere (repeatable)"},
		&cli.StringSliceFlag{Name: "set", Usage: "one more setting for the restored postgresql.auto.conf, `NAME=VALUE` (port=5433; repeatable)"},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "restore-bin", TakesFile: true,
			Usage: "the walship-restore program for restore_command (default: the one next to walship)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "pg-bin", TakesFile: true,
			Usage: "directory of pg_ctl of the backup's version, for --start (default: PATH, then /usr/lib/postgresql/<version>/bin)"}),
		&cli.BoolFlag{Name: "no-sync", Usage: "do not flush the restored files to disk (for tests)"},
		&cli.BoolFlag{Name: "start", Usage: "start the server and wait until it reaches the target, streams, or (archive-only standby) is consistent"},
		&cli.StringFlag{Name: "start-log", TakesFile: true, Usage: "server log for --start (pg_ctl -l; default: beside the data directory, <data-dir>.walship-backup-restore.log)"},
		&cli.DurationFlag{Name: "start-timeout", Value: 10 * time.Minute, Usage: "with --start: how long to wait"},
	}
}

func backupRestore(c *cli.Context) error {
	o, err := restoreOptions(c)
	if err != nil {
		return err
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	o.RestoreArgs = cliutil.RepoArgs(c)
	o.Log = cliutil.Logger(c)
	o.Bar = func(total int64) *progress.Bar { return progress.New("walship restore", "bytes", total) }
	res, err := backup.Restore(c.Context, r, o)
	if res != nil {
		fmt.Println(res.Summary(o.DataDir))
	}
	return err
}

// restoreOptions turns the flags into options.
func restoreOptions(c *cli.Context) (backup.RestoreOptions, error) {
	usage := func(format string, a ...any) (backup.RestoreOptions, error) {
		return backup.RestoreOptions{}, cliutil.UsageError{Err: fmt.Errorf(format, a...)}
	}
	o := backup.RestoreOptions{DataDir: c.String("data-dir"), Action: c.String("target-action"),
		Standby: c.Bool("standby"), PrimaryConnInfo: c.String("primary-conninfo"), SlotName: c.String("slot"),
		Trigger: c.String("trigger"), KeepArchiving: c.Bool("keep-archive-mode"), PGBin: c.String("pg-bin"),
		NoSync: c.Bool("no-sync"), Start: c.Bool("start"), StartLog: c.String("start-log"), StartTimeout: c.Duration("start-timeout")}
	if o.DataDir == "" {
		return usage("no data directory: give -D the directory to restore into (absent or empty)")
	}
	if c.NArg() > 0 {
		return usage("unexpected arguments %v", c.Args().Slice())
	}
	if id := c.String("backup"); id != "" {
		bid, err := repo.ParseBackupID(id)
		if err != nil {
			return usage("--backup: %v", err)
		}
		o.BackupID = bid
	}
	var targets []string
	for _, n := range []string{"target-time", "target-name", "target-lsn", "target-latest"} {
		if c.IsSet(n) {
			targets = append(targets, "--"+n)
		}
	}
	if len(targets) > 1 {
		return usage("%s: give one recovery target", strings.Join(targets, ", "))
	}
	switch {
	case c.IsSet("target-time"):
		t, err := backup.ParseTime(c.String("target-time"))
		if err != nil {
			return usage("--target-time: %v", err)
		}
		o.Target = backup.Target{Kind: backup.TargetTime, Time: t}
	case c.IsSet("target-name"):
		if c.String("target-name") == "" {
			return usage("--target-name: empty")
		}
		o.Target = backup.Target{Kind: backup.TargetName, Name: c.String("target-name")}
	case c.IsSet("target-lsn"):
		l, err := wal.ParseLSN(c.String("target-lsn"))
		if err != nil {
			return usage("--target-lsn: %v", err)
		}
		o.Target = backup.Target{Kind: backup.TargetLSN, LSN: l}
	}
	if o.Standby && len(targets) > 0 && !c.IsSet("target-latest") {
		return usage("--standby takes no recovery target: a standby follows the primary")
	}
	if !o.Standby && (o.PrimaryConnInfo != "" || o.SlotName != "" || o.Trigger != "") {
		return usage("--primary-conninfo, --slot and --trigger make a standby: add --standby")
	}
	if o.Trigger != "" && o.PrimaryConnInfo != "" {
		return usage("--trigger is for an archive-only standby; a streaming standby is promoted with pg_ctl promote")
	}
	if c.IsSet("target-action") && (o.Standby || o.Target.Kind == backup.TargetLatest) {
		return usage("--target-action needs a recovery target (--target-time, --target-name or --target-lsn)")
	}
	for _, m := range c.StringSlice("tablespace-mapping") {
		from, to, ok := strings.Cut(m, "=")
		if !ok || !filepath.IsAbs(from) || !filepath.IsAbs(to) {
			return usage("--tablespace-mapping %q: want OLDDIR=NEWDIR, both absolute", m)
		}
		if o.TablespaceMap == nil {
			o.TablespaceMap = map[string]string{}
		}
		o.TablespaceMap[filepath.Clean(from)] = filepath.Clean(to)
	}
	for _, kv := range c.StringSlice("set") {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return usage("--set %q: want NAME=VALUE", kv)
		}
		o.Settings = append(o.Settings, pgdata.Setting{Name: strings.TrimSpace(name), Value: value})
	}
	bin := c.String("restore-bin")
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return usage("cannot find walship-restore next to walship (%v): give --restore-bin", err)
		}
		bin = filepath.Join(filepath.Dir(self), "walship-restore")
	}
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	o.RestoreBin = bin
	return o, nil
}

// withArgs is a command that takes positional arguments.
func withArgs(cmd *cli.Command, usage string, action cli.ActionFunc) *cli.Command {
	cmd.ArgsUsage, cmd.Action = usage, action
	return cmd
}

func backupRegister(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError{Err: errors.New("give the directory pg_basebackup wrote the backup into: walship backup register DIR")}
	}
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	m, err := backup.Register(c.Context, r, c.Args().First())
	if err != nil {
		return err
	}
	status := "restorable"
	if s := catalog.StatusOfStored(c.Context, r, m.ID); !s.Restorable {
		status = "not restorable yet: " + s.Reason
	}
	fmt.Println(backup.RegisterSummary(m, status))
	return nil
}

func backupList(c *cli.Context) error {
	cat, err := scan(c)
	if err != nil {
		return err
	}
	list := cat.BackupStatuses()
	if c.Bool("json") {
		if list == nil {
			list = []catalog.BackupStatus{}
		}
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tTYPE\tSTARTED\tLABEL\tFROM\tTIMELINE\tWAL\tSIZE\tSTORED\tRESTORABLE")
	for _, b := range list {
		size, stored := "-", "-"
		switch {
		case b.Stored:
			size, stored = progress.Bytes(b.Size), progress.Bytes(b.StoredBytes)
		case b.Registered:
			size, stored = progress.Bytes(b.Size), b.Where()
		default:
			stored = b.Where()
		}
		state := "yes"
		if !b.Restorable {
			state = "no: " + b.Reason
		}
		typ := orDash(b.Type)
		if b.Parent != "" {
			typ = "incremental on " + b.Parent
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s..%s\t%s\t%s\t%s\n", b.Name(), typ, startTime(b), orDash(b.Label), orDash(b.From), b.Timeline, b.Start, b.Stop, size, stored, state)
	}
	return tw.Flush()
}

// startTime shows when a backup started, in RFC 3339 whatever its source.
func startTime(b catalog.BackupStatus) string {
	for _, layout := range []string{time.RFC3339, wal.BackupTimeLayout} {
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
