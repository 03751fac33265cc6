package catalog

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// Backup is one base backup the repository knows of: from the backup
// history file PostgreSQL archives at the end of a backup taken on a
// primary, from the record walship stored with a backup it took (from a
// primary or a standby) or registered, or from both for the same backup.
type Backup struct {
	// Start is the segment the backup starts in, on its start timeline
	// (the name of its .backup file, as a segment): the WAL it needs
	// begins there.
	Start wal.Name
	// File is its backup history file, if the repository has one.
	File *File
	// Stored is walship's record of it and its objects, if walship stored
	// or registered it.
	Stored *Stored
	// Info is what the record or the backup history file says; when
	// neither could be read (Err), only Start and StartTimeline are known,
	// from the file name.
	Info wal.BackupInfo
	// Time is when the backup was taken: its start time, or when its
	// backup history file was archived if that cannot be read.
	Time time.Time
	// Err says why its backup history file cannot be read.
	Err error
}

// FilesKnown reports whether walship knows where the backup's files are:
// stored in the repository, or registered with their directory. A backup
// known only from the backup history file PostgreSQL archived may have
// files anywhere, or none (a backup that failed after the server ended
// it).
func (b Backup) FilesKnown() bool { return b.Stored != nil && b.Stored.Record != nil }

// Name names the backup for messages: its ID, or its backup history file.
func (b Backup) Name() string {
	if b.Stored != nil {
		return string(b.Stored.ID)
	}
	if b.File != nil {
		return b.File.Name.String()
	}
	return b.Start.String()
}

// Backups returns the base backups, newest first: by the time they were
// taken, then by position. A backup walship stored from a primary has a
// backup history file too: the two are one backup (same start).
func (c *Catalog) Backups() []Backup {
	var out []Backup
	// The same backup: the same start and stop. (A backup from a standby
	// starts at the standby's restart point, which may be where an
	// earlier backup of the primary started; it has no .backup file.)
	type span struct {
		tli         uint32
		start, stop wal.LSN
	}
	stored := map[span]int{}
	// A .backup file that cannot be read (encrypted, and no identity
	// given) is matched by the start its name gives.
	byStart := map[span]int{}
	for _, sb := range c.Stored {
		m := sb.Record
		if m == nil {
			continue // its record cannot be read: verify reports it
		}
		segSize := cmp.Or(c.SegSize, m.SegSize)
		if segSize == 0 {
			continue
		}
		b := Backup{Start: m.Start.Segment(m.StartTimeline, segSize), Stored: sb, Time: m.StartTime,
			Info: wal.BackupInfo{Start: m.Start, Stop: m.Stop, Checkpoint: m.Checkpoint,
				StartTimeline: m.StartTimeline, StopTimeline: m.StopTimeline, Label: m.Label, From: m.From,
				StartTime: wal.FormatBackupTime(m.StartTime), StopTime: wal.FormatBackupTime(m.StopTime)}}
		if m.From != "standby" {
			stored[span{m.StartTimeline, m.Start, m.Stop}] = len(out)
			byStart[span{tli: m.StartTimeline, start: m.Start}] = len(out)
		}
		out = append(out, b)
	}
	for i := range c.Files {
		f := &c.Files[i]
		if f.Name.Kind != wal.KindBackup {
			continue
		}
		if f.Backup != nil {
			if j, ok := stored[span{f.Backup.StartTimeline, f.Backup.Start, f.Backup.Stop}]; ok && out[j].File == nil {
				out[j].File = f
				continue
			}
		} else if c.SegSize != 0 {
			if j, ok := byStart[span{tli: f.Name.Timeline, start: f.Name.StartLSN(c.SegSize)}]; ok && out[j].File == nil {
				out[j].File = f
				continue
			}
		}
		b := Backup{Start: f.Name.SegmentName(), File: f, Time: f.Info.ModTime, Err: f.Err}
		if f.Backup != nil {
			b.Info = *f.Backup
			if t, ok := f.Backup.Started(); ok {
				b.Time = t
			}
		} else {
			b.Info.StartTimeline = f.Name.Timeline
			b.Info.StopTimeline = f.Name.Timeline
			if c.SegSize != 0 {
				b.Info.Start = f.Name.StartLSN(c.SegSize)
			}
		}
		out = append(out, b)
	}
	slices.SortStableFunc(out, func(a, b Backup) int {
		return cmp.Or(b.Time.Compare(a.Time), wal.ComparePosition(b.Start, a.Start),
			cmp.Compare(b.Start.Timeline, a.Start.Timeline), cmp.Compare(b.Info.Start, a.Info.Start))
	})
	return out
}

// Live reports whether the backup's first segment is still stored: a
// backup whose start segment was pruned is expired.
func (c *Catalog) Live(b Backup) bool { return c.HasSegment(b.Start) }

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
	Stored     bool `json:"stored"`
	Registered bool `json:"registered,omitempty"` // its files are kept elsewhere
	// Files says where the backup's files are: "repository" (stored by
	// walship backup create), "registered" (in Directory, recorded by
	// walship backup register), or "unknown" (only the backup history
	// file PostgreSQL archived says the backup was taken).
	Files     string `json:"files"`
	Directory string `json:"directory,omitempty"`
	// Type is "full" or "incremental" (of a backup walship stored);
	// Parent the backup an incremental was taken relative to.
	Type        string `json:"type,omitempty"`
	Parent      string `json:"parent,omitempty"`
	Size        int64  `json:"size,omitempty"`
	StoredBytes int64  `json:"stored_bytes,omitempty"`
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

// Where says in words where the backup's files are.
func (s BackupStatus) Where() string {
	switch s.Files {
	case "repository":
		return "files in the repository"
	case "registered":
		if s.Directory != "" {
			return "registered: files in " + s.Directory
		}
		return "registered: files kept elsewhere"
	}
	return "files not known: only its backup history file"
}

// Name names the backup: its ID, else its backup history file.
func (s BackupStatus) Name() string {
	if s.ID != "" {
		return s.ID
	}
	return s.File
}

// BackupStatuses checks every base backup, newest first.
func (c *Catalog) BackupStatuses() []BackupStatus {
	var out []BackupStatus
	for i, b := range c.Backups() {
		s := c.BackupStatusOf(b)
		s.Newest = i == 0
		out = append(out, s)
	}
	return out
}

// BackupStatusOf checks one base backup of the catalog: the one answer to
// "is it restorable", and if not, whether it expired (its WAL was pruned)
// or why not.
func (c *Catalog) BackupStatusOf(b Backup) BackupStatus {
	s := BackupStatus{Timeline: b.Start.Timeline, Label: b.Info.Label, StartTime: b.Info.StartTime,
		StopTime: b.Info.StopTime, From: b.Info.From}
	if b.File != nil {
		s.File = b.File.Name.String()
	}
	s.Files = "unknown"
	if b.FilesKnown() {
		s.Files = "repository"
		if b.Stored.Record.Registered {
			s.Files, s.Directory = "registered", b.Stored.Record.Directory
		}
	}
	if sb := b.Stored; sb != nil {
		s.ID = string(sb.ID)
		m := sb.Record
		s.Stored, s.Registered = !m.Registered, m.Registered
		s.Size, s.StoredBytes, s.Compression = m.Size, m.Stored, m.Compression
		s.StartTime, s.StopTime = m.StartTime.UTC().Format(time.RFC3339), m.StopTime.UTC().Format(time.RFC3339)
		s.Type, s.Parent = "full", string(m.Parent)
		if m.Parent != "" {
			s.Type = "incremental"
		}
	}
	if b.Err != nil {
		s.Reason = "backup history file is damaged: " + b.Err.Error()
		if errors.Is(b.Err, repo.ErrEncryption) {
			s.Reason = "its backup history file is encrypted, and no identity was given to read it (--identity)"
		}
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
		if m := b.Stored.Record; m.SystemID != 0 && c.HaveIdentity && m.SystemID != c.Identity.SystemID {
			s.Reason = fmt.Sprintf("a backup of another cluster: database system identifier %d, the repository's is %d", m.SystemID, c.Identity.SystemID)
			return s
		}
		if why := b.Stored.Missing(); why != "" {
			s.Reason = why
			return s
		}
		chain, err := c.Chain(b)
		if err != nil {
			s.Reason = err.Error()
			return s
		}
		for _, a := range chain[:len(chain)-1] {
			if why := a.Stored.Missing(); why != "" {
				s.Reason = fmt.Sprintf("backup %s, which it builds on: %s", a.Stored.ID, why)
				return s
			}
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

// StatusOfStored scans the repository and checks the stored backup with
// this ID (after it was stored, or registered). When the repository cannot
// be read, the status says so in its Reason.
func StatusOfStored(ctx context.Context, r *repo.Repo, id repo.BackupID) BackupStatus {
	c, err := Scan(ctx, r)
	if err != nil {
		return BackupStatus{ID: string(id), Reason: "could not check: " + err.Error()}
	}
	for _, b := range c.Backups() {
		if b.Stored != nil && b.Stored.ID == id {
			return c.BackupStatusOf(b)
		}
	}
	return BackupStatus{ID: string(id), Reason: "not in the repository"}
}

// Chain is the chain a stored backup belongs to, oldest first: the full
// backup, the incremental backups taken each relative to the one before,
// and b itself last (alone when b is a full backup). A member that is not
// in the repository, or a record that cannot be read, is an error naming
// it: restoring b needs every member.
func (c *Catalog) Chain(b Backup) ([]Backup, error) {
	if b.Stored == nil || b.Stored.Record == nil {
		return []Backup{b}, nil
	}
	byID := map[repo.BackupID]Backup{}
	for _, x := range c.Backups() {
		if x.Stored != nil {
			byID[x.Stored.ID] = x
		}
	}
	chain := []Backup{b}
	for cur := b; cur.Stored.Record.Parent != ""; {
		id := cur.Stored.Record.Parent
		p, ok := byID[id]
		switch {
		case !ok && c.StoredByID(id) != nil:
			return nil, fmt.Errorf("backup %s, which backup %s builds on, has no readable record", id, cur.Stored.ID)
		case !ok:
			return nil, fmt.Errorf("backup %s, which backup %s builds on, is not in the repository", id, cur.Stored.ID)
		case len(chain) > len(byID):
			return nil, fmt.Errorf("the chain of backup %s goes round in a circle", b.Stored.ID)
		}
		chain = append(chain, p)
		cur = p
	}
	slices.Reverse(chain)
	return chain, nil
}
