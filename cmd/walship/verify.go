package main

// walship verify

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/inspect"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
)

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
		fmt.Fprintf(w, "backup %s: %s; %s\n", b.Name(), restorable(b), b.Where())
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

// problemsError is verify's verdict when something is wrong.
type problemsError int

func (e problemsError) Error() string { return fmt.Sprintf("verify found %d problem(s)", int(e)) }
