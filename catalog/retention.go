package catalog

import (
	"errors"
	"fmt"
	"time"

	"github.com/walship/walship/wal"
)

// Policy says what to keep. Each rule that is set keeps some WAL; a file
// goes only if no rule keeps it.
type Policy struct {
	// Before keeps everything from this position on, on every timeline
	// (%r or --before): only the 16 hex digits after the timeline count.
	Before *wal.Name
	// KeepBackups keeps the WAL the N newest base backups need (0: unset).
	KeepBackups int
	// KeepAge keeps the WAL archived within this window and everything
	// after it, and the newest base backup taken before the window with
	// the WAL from its start, so that every moment of the window can be
	// restored (nil: unset).
	KeepAge *time.Duration
}

// Empty reports whether the policy says nothing.
func (p Policy) Empty() bool { return p.Before == nil && p.KeepBackups == 0 && p.KeepAge == nil }

// ErrNoPolicy is returned when no policy says what to keep.
var ErrNoPolicy = errors.New("no retention policy: nothing says what to keep")

// Retention is what a policy keeps of a repository.
type Retention struct {
	// Cutoff: files before this position go (history files never). Only
	// its position matters; its timeline is the one of the file it came
	// from, for messages.
	Cutoff wal.Name
	// Reason names the rule that set the cutoff.
	Reason string
	// Expired are the stored base backups that go with their WAL (they
	// start before the cutoff), oldest first; Interrupted the backup
	// directories without a record that were left LeftoverAge ago.
	Expired     []*Stored
	Interrupted []*Stored
	// Notes explain decisions worth knowing (a policy that kept everything).
	Notes []string
}

// limit is one rule's cutoff.
type limit struct {
	pos    wal.Name
	reason string
}

// keepAll is a cutoff no file is before.
var keepAll = wal.Name{Kind: wal.KindSegment, Timeline: 1}

// Retain decides what a policy keeps of the catalog at time now.
func (c *Catalog) Retain(p Policy, now time.Time) (Retention, error) {
	if p.Empty() {
		return Retention{}, ErrNoPolicy
	}
	if p.KeepBackups < 0 {
		return Retention{}, fmt.Errorf("keeping %d base backups: must be at least 1", p.KeepBackups)
	}
	if p.KeepAge != nil && *p.KeepAge < 0 {
		return Retention{}, fmt.Errorf("keeping what was archived within %s: the window must not be negative", *p.KeepAge)
	}
	var plan Retention
	var limits []limit
	if p.Before != nil {
		limits = append(limits, limit{p.Before.SegmentName(), "before " + p.Before.SegmentName().String()})
	}
	backups := c.Backups()
	ranked := c.rankForRetention(backups)
	if p.KeepBackups > 0 {
		if len(ranked) < p.KeepBackups {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%d restorable base backup(s) in the repository, %d to keep: keeping all WAL", len(ranked), p.KeepBackups))
			limits = append(limits, limit{keepAll, fmt.Sprintf("the %d newest base backups", p.KeepBackups)})
		} else {
			kept := ranked[:p.KeepBackups]
			oldest := kept[0]
			for _, b := range kept[1:] {
				if wal.ComparePosition(b.Start, oldest.Start) < 0 {
					oldest = b
				}
			}
			limits = append(limits, limit{oldest.Start, fmt.Sprintf("the %d newest base backups: base backup %s", p.KeepBackups, oldest.Name())})
		}
	}
	if p.KeepAge != nil {
		limits = append(limits, ageLimit(c, *p.KeepAge, now))
		if l, ok := windowBackup(ranked, *p.KeepAge, now); ok {
			limits = append(limits, l)
		}
	}
	cut := limits[0]
	for _, l := range limits[1:] {
		if wal.ComparePosition(l.pos, cut.pos) < 0 {
			cut = l
		}
	}
	// The newest base backup is never given up, whatever the policy; nor
	// the newest restorable one whose files are known (a backup history
	// file alone, left by a backup whose files never reached the
	// repository, may be newer).
	for _, newest := range [][]Backup{backups, ranked} {
		if len(newest) > 0 && wal.ComparePosition(newest[0].Start, cut.pos) < 0 {
			cut = limit{newest[0].Start, fmt.Sprintf("the newest base backup %s", newest[0].Name())}
		}
	}
	// A kept backup keeps every backup it builds on: a full backup goes
	// only with its last incremental.
	cut = c.keepChains(backups, cut)
	plan.Cutoff, plan.Reason = cut.pos, cut.reason

	// A stored backup whose WAL goes goes with it, oldest first.
	for i := len(backups) - 1; i >= 0; i-- {
		if b := backups[i]; b.Stored != nil && wal.ComparePosition(b.Start, cut.pos) < 0 {
			plan.Expired = append(plan.Expired, b.Stored)
		}
	}
	for _, sb := range c.Incomplete {
		if sb.Interrupted(now) {
			plan.Interrupted = append(plan.Interrupted, sb)
		}
	}
	return plan, nil
}

// windowBackup keeps the newest base backup taken before the window of
// age (of ranked, the restorable ones, those whose files are known
// first): without it the start of the window could not be restored.
func windowBackup(ranked []Backup, age time.Duration, now time.Time) (limit, bool) {
	since := now.Add(-age)
	for _, b := range ranked {
		if b.Time.Before(since) {
			return limit{b.Start, fmt.Sprintf("archived within %s: base backup %s, the newest taken before %s", age, b.Name(), since.UTC().Format(time.RFC3339))}, true
		}
	}
	return limit{}, false
}

// rankForRetention lists the backups a retention policy may keep, in the
// order it keeps them: the restorable backups whose files are known (in
// the repository, or registered) newest first, then the restorable ones
// known only from their backup history file, newest first. A backup whose
// files are nowhere to be found thus never takes the place of one that
// can be restored.
func (c *Catalog) rankForRetention(backups []Backup) []Backup {
	var known, unknown []Backup
	for _, b := range backups {
		if !c.BackupStatusOf(b).Restorable {
			continue
		}
		if b.FilesKnown() {
			known = append(known, b)
		} else {
			unknown = append(unknown, b)
		}
	}
	return append(known, unknown...)
}

// ageLimit keeps every segment archived at or after now-age, everything
// after the oldest of them, and in any case the newest segment.
func ageLimit(c *Catalog, age time.Duration, now time.Time) limit {
	since := now.Add(-age)
	segs := c.Segments(0)
	if len(segs) == 0 {
		return limit{keepAll, "archived within " + age.String()}
	}
	newest := segs[len(segs)-1].Name
	for _, f := range c.Files {
		if f.Name.HasSegment() && !f.Info.ModTime.Before(since) && wal.ComparePosition(f.Name, newest) < 0 {
			return limit{f.Name.SegmentName(), fmt.Sprintf("archived within %s: %s was archived at %s", age, f.Name, f.Info.ModTime.UTC().Format(time.RFC3339))}
		}
	}
	return limit{newest, fmt.Sprintf("archived within %s: the newest segment is always kept", age)}
}

// keepChains lowers the cutoff until no backup kept (starting at or
// after it) builds on one that would go.
func (c *Catalog) keepChains(backups []Backup, cut limit) limit {
	for changed := true; changed; {
		changed = false
		for _, b := range backups {
			if wal.ComparePosition(b.Start, cut.pos) < 0 {
				continue
			}
			chain, err := c.Chain(b)
			if err != nil {
				continue // not restorable anyway; keeps nothing
			}
			for _, a := range chain[:len(chain)-1] {
				if wal.ComparePosition(a.Start, cut.pos) < 0 {
					cut = limit{a.Start, fmt.Sprintf("base backup %s, which the kept backup %s builds on", a.Name(), b.Name())}
					changed = true
				}
			}
		}
	}
	return cut
}
