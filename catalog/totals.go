package catalog

import (
	"time"

	"github.com/walship/walship/wal"
)

// Totals counts what a repository holds.
type Totals struct {
	Files     int
	Segments  int
	Histories int
	Backups   int // backup history files
	Partials  int
	// RawBytes is the WAL the files hold, StoredBytes what they take.
	RawBytes    int64
	StoredBytes int64
	// LastArchived is when the most recently archived segment was stored
	// (nil without one), LastArchivedFile its name.
	LastArchived     *time.Time
	LastArchivedFile string
}

// Totals counts the catalog's files.
func (c *Catalog) Totals() Totals {
	var t Totals
	for _, f := range c.Files {
		t.Files++
		t.StoredBytes += f.Size
		t.RawBytes += f.RawSize(c.SegSize)
		switch f.Name.Kind {
		case wal.KindSegment:
			t.Segments++
			if t.LastArchived == nil || f.Info.ModTime.After(*t.LastArchived) {
				at := f.Info.ModTime.UTC()
				t.LastArchived, t.LastArchivedFile = &at, f.Name.String()
			}
		case wal.KindHistory:
			t.Histories++
		case wal.KindBackup:
			t.Backups++
		case wal.KindPartial:
			t.Partials++
		}
	}
	return t
}
