package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/check"
	"github.com/walship/walship/internal/atomicfile"
	"github.com/walship/walship/internal/cliutil"
)

// serverFlags locate the server check and metrics look at.
func serverFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewStringFlag(&cli.StringFlag{Name: "dbname", Aliases: []string{"d"}, EnvVars: []string{"WALSHIP_DBNAME"},
			Usage: "connect to the server with this libpq connection string or URL (check: default libpq's, from PGHOST, PGPORT, ...)"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data-dir", Aliases: []string{"D"}, EnvVars: []string{"WALSHIP_DATA_DIR"},
			Usage: "the server's data directory, when run beside it: its postmaster.pid (for the server's environment) and .ready files"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "slot", EnvVars: []string{"WALSHIP_SLOT"},
			Usage: "walship receive's replication slot: check the receiver (connected, lag, WAL its slot keeps); the same setting as walship receive's"}),
	}
}

func maxAgeFlag() cli.Flag {
	return altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-age", Value: check.DefaultMaxAge, EnvVars: []string{"WALSHIP_MAX_AGE"},
		Usage: "how old the newest archived segment, or the oldest one waiting to be archived, may be (set archive_timeout at or below it)"})
}

// checkCommand is walship check. As a monitoring plugin it answers every
// mistake in its own call with UNKNOWN (exit 3).
func checkCommand() *cli.Command {
	flags := append(cliutil.RepoFlags(), append(serverFlags(),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "timeout", Value: check.DefaultTimeout, EnvVars: []string{"WALSHIP_TIMEOUT"},
			Usage: "how long to wait for the segment a forced switch ends to reach the repository"}),
		maxAgeFlag(),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "no-switch", EnvVars: []string{"WALSHIP_NO_SWITCH"},
			Usage: "do not force a segment switch on a primary (for frequent runs: each switch archives a segment)"}),
		tailGraceFlag(),
		&cli.BoolFlag{Name: "json", Usage: "one JSON object"})...)
	before := cliutil.Before(flags)
	return &cli.Command{
		Name:  "check",
		Usage: "check that the server archives into the repository, end to end; one line per finding, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if err := before(c); err != nil {
				return unknownError{err}
			}
			return nil
		},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return unknownError{cliutil.UsageError{Err: err}} },
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return unknownError{cliutil.UsageError{Err: fmt.Errorf("check takes no arguments, got %q", c.Args().First())}}
			}
			return runCheck(c)
		},
	}
}

func runCheck(c *cli.Context) error {
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return unknownError{err}
	}
	rep := check.Run(c.Context, r, check.Options{Connect: true, ConnString: c.String("dbname"), DataDir: c.String("data-dir"),
		Switch: !c.Bool("no-switch"), Timeout: c.Duration("timeout"), MaxAge: c.Duration("max-age"), TailGrace: c.Duration("tail-grace"), Slot: c.String("slot")})
	if c.Bool("json") {
		if err := printJSON(rep); err != nil {
			return err
		}
	} else {
		w := bufio.NewWriter(os.Stdout)
		for _, f := range rep.Findings {
			fmt.Fprintln(w, f)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if rep.Status != check.OK {
		return cliutil.Quiet{Err: verdict(rep.Status)}
	}
	return nil
}

// metrics is walship metrics: the report of a check without the forced
// switch, as Prometheus metrics.
func metrics(c *cli.Context) error {
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	rep := check.Run(c.Context, r, check.Options{Connect: c.String("dbname") != "", ConnString: c.String("dbname"),
		DataDir: c.String("data-dir"), MaxAge: c.Duration("max-age"), TailGrace: c.Duration("tail-grace"), Slot: c.String("slot")})
	write := func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		if err := check.WriteMetrics(bw, rep); err != nil {
			return err
		}
		return bw.Flush()
	}
	out := c.String("output")
	if out == "" || out == "-" {
		return write(os.Stdout)
	}
	// Readable by node_exporter, which seldom runs as the same user.
	return atomicfile.Write(out, atomicfile.Options{Sync: true, Mode: 0o644}, func(f *os.File) error { return write(f) })
}

// verdict is walship check's status when it is not OK: the exit status.
type verdict check.Status

func (v verdict) Error() string { return "check: " + check.Status(v).String() }

// unknownError is a mistake in how walship check was called: UNKNOWN.
type unknownError struct{ err error }

func (e unknownError) Error() string { return e.err.Error() }
func (e unknownError) Unwrap() error { return e.err }
