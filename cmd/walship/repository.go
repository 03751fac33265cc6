package main

// walship ls and walship status

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/inspect"
	"github.com/walship/walship/internal/cliutil"
	"github.com/walship/walship/internal/progress"
)

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
	fmt.Fprintf(w, "base backups   %d, %d restorable\n", s.BackupCount, s.Restorable)
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

func switches(t catalog.TimelineInfo) string {
	var parts []string
	if t.Begin != "" {
		parts = append(parts, fmt.Sprintf("branched off timeline %d at %s", t.Parent, t.Begin))
	}
	if t.End != "" {
		parts = append(parts, fmt.Sprintf("timeline %d branched off it at %s", t.LeftFor, t.End))
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
