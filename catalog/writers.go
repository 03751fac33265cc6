package catalog

import (
	"fmt"
	"time"

	"github.com/walship/walship/wal"
)

// DefaultTailGrace is how long after a newer timeline's history file was
// archived an older timeline may still be archived before that counts as
// a second writer: an old primary's last segments at a failover arrive
// within it, a server that goes on writing does not stop.
const DefaultTailGrace = 10 * time.Minute

// SecondWriter is an older timeline that kept being archived after a newer
// one branched off: two servers of one cluster write into the repository
// (a promoted PITR copy that kept the primary's archive_command, or an old
// primary still running after a failover).
type SecondWriter struct {
	Old uint32 `json:"old_timeline"`
	New uint32 `json:"new_timeline"`
	// SwitchPoint is where New left Old; zero when New does not descend
	// from Old (they share an older ancestor).
	SwitchPoint string `json:"switch_point,omitempty"`
	// Since is when New's history file was archived: both have been
	// written since.
	Since time.Time `json:"since"`
	// Segments counts the segments of Old off New's path (past the switch
	// point) archived after Since plus the grace.
	Segments int       `json:"segments"`
	First    string    `json:"first"`
	Last     string    `json:"last"`
	LastTime time.Time `json:"last_archived"`
}

// Problem is the line verify and check report.
func (w SecondWriter) Problem() Problem {
	where := fmt.Sprintf("after timeline %d branched off it at %s", w.New, w.SwitchPoint)
	if w.SwitchPoint == "" {
		where = fmt.Sprintf("after timeline %d (which does not descend from it) appeared", w.New)
	}
	file := w.First
	if w.Last != w.First {
		file += ".." + w.Last
	}
	return Problem{File: file, Msg: fmt.Sprintf("timeline %d is still being archived %s: %d segment(s) of it archived after %s, the last at %s; "+
		"a second server writes into this repository since %s, one on timeline %d and one on timeline %d "+
		"(a promoted copy that kept archive_mode = on, or an old primary still running): stop the one that should not write, "+
		"or give it archive_mode = off or its own repository",
		w.Old, where, w.Segments, wal.Name{Kind: wal.KindHistory, Timeline: w.New}, w.LastTime.UTC().Format(time.RFC3339),
		w.Since.UTC().Format(time.RFC3339), w.Old, w.New)}
}

// NoGrace asks SecondWriters for every segment archived after the newer
// timeline's history file, with no grace at all.
const NoGrace = time.Duration(-1)

// SecondWriters finds every older timeline with segments archived after a
// newer timeline's history file (plus grace; 0 is DefaultTailGrace, NoGrace
// none) at
// positions that newer timeline does not pass through: past its switch
// point from the older one, or anywhere when it does not descend from it.
// Each older timeline is reported once, against the first newer timeline
// it outlived. Archive times are the stored objects' modification times.
func SecondWriters(c *Catalog, grace time.Duration) []SecondWriter {
	switch {
	case grace == 0:
		grace = DefaultTailGrace
	case grace < 0:
		grace = 0
	}
	if c.SegSize == 0 {
		return nil // positions unknown; verify reports that
	}
	hist := c.Histories()
	var out []SecondWriter
	tls := c.Timelines()
	for _, old := range tls {
		segs := c.Segments(old)
		if len(segs) == 0 {
			continue
		}
		for _, n := range tls {
			hf := hist[n]
			if n <= old || hf == nil || hf.History == nil {
				continue
			}
			sp, descends := hf.History.SwitchPoint(old)
			w := SecondWriter{Old: old, New: n, Since: hf.Info.ModTime}
			if descends {
				w.SwitchPoint = sp.String()
			}
			after := w.Since.Add(grace)
			for _, f := range segs {
				if descends && f.Name.StartLSN(c.SegSize) < sp {
					continue
				}
				if !f.Info.ModTime.After(after) {
					continue
				}
				if w.Segments == 0 {
					w.First = f.Name.String()
				}
				w.Segments++
				w.Last = f.Name.String()
				if f.Info.ModTime.After(w.LastTime) {
					w.LastTime = f.Info.ModTime
				}
			}
			if w.Segments > 0 {
				out = append(out, w)
				break
			}
		}
	}
	return out
}
