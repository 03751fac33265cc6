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
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/check"
	"github.com/walship/walship/inspect"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
	"github.com/walship/walship/repo"
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
		Usage: "look into a walship repository: what it holds, and whether it is whole",
		Description: "For the operator, by hand or from cron or a systemd timer:\n\n" +
			"    walship status --config /etc/walship/walship.toml\n" +
			"    walship verify --config /etc/walship/walship.toml --full\n" +
			"    walship check --config /etc/walship/walship.toml -d 'host=/var/run/postgresql'",
		// Reached only without a known command.
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return cliutil.UsageError{Err: errors.New("no command given: use ls, status, verify, check, metrics or backup (walship --help)")}
			}
			return cliutil.UsageError{Err: fmt.Errorf("unknown command %q: use ls, status, verify, check, metrics or backup (walship --help)", c.Args().First())}
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
	flags := append(cliutil.RepoFlags(), own...)
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

func scan(c *cli.Context) (*catalog.Catalog, error) {
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return nil, err
	}
	return catalog.Scan(c.Context, r)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func ls(c *cli.Context) error {
	cat, err := scan(c)
	if err != nil {
		return err
	}
	items := inspect.Items(cat, uint32(c.Uint("timeline")))
	if c.Bool("json") {
		return printJSON(items)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tSTORED\tCODEC\tARCHIVED\t")
	for _, it := range items {
		var extra string
		switch {
		case it.Problem != "":
			extra = "damaged: " + it.Problem
		case it.Kind == "backup":
			extra = fmt.Sprintf("start %s stop %s", it.Start, it.Stop)
			if it.Label != "" {
				extra += fmt.Sprintf(" label %q", it.Label)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Kind, it.Name, progress.Bytes(it.Stored), it.Codec,
			it.Archived.Format(time.RFC3339), extra)
	}
	return tw.Flush()
}

func status(c *cli.Context) error {
	cat, err := scan(c)
	if err != nil {
		return err
	}
	s := inspect.Summarize(cat)
	if c.Bool("json") {
		return printJSON(s)
	}
	w := os.Stdout
	fmt.Fprintf(w, "repository     %s (layout %s)\n", s.Repository, s.Layout)
	if s.HaveIdentity {
		fmt.Fprintf(w, "cluster        database system identifier %d, PostgreSQL %s, %s segments\n", s.SystemID, orDash(s.PGVersion), segSize(s.SegSize))
	} else {
		fmt.Fprintf(w, "cluster        unknown: no walship.json (segments of %s)\n", segSize(s.SegSize))
	}
	fmt.Fprintf(w, "files          %d: %d segments, %d history, %d backup history, %d partial\n", s.Files, s.Segments, s.Histories, s.Backups, s.Partials)
	fmt.Fprintf(w, "size           %s of WAL, %s stored", progress.Bytes(s.RawBytes), progress.Bytes(s.StoredBytes))
	if s.RawBytes > 0 {
		fmt.Fprintf(w, " (%.1f%%)", float64(s.StoredBytes)*100/float64(s.RawBytes))
	}
	fmt.Fprintln(w)
	for _, t := range s.Timelines {
		fmt.Fprintf(w, "timeline %-5d %s .. %s (%d segments)%s\n", t.Timeline, t.First, t.Last, t.Segments, switches(t))
	}
	if b := s.NewestBackup; b != nil {
		fmt.Fprintf(w, "newest backup  %s", b.Name())
		if b.StartTime != "" {
			fmt.Fprintf(w, " started %s", b.StartTime)
		}
		fmt.Fprintf(w, ", %s\n", restorable(*b))
	} else {
		fmt.Fprintln(w, "newest backup  none (no stored backup, no .backup file)")
	}
	if s.LastArchived != nil {
		fmt.Fprintf(w, "last archived  %s at %s\n", s.LastArchivedFile, s.LastArchived.Format(time.RFC3339))
	}
	return nil
}

func verify(c *cli.Context) error {
	r, err := cliutil.OpenRepo(c, cliutil.Open{})
	if err != nil {
		return err
	}
	cat, err := catalog.Scan(c.Context, r)
	if err != nil {
		return err
	}
	rep, err := inspect.Verify(c.Context, r, cat, inspect.VerifyOptions{Full: c.Bool("full"), TailGrace: c.Duration("tail-grace"),
		Bar: func(total int64) *progress.Bar { return progress.New("walship verify", "bytes", total) }})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := printJSON(rep); err != nil {
			return err
		}
	} else {
		printReport(os.Stdout, rep, c.Bool("full"))
	}
	if !rep.OK() {
		return problemsError(len(rep.Problems))
	}
	return nil
}

func printReport(w io.Writer, rep *inspect.Report, full bool) {
	for _, t := range rep.Timelines {
		if t.Segments == 0 {
			fmt.Fprintf(w, "timeline %d: no segments%s\n", t.Timeline, switches(t))
			continue
		}
		fmt.Fprintf(w, "timeline %d: %s .. %s, %d segments%s\n", t.Timeline, t.First, t.Last, t.Segments, switches(t))
	}
	for _, b := range rep.Backups {
		fmt.Fprintf(w, "backup %s: %s\n", b.Name(), restorable(b))
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if full {
		fmt.Fprintf(w, "read %d segments and %d stored base backup(s) in full\n", rep.Checked, rep.BackupsChecked)
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(w, "PROBLEM %s\n", p)
	}
	if rep.OK() {
		fmt.Fprintln(w, "ok: no problems found")
	} else {
		fmt.Fprintf(w, "%d problem(s) found\n", len(rep.Problems))
	}
}

func switches(t catalog.TimelineInfo) string {
	var parts []string
	if t.Begin != "" {
		parts = append(parts, fmt.Sprintf("branched off timeline %d at %s", t.Parent, t.Begin))
	}
	if t.End != "" {
		parts = append(parts, "left at "+t.End)
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, ", ")
}

func restorable(b catalog.BackupStatus) string {
	if b.Restorable {
		return fmt.Sprintf("restorable (timeline %d, %s .. %s)", b.Timeline, b.Start, b.Stop)
	}
	return "NOT restorable: " + b.Reason
}

func segSize(n uint32) string {
	if n == 0 {
		return "unknown size"
	}
	return progress.Bytes(int64(n))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// problemsError is verify's verdict when something is wrong.
type problemsError int

func (e problemsError) Error() string { return fmt.Sprintf("verify found %d problem(s)", int(e)) }

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
	case errors.As(err, &usage), errors.Is(err, repo.ErrMismatch), errors.Is(err, repo.ErrEncryption):
		return exitUsage // a setting (layout, compression, keys) the repository disagrees with
	}
	if code, ok := backupExitCode(err); ok {
		return code
	}
	return exitFailed
}

func keygen(c *cli.Context) error {
	if c.NArg() != 1 {
		return cliutil.UsageError{Err: errors.New("keygen takes the file to write the secret key to")}
	}
	recipient, err := repo.GenerateKey(c.Args().First())
	if err != nil {
		return err
	}
	fmt.Println(recipient)
	return nil
}
