package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/warmstandby"
)

// standbyFlags are the flags of the waiting mode (--standby).
func standbyFlags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "standby", EnvVars: []string{"WALSHIP_STANDBY"},
			Usage: "warm standby: wait for a segment that is not archived yet instead of answering not found " +
				"(history files never wait); needs recovery_prefetch = off on PostgreSQL 15+"}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "trigger", EnvVars: []string{"WALSHIP_TRIGGER"}, TakesFile: true,
			Usage: "with --standby: failover when this file appears; empty or 'smart' restores every archived segment first, " +
				"'fast' stops at once (ends recovery under recovery.signal; under standby.signal use pg_ctl promote)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-wait", EnvVars: []string{"WALSHIP_MAX_WAIT"},
			Usage: "with --standby: answer not found after waiting this long for one segment (0: wait forever)"}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "poll", Value: 5 * time.Second, EnvVars: []string{"WALSHIP_POLL"},
			Usage: "with --standby: longest pause between two looks at the archive (a local repository is also watched for file events)"}),
	}
}

// standbyOptions returns the wait's options, or nil without --standby.
func standbyOptions(c *cli.Context, log *slog.Logger) (*warmstandby.Options, error) {
	if !c.Bool("standby") {
		// Not an error: a config file shared with one-shot uses may set them.
		for _, f := range []string{"trigger", "max-wait"} {
			if c.IsSet(f) {
				log.Warn(fmt.Sprintf("--%s has no effect without --standby: not waiting", f))
			}
		}
		return nil, nil
	}
	if c.Duration("max-wait") < 0 {
		return nil, errors.New("--max-wait must not be negative (0 waits forever)")
	}
	if c.Duration("poll") <= 0 {
		return nil, errors.New("--poll must be positive")
	}
	// The wait says when it starts and, rarely, that it goes on: those
	// lines are for the server log even when walship is otherwise quiet.
	return &warmstandby.Options{
		Trigger: c.String("trigger"),
		DataDir: c.String("data-dir"),
		MaxWait: c.Duration("max-wait"),
		Poll:    c.Duration("poll"),
		Log:     cliutil.LoggerAt(c, slog.LevelInfo),
	}, nil
}
