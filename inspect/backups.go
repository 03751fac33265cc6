package inspect

import (
	"fmt"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// BackupStatus says whether the repository can restore one base backup to
// a consistent state: every segment from its start to its stop, on the
// timelines its stop timeline's history passes through, and that history.
type BackupStatus struct {
	File       string `json:"file"`
	Label      string `json:"label,omitempty"`
	Timeline   uint32 `json:"timeline"`
	Start      string `json:"start,omitempty"`
	Stop       string `json:"stop,omitempty"`
	StartTime  string `json:"start_time,omitempty"`
	Newest     bool   `json:"newest,omitempty"`
	Restorable bool   `json:"restorable"`
	// Expired: not restorable because its WAL was pruned (it starts before
	// the oldest segment kept), which is retention at work, not damage.
	Expired bool   `json:"expired,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// BackupStatuses checks every base backup, newest first.
func BackupStatuses(c *repo.Catalog) []BackupStatus {
	var out []BackupStatus
	for i, b := range c.Backups() {
		s := backupStatus(c, b)
		s.Newest = i == 0
		out = append(out, s)
	}
	return out
}

func backupStatus(c *repo.Catalog, b repo.Backup) BackupStatus {
	s := BackupStatus{File: b.Name.String(), Timeline: b.Name.Timeline, Label: b.Info.Label, StartTime: b.Info.StartTime}
	if b.Err != nil {
		s.Reason = "backup history file is damaged: " + b.Err.Error()
		return s
	}
	s.Start, s.Stop = b.Info.Start.String(), b.Info.Stop.String()
	if c.SegSize == 0 {
		s.Reason = "segment size unknown"
		return s
	}
	if want := b.Name.StartLSN(c.SegSize); b.Info.Start != want {
		s.Reason = fmt.Sprintf("backup history file says it starts at %s, its name says %s", b.Info.Start, want)
		return s
	}
	if b.Info.Stop < b.Info.Start {
		s.Reason = fmt.Sprintf("backup history file says it stops at %s, before its start %s", b.Info.Stop, b.Info.Start)
		return s
	}
	startTL, stopTL := b.Info.StartTimeline, b.Info.StopTimeline
	if startTL == 0 {
		startTL = b.Name.Timeline
	}
	if stopTL == 0 {
		stopTL = startTL
	}
	s.Timeline = stopTL
	h := wal.History{Timeline: stopTL}
	if stopTL > 1 {
		f := c.Histories()[stopTL]
		if f == nil || f.History == nil {
			s.Reason = fmt.Sprintf("history file %s is missing or damaged", wal.Name{Kind: wal.KindHistory, Timeline: stopTL})
			return s
		}
		h = *f.History
		if !h.Contains(startTL) {
			s.Reason = fmt.Sprintf("the history of timeline %d does not lead back to timeline %d where the backup started", stopTL, startTL)
			return s
		}
	}
	oldest, _ := c.OldestSegment()
	floor := oldest.SegNo(c.SegSize)
	first := b.Info.Start.SegNo(c.SegSize)
	last := b.Info.Stop.SegmentOfEnd(stopTL, c.SegSize).SegNo(c.SegSize)
	for segno := first; segno <= last; segno++ {
		// The segment that holds a switch point is read from the newer
		// timeline's copy: pick the timeline of its last byte.
		tli := h.TimelineAt(wal.LSN((segno+1)*uint64(c.SegSize) - 1))
		n := wal.SegmentFromNo(tli, segno, c.SegSize)
		if c.HasSegment(n) {
			continue
		}
		if segno < floor {
			s.Expired = true
			s.Reason = fmt.Sprintf("expired: its WAL was pruned (%s is gone, the oldest segment kept is %s)", n, oldest)
		} else {
			s.Reason = fmt.Sprintf("segment %s is missing", n)
		}
		return s
	}
	s.Restorable = true
	return s
}
