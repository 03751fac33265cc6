package repo

// The catalog is a whole repository read at once: what walship ls, status
// and verify report on, and the model walship-prune decides on.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// File is one stored WAL file. History and backup history files are read
// and parsed by Scan; Err says why one could not be.
type File struct {
	Entry
	History *wal.History    // for a parsed .history file
	Backup  *wal.BackupInfo // for a parsed .backup file
	Err     error
}

// Catalog is everything in a repository, in WAL order.
type Catalog struct {
	Location     string
	Layout       Layout
	Identity     Identity
	HaveIdentity bool
	// SegSize is the identity file's segment size, or, without one, the
	// size in the header of the first segment; 0 when neither is known.
	SegSize uint32
	// Files are ordered history files first (by timeline), then by
	// position in the WAL, timeline, kind and key.
	Files []File
	// Stored are the base backups walship stored (or registered): every
	// backup ID with a record, by ID. Incomplete are the IDs with objects
	// but no record: backups (or removals) that were interrupted, or one
	// that is running now.
	Stored     []*StoredBackup
	Incomplete []*StoredBackup

	segs map[wal.Name]bool // segment names present (kind Segment)
}

// Scan lists the repository and reads its history and backup history
// files. A storage error fails the scan; a file that is damaged is kept,
// with Err set.
func Scan(ctx context.Context, r *Repo) (*Catalog, error) {
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return nil, err
	}
	c := &Catalog{Location: r.String(), Identity: id, HaveIdentity: haveID, segs: map[wal.Name]bool{}}
	if haveID {
		c.SegSize = id.SegSize
	}
	dirs := map[BackupID]*StoredBackup{}
	err = r.listAll(ctx, func(e Entry) error {
		c.Files = append(c.Files, File{Entry: e})
		return nil
	}, func(o BackupObject, i storage.Info) {
		sb := dirs[o.ID]
		if sb == nil {
			sb = &StoredBackup{ID: o.ID, Objects: map[BackupPart]storage.Info{}}
			dirs[o.ID] = sb
		}
		sb.Objects[o.Part] = i
		if i.ModTime.After(sb.Newest) {
			sb.Newest = i.ModTime
		}
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", r, err)
	}
	if err := c.readBackups(ctx, r, dirs); err != nil {
		return nil, err
	}
	c.Layout = r.Layout()
	slices.SortStableFunc(c.Files, compareFiles)
	kept := c.Files[:0]
	for _, f := range c.Files {
		switch f.Name.Kind {
		case wal.KindHistory, wal.KindBackup:
			if err := readText(ctx, r, &f); err != nil {
				if storage.IsNotExist(err) {
					continue // removed since the listing (a concurrent prune)
				}
				return nil, err
			}
		case wal.KindSegment:
			c.segs[f.Name] = true
		}
		kept = append(kept, f)
	}
	c.Files = kept
	if c.SegSize == 0 {
		c.SegSize = c.guessSegSize(ctx, r)
	}
	return c, nil
}

// readText reads and parses a history or backup history file into f.
// Storage errors are returned; damage is recorded in f.Err.
func readText(ctx context.Context, r *Repo, f *File) error {
	o, err := r.OpenEntry(ctx, f.Entry)
	if err != nil {
		return err
	}
	defer o.Close()
	data, err := io.ReadAll(io.LimitReader(o, MaxTextFile+1))
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrEncryption) {
			f.Err = err // damaged, or encrypted and no identity given
			return nil
		}
		return fmt.Errorf("reading %s: %w", f.Key, err)
	}
	text, err := ParseText(f.Name, data, nil)
	f.History, f.Backup, f.Err = text.History, text.Backup, err
	return nil
}

// guessSegSize reads the header of the first segment of a repository that
// has no identity file.
func (c *Catalog) guessSegSize(ctx context.Context, r *Repo) uint32 {
	for _, f := range c.Files {
		if f.Name.Kind != wal.KindSegment {
			continue
		}
		h, err := ReadHeader(ctx, r, f.Entry)
		if err != nil {
			return 0
		}
		return h.SegSize
	}
	return 0
}

// ReadHeader reads and parses the long page header of a stored segment or
// partial segment.
func ReadHeader(ctx context.Context, r *Repo, e Entry) (wal.LongHeader, error) {
	o, err := r.OpenEntry(ctx, e)
	if err != nil {
		return wal.LongHeader{}, err
	}
	defer o.Close()
	head := make([]byte, wal.LongHeaderSize)
	if _, err := io.ReadFull(o, head); err != nil {
		return wal.LongHeader{}, fmt.Errorf("reading the header of %s: %w", e.Key, err)
	}
	return wal.ParseLongHeader(head)
}

func kindOrder(k wal.Kind) int {
	switch k {
	case wal.KindHistory:
		return 0
	case wal.KindSegment:
		return 1
	case wal.KindPartial:
		return 2
	}
	return 3
}

// compareFiles orders history files first, then by WAL position.
func compareFiles(a, b File) int {
	ah, bh := a.Name.Kind == wal.KindHistory, b.Name.Kind == wal.KindHistory
	switch {
	case ah && !bh:
		return -1
	case bh && !ah:
		return 1
	}
	return cmp.Or(
		wal.ComparePosition(a.Name, b.Name),
		cmp.Compare(a.Name.Timeline, b.Name.Timeline),
		cmp.Compare(kindOrder(a.Name.Kind), kindOrder(b.Name.Kind)),
		cmp.Compare(a.Name.Offset, b.Name.Offset),
		cmp.Compare(a.Key, b.Key),
	)
}

// Duplicates lists the names stored more than once (under two codecs or
// in both layouts), each with all its files: a repository must hold one
// object per name, or a restore may hand out either.
func (c *Catalog) Duplicates() [][]*File {
	byName := map[wal.Name][]*File{}
	var order []wal.Name
	for i := range c.Files {
		f := &c.Files[i]
		if len(byName[f.Name]) == 0 {
			order = append(order, f.Name)
		}
		byName[f.Name] = append(byName[f.Name], f)
	}
	var out [][]*File
	for _, n := range order {
		if fs := byName[n]; len(fs) > 1 {
			out = append(out, fs)
		}
	}
	return out
}

// HasSegment reports whether segment n (kind Segment) is stored.
func (c *Catalog) HasSegment(n wal.Name) bool { return c.segs[n.SegmentName()] }

// Histories maps each timeline to its history file.
func (c *Catalog) Histories() map[uint32]*File {
	m := map[uint32]*File{}
	for i := range c.Files {
		if f := &c.Files[i]; f.Name.Kind == wal.KindHistory {
			if _, dup := m[f.Name.Timeline]; !dup {
				m[f.Name.Timeline] = f
			}
		}
	}
	return m
}

// Segments returns the stored segments of timeline tli (0: all), in order.
func (c *Catalog) Segments(tli uint32) []*File {
	var out []*File
	for i := range c.Files {
		f := &c.Files[i]
		if f.Name.Kind == wal.KindSegment && (tli == 0 || f.Name.Timeline == tli) {
			out = append(out, f)
		}
	}
	return out
}

// OldestSegment is the stored segment with the lowest position (on the
// lowest timeline at that position); ok is false when there is none.
func (c *Catalog) OldestSegment() (wal.Name, bool) {
	for _, f := range c.Files {
		if f.Name.Kind == wal.KindSegment {
			return f.Name, true
		}
	}
	return wal.Name{}, false
}

// Timelines lists every timeline the repository mentions: in file names
// and as ancestors in history files, in increasing order.
func (c *Catalog) Timelines() []uint32 {
	seen := map[uint32]bool{}
	for _, f := range c.Files {
		seen[f.Name.Timeline] = true
		if f.History != nil {
			for _, e := range f.History.Entries {
				seen[e.Timeline] = true
			}
		}
	}
	out := make([]uint32, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

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
	Stored *StoredBackup
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

// backupTimeLayout is how PostgreSQL writes START TIME and STOP TIME.
const backupTimeLayout = "2006-01-02 15:04:05 MST"

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
		m := sb.Meta
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
				StartTime: m.StartTime.UTC().Format(backupTimeLayout), StopTime: m.StopTime.UTC().Format(backupTimeLayout)}}
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
			if t, err := time.Parse(backupTimeLayout, f.Backup.StartTime); err == nil {
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
