// Command walship is the operator's view of a walship repository:
//
//	walship ls      --repo /var/lib/walship [--timeline N] [--json]
//	walship status  --repo /var/lib/walship [--json]
//	walship verify  --repo /var/lib/walship [--full] [--json]
//	walship check   --repo /var/lib/walship -d 'host=/var/run/postgresql' [--json]
//	walship metrics --repo /var/lib/walship [-d CONNINFO] [-D DATADIR] [-o FILE.prom]
//	walship backup create  --repo /var/lib/walship -d 'host=... user=...' [--checkpoint fast]
//	walship backup list    --repo /var/lib/walship [--json]
//	walship backup restore --repo /var/lib/walship -D NEWDIR [--target-time T | --target-name N | --target-lsn L] [--standby] [--start]
//	walship receive --repo /var/lib/walship -d 'host=... user=...' --slot walship [--create-slot] [--synchronous]
package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/check"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
)

// Exit statuses (cliutil's table). walship check has the monitoring-plugin
// ones instead: its report's status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
const (
	exitOK     = cliutil.ExitOK
	exitFailed = cliutil.ExitFailed // verify found something wrong, the repository could not be read, a backup command failed
	exitUsage  = cliutil.ExitUsage
	exitStart  = cliutil.ExitNotStarted // backup restore: restored, but the server did not start or reach the target
)

func main() { cliutil.Main(newApp(), exitCode) }

// newApp defines the command line.
func newApp() *cli.App {
	return &cli.App{
		Name:  "walship",
		Usage: "look into a walship repository, check the server's archiving, keep base backups in it, stream WAL into it",
		Description: "For the operator, by hand or from cron or a systemd timer:\n\n" +
			"    walship status --config /etc/walship/walship.toml\n" +
			"    walship verify --config /etc/walship/walship.toml --full\n" +
			"    walship check --config /etc/walship/walship.toml -d 'host=/var/run/postgresql'\n\n" +
			"And as a service (contrib/systemd/walship-receive.service), the synchronous standby that\n" +
			"makes every commit durable in the repository:\n\n" +
			"    walship receive --config /etc/walship/walship.toml --slot walship --create-slot --synchronous \\\n" +
			"        -d 'host=/var/run/postgresql user=postgres'",
		// Reached only without a known command.
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cliutil.UsageError{Err: errors.New("no command given: use ls, status, verify, check, metrics, backup or receive")}
			}
			return cliutil.UsageError{Err: fmt.Errorf("unknown command %q: use ls, status, verify, check, metrics, backup or receive", c.Args().First())}
		},
		Commands: []*cli.Command{
			command("ls", "list the repository's segments, history files, backup history files and partial segments", ls,
				&cli.UintFlag{Name: "timeline", Aliases: []string{"t"}, Usage: "only the files of timeline `N`"},
				&cli.BoolFlag{Name: "json", Usage: "one JSON array"}),
			command("status", "summarise the repository: identity, size, timelines, newest backup, last archived segment", status,
				&cli.BoolFlag{Name: "json", Usage: "one JSON object"}),
			command("verify", "check for missing segments and history files and for unrestorable base backups; exit 1 if anything is wrong", verify,
				&cli.BoolFlag{Name: "full", Usage: "also read every segment (decompress it, check its checksum, size and page header) and every stored base backup (each file against its manifest)"},
				tailGraceFlag(),
				&cli.BoolFlag{Name: "json", Usage: "one JSON object"}),
			checkCommand(),
			command("metrics", "write the repository's state, and the server's with -d or -D, in the Prometheus text format (for node_exporter's textfile collector)", metrics,
				append(serverFlags(),
					maxAgeFlag(),
					tailGraceFlag(),
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, TakesFile: true,
						Usage: "write to `FILE` atomically (a temporary file renamed over it; name it *.prom in the textfile collector's directory); default: standard output"})...),
			{Name: "keygen", Usage: "make an age key for an encrypted repository: write the secret key to FILE (mode 0600; never replaced) and print the public key (--recipient) on stdout",
				ArgsUsage: "FILE", Action: keygen},
			backupCommand(),
			receiveCommand(),
		},
	}
}

// tailGraceFlag is how verify, check and metrics tell an old primary's last
// segments after a failover from a second writer.
func tailGraceFlag() cli.Flag {
	return altsrc.NewDurationFlag(&cli.DurationFlag{Name: "tail-grace", Value: catalog.DefaultTailGrace, EnvVars: []string{"WALSHIP_TAIL_GRACE"},
		Usage: "an older timeline archived longer than this after a newer one branched off is a second writer (a PROBLEM); " +
			"the last segments an old primary leaves at a failover arrive sooner"})
}

func command(name, usage string, action cli.ActionFunc, own ...cli.Flag) *cli.Command {
	return commandWith(cliutil.RepoFlags(), name, usage, action, own...)
}

// writerCommand is a command that stores new objects: it takes the
// recipients to encrypt them to.
func writerCommand(name, usage string, action cli.ActionFunc, own ...cli.Flag) *cli.Command {
	return commandWith(append(cliutil.RepoFlags(), cliutil.WriterFlags()...), name, usage, action, own...)
}

func commandWith(repoFlags []cli.Flag, name, usage string, action cli.ActionFunc, own ...cli.Flag) *cli.Command {
	flags := append(repoFlags, own...)
	return &cli.Command{Name: name, Usage: usage, Flags: flags, Before: cliutil.Before(flags),
		// A bad flag is one line and exit 2, not the help text.
		OnUsageError: func(_ *cli.Context, err error, _ bool) error { return cliutil.UsageError{Err: err} },
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return cliutil.UsageError{Err: fmt.Errorf("%s takes no arguments, got %q", name, c.Args().First())}
			}
			return action(c)
		}}
}

// exitCode is the one place walship chooses its exit status: verify's
// problems and an unreadable repository both mean "not done" (1), as for
// every program; walship check exits with its report's status, and
// UNKNOWN (3) when it was called wrongly.
func exitCode(err error) int {
	var usage cliutil.UsageError
	var v verdict
	var unknown unknownError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &v):
		return int(v)
	case errors.As(err, &unknown):
		return int(check.Unknown)
	case errors.As(err, &usage), errors.Is(err, repo.ErrMismatch), errors.Is(err, repo.ErrEncryption), errors.Is(err, storage.ErrNotOwner):
		return exitUsage // a setting (layout, compression, keys) the repository disagrees with, or the wrong user
	}
	if code, ok := backupExitCode(err); ok {
		return code
	}
	return exitFailed
}
