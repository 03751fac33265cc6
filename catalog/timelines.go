package catalog

import (
	"fmt"
	"slices"

	"github.com/walship/walship/wal"
)

// Problem is one thing wrong with a repository, about one file (which may
// be a file that is missing).
type Problem struct {
	File string `json:"file"`
	Msg  string `json:"problem"`
}

func (p Problem) String() string { return p.File + ": " + p.Msg }

// TimelineInfo summarises one timeline of the repository.
type TimelineInfo struct {
	Timeline uint32 `json:"timeline"`
	Segments int    `json:"segments"`
	First    string `json:"first,omitempty"`
	Last     string `json:"last,omitempty"`
	// Parent and Begin: where this timeline branched off (from its
	// history file or a descendant's), when known.
	Parent uint32 `json:"parent,omitempty"`
	Begin  string `json:"begin,omitempty"`
	// End is where the timeline was left for a newer one (the latest such
	// switch when several timelines branched off it), LeftFor that one.
	End     string `json:"end,omitempty"`
	LeftFor uint32 `json:"left_for,omitempty"`

	begin, end       wal.LSN
	hasBegin, hasEnd bool
}

// switchPoints collects, from every parsed history file, where each
// timeline began and ended. A timeline that several others branched off
// ends at the latest of those switch points.
func switchPoints(c *Catalog) (begin map[uint32]wal.HistoryEntry, end map[uint32]wal.LSN, leftFor map[uint32]uint32) {
	begin, end, leftFor = map[uint32]wal.HistoryEntry{}, map[uint32]wal.LSN{}, map[uint32]uint32{}
	for _, f := range c.Files {
		if f.History == nil {
			continue
		}
		h := f.History
		for i, e := range h.Entries {
			next := h.Timeline
			if i+1 < len(h.Entries) {
				next = h.Entries[i+1].Timeline
			}
			if cur, ok := end[e.Timeline]; !ok || e.SwitchPoint > cur {
				end[e.Timeline], leftFor[e.Timeline] = e.SwitchPoint, next
			}
			if _, ok := begin[next]; !ok || next == h.Timeline {
				begin[next] = e // a timeline's own history file wins
			}
		}
	}
	return begin, end, leftFor
}

// TimelineInfos summarises every timeline the repository mentions.
func TimelineInfos(c *Catalog) []TimelineInfo {
	begin, end, leftFor := switchPoints(c)
	var out []TimelineInfo
	for _, tli := range c.Timelines() {
		ti := TimelineInfo{Timeline: tli}
		segs := c.Segments(tli)
		ti.Segments = len(segs)
		if len(segs) > 0 {
			ti.First, ti.Last = segs[0].Name.String(), segs[len(segs)-1].Name.String()
		}
		if e, ok := begin[tli]; ok {
			ti.Parent, ti.begin, ti.hasBegin = e.Timeline, e.SwitchPoint, true
			ti.Begin = e.SwitchPoint.String()
		}
		if l, ok := end[tli]; ok {
			ti.end, ti.hasEnd = l, true
			ti.End, ti.LeftFor = l.String(), leftFor[tli]
		}
		out = append(out, ti)
	}
	return out
}

// HistoryProblems reports history files that are damaged or missing. A
// server recovering to the latest timeline finds timelines by probing
// 00000002.history, 00000003.history, ... in turn and stops at the first
// that is missing, so every timeline from 2 to the newest one mentioned
// anywhere needs its file.
func HistoryProblems(c *Catalog) []Problem {
	var ps []Problem
	hist := c.Histories()
	for _, f := range c.Files {
		if f.Name.Kind == wal.KindHistory && f.Err != nil {
			ps = append(ps, Problem{f.Key, "damaged: " + f.Err.Error()})
		}
	}
	tls := c.Timelines()
	if len(tls) == 0 {
		return ps
	}
	newest := tls[len(tls)-1]
	present := map[uint32]bool{}
	for _, f := range c.Files {
		present[f.Name.Timeline] = true
	}
	for tli := uint32(2); tli <= newest; tli++ {
		if hist[tli] != nil {
			continue
		}
		name := wal.Name{Kind: wal.KindHistory, Timeline: tli}.String()
		why := fmt.Sprintf("missing: recovery to the latest timeline cannot get past timeline %d", tli-1)
		if present[tli] {
			why = fmt.Sprintf("missing, but timeline %d has files in the repository: recovery cannot follow it", tli)
		}
		ps = append(ps, Problem{name, why})
	}
	return ps
}

// Gap is a run of segments missing from a timeline where it needs them.
type Gap struct {
	Timeline    uint32
	First, Last wal.Name
	Count       uint64 // segments missing
	// End is the timeline's switch point when it was left for a newer
	// one (the gap lies before it), "" otherwise.
	End string
}

// Problem is the line verify reports for the gap.
func (g Gap) Problem() Problem {
	p := Problem{File: g.First.String(), Msg: fmt.Sprintf("missing from timeline %d", g.Timeline)}
	if g.Last != g.First {
		p.File += ".." + g.Last.String()
		p.Msg = fmt.Sprintf("%d segments missing from timeline %d", g.Count, g.Timeline)
	}
	if g.End != "" {
		p.Msg += fmt.Sprintf(", before its switch point %s", g.End)
	}
	return p
}

// Gaps finds the segments missing from each timeline. A timeline must be
// complete from where it began (or the oldest segment kept, after pruning)
// to where it was left for a newer timeline, or to its last segment if it
// was never left. Past its switch point a timeline may go on (an old
// primary that kept writing) and gaps there are expected; notes say how
// far each goes on. The segment size must be known.
func Gaps(c *Catalog, tls []TimelineInfo) (out []Gap, notes []string) {
	oldest, ok := c.OldestSegment()
	if !ok || c.SegSize == 0 {
		return nil, nil
	}
	floor := oldest.SegNo(c.SegSize)
	for _, ti := range tls {
		var have []uint64
		for _, f := range c.Segments(ti.Timeline) {
			have = append(have, f.Name.SegNo(c.SegSize))
		}
		var lo, hi uint64
		switch {
		case ti.hasBegin:
			lo = ti.begin.SegNo(c.SegSize)
		case len(have) > 0:
			lo = have[0]
		default:
			continue
		}
		lo = max(lo, floor)
		switch {
		case ti.hasEnd:
			// The segment holding the switch point is read from the new
			// timeline's copy; this one must be complete up to the one
			// before.
			endSeg := ti.end.SegNo(c.SegSize)
			if endSeg == 0 {
				continue
			}
			hi = endSeg - 1
			if after := countFrom(have, endSeg); after > 0 {
				notes = append(notes, fmt.Sprintf("timeline %d goes on for %d segment(s) past its switch point %s (not needed by newer timelines)", ti.Timeline, after, ti.End))
			}
		case len(have) > 0:
			hi = have[len(have)-1]
		default:
			continue
		}
		for _, g := range gaps(have, lo, hi) {
			gap := Gap{Timeline: ti.Timeline, First: wal.SegmentFromNo(ti.Timeline, g[0], c.SegSize),
				Last: wal.SegmentFromNo(ti.Timeline, g[1], c.SegSize), Count: g[1] - g[0] + 1}
			if ti.hasEnd {
				gap.End = ti.End
			}
			out = append(out, gap)
		}
	}
	return out, notes
}

// countFrom counts the values in sorted that are v or more.
func countFrom(sorted []uint64, v uint64) int {
	i, _ := slices.BinarySearch(sorted, v)
	return len(sorted) - i
}

// gaps returns the ranges [a, b] within [lo, hi] that are not in sorted.
func gaps(sorted []uint64, lo, hi uint64) [][2]uint64 {
	if lo > hi {
		return nil
	}
	var out [][2]uint64
	next := lo
	for _, s := range sorted {
		if s < next {
			continue
		}
		if s > hi {
			break
		}
		if s > next {
			out = append(out, [2]uint64{next, s - 1})
		}
		next = s + 1
	}
	if next <= hi {
		out = append(out, [2]uint64{next, hi})
	}
	return out
}
