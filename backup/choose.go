package backup

import (
	"fmt"
	"strings"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// TargetKind is what a restore recovers to.
type TargetKind int

const (
	// TargetLatest recovers every WAL file in the archive.
	TargetLatest TargetKind = iota
	// TargetTime recovers to a moment (recovery_target_time).
	TargetTime
	// TargetName recovers to a restore point (recovery_target_name).
	TargetName
	// TargetLSN recovers to a WAL position (recovery_target_lsn).
	TargetLSN
)

// Target is where a restore's recovery stops.
type Target struct {
	Kind TargetKind
	Time time.Time
	Name string
	LSN  wal.LSN
}

func (t Target) String() string {
	switch t.Kind {
	case TargetTime:
		return "time " + t.Time.UTC().Format(time.RFC3339Nano)
	case TargetName:
		return fmt.Sprintf("restore point %q", t.Name)
	case TargetLSN:
		return "LSN " + t.LSN.String()
	}
	return "the end of the archive"
}

// timeLayouts are the forms of a target time walship reads; without a
// zone, the time is local.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999Z07",
	"2006-01-02 15:04:05.999999999 MST",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a target time: RFC 3339, or as PostgreSQL prints a
// timestamp ("2024-01-02 03:04:05.678+01"); without a zone it is local.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (like 2024-01-02T03:04:05Z or 2024-01-02 03:04:05+01)", s)
}

// pgTime is a target time as recovery_target_time reads it, in UTC.
func pgTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.999999") + "+00" }

// candidate is a stored backup a restore can start from.
type candidate struct {
	b      catalog.Backup
	meta   *catalog.Record
	status catalog.BackupStatus
}

// choose picks the backup a restore starts from: the one asked for, or
// the newest restorable one that can reach the target. A restore point
// cannot be located before the WAL is replayed: for a target name the
// newest backup is taken unless one is asked for.
func choose(c *catalog.Catalog, t Target, id repo.BackupID) (candidate, error) {
	var all, ok []candidate
	for _, b := range c.Backups() { // newest first
		if b.Stored == nil || b.Stored.Record == nil {
			continue
		}
		cand := candidate{b: b, meta: b.Stored.Record, status: c.BackupStatusOf(b)}
		all = append(all, cand)
		if cand.status.Restorable && !cand.meta.Registered {
			ok = append(ok, cand)
		}
	}
	if id != "" {
		for _, cand := range all {
			if cand.meta.ID != id {
				continue
			}
			switch {
			case cand.meta.Registered:
				return candidate{}, fmt.Errorf("%w: backup %s was registered: its files are not in the repository", ErrNoBackup, id)
			case !cand.status.Restorable:
				return candidate{}, fmt.Errorf("%w: backup %s is not restorable: %s", ErrNoBackup, id, cand.status.Reason)
			}
			if err := reaches(cand, t); err != nil {
				return candidate{}, err
			}
			return cand, afterArchive(c, t)
		}
		return candidate{}, fmt.Errorf("%w: the repository holds no backup %s", ErrNoBackup, id)
	}
	if len(ok) == 0 {
		if len(all) == 0 {
			return candidate{}, fmt.Errorf("%w: %s holds no base backup taken with walship backup create", ErrNoBackup, c.Location)
		}
		return candidate{}, fmt.Errorf("%w: no stored backup is restorable (the newest, %s: %s)", ErrNoBackup, all[0].meta.ID, all[0].status.Reason)
	}
	if err := afterArchive(c, t); err != nil {
		return candidate{}, err
	}
	for _, cand := range ok {
		if reaches(cand, t) == nil {
			return cand, nil
		}
	}
	oldest := ok[len(ok)-1]
	return candidate{}, fmt.Errorf("%w, the oldest restorable backup", reaches(oldest, t))
}

// reaches tells whether a restore from the backup can stop at the target:
// the backup must be consistent (stopped) before it.
func reaches(cand candidate, t Target) error {
	m := cand.meta
	switch t.Kind {
	case TargetTime:
		if t.Time.Before(m.StopTime) {
			return fmt.Errorf("%w: target time %s is before backup %s became consistent (%s)",
				ErrNoBackup, t.Time.UTC().Format(time.RFC3339), m.ID, m.StopTime.UTC().Format(time.RFC3339))
		}
	case TargetLSN:
		if t.LSN < m.Stop {
			return fmt.Errorf("%w: target LSN %s is before backup %s became consistent (%s)",
				ErrNoBackup, t.LSN, m.ID, m.Stop)
		}
	}
	return nil
}

// afterArchive refuses a target that lies after the last WAL archived:
// recovery would replay everything and fail without reaching it.
func afterArchive(c *catalog.Catalog, t Target) error {
	segs := c.Segments(0)
	if len(segs) == 0 {
		return nil
	}
	switch t.Kind {
	case TargetTime:
		var last *catalog.File
		for _, f := range segs {
			if last == nil || f.Info.ModTime.After(last.Info.ModTime) {
				last = f
			}
		}
		if t.Time.After(last.Info.ModTime) {
			return fmt.Errorf("%w: target time %s is after the end of the archive: its last segment, %s, was archived at %s",
				ErrAfterArchive, t.Time.UTC().Format(time.RFC3339), last.Name, last.Info.ModTime.UTC().Format(time.RFC3339))
		}
	case TargetLSN:
		var end wal.LSN
		var last wal.Name
		for _, f := range segs {
			if e := wal.LSN((f.Name.SegNo(c.SegSize) + 1) * uint64(c.SegSize)); e > end {
				end, last = e, f.Name
			}
		}
		if t.LSN > end {
			return fmt.Errorf("%w: target LSN %s is after the end of the archive: its last segment, %s, ends at %s",
				ErrAfterArchive, t.LSN, last, end)
		}
	}
	return nil
}

// passedOver names the newest stored backup, newer than the one chosen,
// that could not be restored for another reason than its WAL having
// expired (a member of its chain missing, an object damaged), and why.
func passedOver(c *catalog.Catalog, chosen candidate) (repo.BackupID, string) {
	for _, b := range c.Backups() { // newest first
		if b.Stored == nil || b.Stored.Record == nil || b.Stored.Record.Registered {
			continue
		}
		if b.Stored.ID == chosen.meta.ID {
			return "", ""
		}
		if st := c.BackupStatusOf(b); !st.Restorable && !st.Expired {
			return b.Stored.ID, st.Reason
		}
	}
	return "", ""
}
