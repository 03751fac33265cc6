package wal

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// HistoryEntry is one line of a timeline history file: timeline Timeline
// was left for the next one at SwitchPoint.
type HistoryEntry struct {
	Timeline    uint32
	SwitchPoint LSN
	Reason      string
}

// History is the ancestry of a timeline, oldest first, as in its
// NNNNNNNN.history file. The timeline itself is not an entry: it begins at
// the last entry's SwitchPoint.
type History struct {
	Timeline uint32
	Entries  []HistoryEntry
}

// ParseHistory parses the contents of the history file of timeline tli, with
// PostgreSQL's rules: blank lines and '#' comments are skipped, each other
// line is "parentTLI<TAB>X/X<TAB>reason", parent timelines increase and are
// below tli.
func ParseHistory(tli uint32, r io.Reader) (History, error) {
	h := History{Timeline: tli}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimLeft(sc.Text(), " \t")
		if text == "" || text[0] == '#' {
			continue
		}
		// The server writes tabs but reads any white space between fields.
		fields := strings.Fields(text)
		if len(fields) < 2 {
			return History{}, fmt.Errorf("history of timeline %d, line %d: expected timeline, tab, switch point", tli, line)
		}
		if len(fields) > 3 {
			fields = []string{fields[0], fields[1], strings.Join(fields[2:], " ")}
		}
		parent, err := strconv.ParseUint(strings.TrimSpace(fields[0]), 10, 32)
		if err != nil || parent == 0 {
			return History{}, fmt.Errorf("history of timeline %d, line %d: bad timeline %q", tli, line, fields[0])
		}
		lsn, err := ParseLSN(strings.TrimSpace(fields[1]))
		if err != nil {
			return History{}, fmt.Errorf("history of timeline %d, line %d: %w", tli, line, err)
		}
		if n := len(h.Entries); n > 0 && uint32(parent) <= h.Entries[n-1].Timeline {
			return History{}, fmt.Errorf("history of timeline %d, line %d: timelines must increase", tli, line)
		}
		if uint32(parent) >= tli {
			return History{}, fmt.Errorf("history of timeline %d, line %d: parent timeline %d is not older", tli, line, parent)
		}
		e := HistoryEntry{Timeline: uint32(parent), SwitchPoint: lsn}
		if len(fields) == 3 {
			e.Reason = strings.TrimSpace(fields[2])
		}
		h.Entries = append(h.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return History{}, fmt.Errorf("history of timeline %d: %w", tli, err)
	}
	return h, nil
}

// TimelineAt returns the timeline of this history that holds lsn: the first
// ancestor whose switch point lies beyond lsn, or the timeline itself.
func (h History) TimelineAt(lsn LSN) uint32 {
	for _, e := range h.Entries {
		if lsn < e.SwitchPoint {
			return e.Timeline
		}
	}
	return h.Timeline
}

// Contains reports whether tli is this timeline or one of its ancestors.
func (h History) Contains(tli uint32) bool {
	if tli == h.Timeline {
		return true
	}
	for _, e := range h.Entries {
		if e.Timeline == tli {
			return true
		}
	}
	return false
}

// SwitchPoint returns where timeline tli ended in this history, and false if
// tli is not an ancestor (the current timeline has not ended).
func (h History) SwitchPoint(tli uint32) (LSN, bool) {
	for _, e := range h.Entries {
		if e.Timeline == tli {
			return e.SwitchPoint, true
		}
	}
	return 0, false
}
