package inspect

import (
	"fmt"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// BackupStatus says whether the repository can restore one base backup to
// a consistent state: every segment from its start to its stop, on the
// timelines its stop timeline's history passes through, and that history;
// and, for a backup walship stored, every object its record lists.
type BackupStatus struct {
	// ID is walship's ID of a backup it stored or registered; File the
	// backup history file PostgreSQL archived (a backup from a primary).
	ID        string `json:"id,omitempty"`
	File      string `json:"file,omitempty"`
	Label     string `json:"label,omitempty"`
	From      string `json:"from,omitempty"` // primary or standby
	Timeline  uint32 `json:"timeline"`
	Start     string `json:"start,omitempty"`
	Stop      string `json:"stop,omitempty"`
	StartTime string `json:"start_time,omitempty"`
	StopTime  string `json:"stop_time,omitempty"`
	// Stored: the repository holds the backup's files (walship backup
	// create), Size of them before compression, StoredBytes after.
	Stored      bool  `json:"stored"`
	Registered  bool  `json:"registered,omitempty"` // its files are kept elsewhere
	Size        int64 `json:"size,omitempty"`
	StoredBytes int64 `json:"stored_bytes,omitempty"`
	// Compression is who compressed its tars: lz4 (walship) or
	// server-lz4 (the server).
	Compression string `json:"compression,omitempty"`
	Newest      bool   `json:"newest,omitempty"`
	Restorable  bool   `json:"restorable"`
	// Expired: not restorable because its WAL was pruned (it starts before
	// the oldest segment kept), which is retention at work, not damage.
	Expired bool   `json:"expired,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Name names the backup: its ID, else its backup history file.
func (s BackupStatus) Name() string {
	if s.ID != "" {
		return s.ID
	}
	return s.File
}

// BackupStatuses checks every base backup, newest first.
func BackupStatuses(c *repo.Catalog) []BackupStatus {
	var out []BackupStatus
	for i, b := range c.Backups() {
		s := BackupStatusOf(c, b)
		s.Newest = i == 0
		out = append(out, s)
	}
	return out
}

// BackupStatusOf checks one base backup of the catalog.
func BackupStatusOf(c *repo.Catalog, b repo.Backup) BackupStatus {
	s := BackupStatus{Timeline: b.Start.Timeline, Label: b.Info.Label, StartTime: b.Info.StartTime,
		StopTime: b.Info.StopTime, From: b.Info.From}
	if b.File != nil {
		s.File = b.File.Name.String()
	}
	if sb := b.Stored; sb != nil {
		s.ID = string(sb.ID)
		m := sb.Meta
		s.Stored, s.Registered = !m.Registered, m.Registered
		s.Size, s.StoredBytes, s.Compression = m.Size, m.Stored, m.Compression
		s.StartTime, s.StopTime = m.StartTime.UTC().Format(time.RFC3339), m.StopTime.UTC().Format(time.RFC3339)
	}
	if b.Err != nil {
		s.Reason = "backup history file is damaged: " + b.Err.Error()
		return s
	}
	s.Start, s.Stop = b.Info.Start.String(), b.Info.Stop.String()
	if c.SegSize == 0 {
		s.Reason = "segment size unknown"
		return s
	}
	if b.File != nil && b.Stored == nil {
		if want := b.File.Name.StartLSN(c.SegSize); b.Info.Start != want {
			s.Reason = fmt.Sprintf("backup history file says it starts at %s, its name says %s", b.Info.Start, want)
			return s
		}
	}
	if b.Info.Stop < b.Info.Start {
		s.Reason = fmt.Sprintf("backup history file says it stops at %s, before its start %s", b.Info.Stop, b.Info.Start)
		return s
	}
	if b.Stored != nil {
		if m := b.Stored.Meta; m.SystemID != 0 && c.HaveIdentity && m.SystemID != c.Identity.SystemID {
			s.Reason = fmt.Sprintf("a backup of another cluster: database system identifier %d, the repository's is %d", m.SystemID, c.Identity.SystemID)
			return s
		}
		if why := b.Stored.Missing(); why != "" {
			s.Reason = why
			return s
		}
	}
	startTL, stopTL := b.Info.StartTimeline, b.Info.StopTimeline
	if startTL == 0 {
		startTL = b.Start.Timeline
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
