package inspect

import (
	"time"

	"github.com/walship/walship/catalog"
)

// Item is one file as `walship ls` shows it.
type Item struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	Timeline uint32    `json:"timeline"`
	Key      string    `json:"key"`
	Codec    string    `json:"codec"`
	Stored   int64     `json:"stored_bytes"`
	Raw      int64     `json:"raw_bytes"`
	Archived time.Time `json:"archived"`
	// For backup history files.
	Start string `json:"start,omitempty"`
	Stop  string `json:"stop,omitempty"`
	Label string `json:"label,omitempty"`
	// Problem says why a history or backup history file cannot be read.
	Problem string `json:"problem,omitempty"`
}

// Items lists the files of timeline tli (0: all), in catalog order.
func Items(c *catalog.Catalog, tli uint32) []Item {
	out := []Item{}
	for _, f := range c.Files {
		if tli != 0 && f.Name.Timeline != tli {
			continue
		}
		it := Item{Kind: f.Name.Kind.String(), Name: f.Name.String(), Timeline: f.Name.Timeline,
			Key: f.Key, Codec: string(f.Codec), Stored: f.Size, Raw: f.RawSize(c.SegSize), Archived: f.Info.ModTime.UTC()}
		if f.Backup != nil {
			it.Start, it.Stop, it.Label = f.Backup.Start.String(), f.Backup.Stop.String(), f.Backup.Label
		}
		if f.Err != nil {
			it.Problem = f.Err.Error()
		}
		out = append(out, it)
	}
	return out
}

// Status is the summary `walship status` prints.
type Status struct {
	Repository   string `json:"repository"`
	Layout       string `json:"layout"`
	HaveIdentity bool   `json:"identity_file"`
	SystemID     uint64 `json:"system_identifier,string,omitempty"`
	SegSize      uint32 `json:"wal_segment_size,omitempty"`
	PGVersion    string `json:"pg_version,omitempty"`

	Files       int   `json:"files"`
	Segments    int   `json:"segments"`
	Histories   int   `json:"history_files"`
	Backups     int   `json:"backup_files"`
	Partials    int   `json:"partial_segments"`
	RawBytes    int64 `json:"raw_bytes"`
	StoredBytes int64 `json:"stored_bytes"`

	Timelines []catalog.TimelineInfo `json:"timelines"`
	// BackupCount counts the base backups (stored, registered, or known
	// from backup history files), Restorable those that can be restored.
	BackupCount  int                   `json:"base_backups"`
	Restorable   int                   `json:"restorable_base_backups"`
	NewestBackup *catalog.BackupStatus `json:"newest_backup,omitempty"`
	// LastArchived is when the most recently archived segment was stored.
	LastArchived     *time.Time `json:"last_archived,omitempty"`
	LastArchivedFile string     `json:"last_archived_file,omitempty"`
}

// Summarize summarises the catalog.
func Summarize(c *catalog.Catalog) Status {
	t := c.Totals()
	s := Status{Repository: c.Location, Layout: string(c.Layout), HaveIdentity: c.HaveIdentity, SegSize: c.SegSize,
		Timelines: []catalog.TimelineInfo{},
		Files:     t.Files, Segments: t.Segments, Histories: t.Histories, Backups: t.Backups, Partials: t.Partials,
		RawBytes: t.RawBytes, StoredBytes: t.StoredBytes, LastArchived: t.LastArchived, LastArchivedFile: t.LastArchivedFile}
	if c.HaveIdentity {
		s.SystemID, s.PGVersion = c.Identity.SystemID, c.Identity.PGVersion
	}
	for _, ti := range catalog.TimelineInfos(c) {
		if ti.Segments > 0 {
			s.Timelines = append(s.Timelines, ti)
		}
	}
	bs := c.BackupStatuses()
	if len(bs) > 0 {
		s.NewestBackup = &bs[0]
	}
	s.BackupCount = len(bs)
	for _, b := range bs {
		if b.Restorable {
			s.Restorable++
		}
	}
	return s
}
