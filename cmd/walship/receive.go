package main

// walship receive: stream WAL into the repository (package receive).

import (
	"errors"
	"math"
	"runtime/debug"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/pgserver"
	"github.com/walship/walship/receive"
)

func receiveCommand() *cli.Command {
	return writerCommand("receive", "stream WAL from the server into the repository through a replication slot, as a WAL receiver (a synchronous standby with --synchronous); runs until SIGTERM", runReceive,
		altsrc.NewStringFlag(&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, EnvVars: []string{"WALSHIP_DBNAME"},
			Usage: "libpq connection string of the server to stream from (a role with the REPLICATION privilege)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "slot", EnvVars: []string{"WALSHIP_SLOT"},
			Usage: "the physical replication slot to stream through (the server keeps the WAL not yet in the repository)"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "create-slot", EnvVars: []string{"WALSHIP_CREATE_SLOT"},
			Usage: "create the slot when it does not exist"}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "synchronous", EnvVars: []string{"WALSHIP_SYNCHRONOUS"},
			Usage: "store what arrives at once and report it flushed only once it is in the repository: the synchronous standby of synchronous_standby_names"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "application-name", Value: receive.DefaultAppName, EnvVars: []string{"WALSHIP_APPLICATION_NAME"},
			Usage: "application_name the server sees (the name in synchronous_standby_names)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "flush-interval", Value: receive.DefaultFlushInterval, EnvVars: []string{"WALSHIP_FLUSH_INTERVAL"},
			Usage: "without --synchronous: store what arrived at most this often (each time one object: see the cost in docs/receive.md)"}),
	)
}

func runReceive(c *cli.Context) error {
	if c.String("dbname") == "" {
		return cliutil.UsageError{Err: errors.New("no server: give -d/--dbname the connection string of the server to stream from")}
	}
	if c.String("slot") == "" {
		return cliutil.UsageError{Err: errors.New("no replication slot: give --slot NAME (and --create-slot to create it)")}
	}
	if err := pgserver.CheckSlotName(c.String("slot")); err != nil {
		return cliutil.UsageError{Err: err}
	}
	// A process that lives for days: collect garbage as usual.
	debug.SetGCPercent(100)
	debug.SetMemoryLimit(math.MaxInt64)
	cliutil.Daemon()
	r, err := cliutil.OpenRepo(c, cliutil.Open{Create: true})
	if err != nil {
		return err
	}
	return receive.Run(c.Context, r, receive.Options{ConnString: c.String("dbname"), Slot: c.String("slot"),
		CreateSlot: c.Bool("create-slot"), AppName: c.String("application-name"), Synchronous: c.Bool("synchronous"),
		FlushInterval: c.Duration("flush-interval"), Log: cliutil.Logger(c)})
}
