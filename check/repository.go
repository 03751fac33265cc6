package check

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// checkRepo checks the repository: its identity against the server's, how
// fresh it is, the newest base backup and what is missing since, second
// writers, and a standby's replay against it.
func checkRepo(ctx context.Context, rep *Report, r *repo.Repo, o Options) {
	s := rep.Server
	id, ok, err := r.Identity(ctx)
	if err != nil {
		rep.add("repository", Critical, "cannot read %s: %v", r, err)
		return
	}
	switch {
	case !ok:
		rep.add("identity", Critical, "%s has no %s: nothing has been archived into it", r, repo.IdentityKey)
	case s != nil && id.SystemID != s.SystemID:
		rep.add("identity", Critical, "%s holds the WAL of database system %d, the server is system %d: another cluster's repository", r, id.SystemID, s.SystemID)
		return
	case s != nil:
		rep.add("identity", OK, "%s belongs to this server's database system %d (%s segments)", r, id.SystemID, wal.FormatSize(id.SegSize))
	default:
		rep.add("identity", OK, "%s belongs to database system %d (%s segments)", r, id.SystemID, wal.FormatSize(id.SegSize))
	}
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		rep.add("repository", Critical, "cannot read %s: %v", r, err)
		return
	}
	rep.Catalog = c
	if c.SegSize == 0 {
		return
	}
	now := o.Now()
	checkAge(rep, c, o, now)
	newest := checkBackups(rep, c, now)
	checkGaps(rep, c, newest)
	checkSecondWriters(rep, c, o)
	if s != nil && s.Standby {
		checkReplay(rep, c, o, now)
	}
}

// lastArchived is the segment archived most recently.
func lastArchived(c *catalog.Catalog) *catalog.File {
	var last *catalog.File
	for _, f := range c.Segments(0) {
		if last == nil || !f.Info.ModTime.Before(last.Info.ModTime) {
			last = f
		}
	}
	return last
}

// path is the history that leads to timeline tli, from its history file
// in the repository (or just tli for timeline 1 or a missing file).
func path(c *catalog.Catalog, tli uint32) wal.History {
	if f := c.Histories()[tli]; f != nil && f.History != nil {
		return *f.History
	}
	return wal.History{Timeline: tli}
}

// head is the segment with the highest position on the history h: on its
// own timeline, or on an ancestor before that one's switch point.
func head(c *catalog.Catalog, h wal.History) (*catalog.File, bool) {
	var best *catalog.File
	for _, f := range c.Segments(0) {
		if !h.Contains(f.Name.Timeline) {
			continue
		}
		if sp, left := h.SwitchPoint(f.Name.Timeline); left && f.Name.StartLSN(c.SegSize) >= sp {
			continue
		}
		if best == nil || wal.ComparePosition(f.Name, best.Name) >= 0 {
			best = f
		}
	}
	return best, best != nil
}

// checkAge compares the newest archived segment with MaxAge. An old one is
// only wrong when the server has WAL past it: a primary with
// archive_timeout at or below MaxAge switches out any segment that holds
// WAL within archive_timeout, so a quiet repository means a quiet server.
func checkAge(rep *Report, c *catalog.Catalog, o Options, now time.Time) {
	s := rep.Server
	last := lastArchived(c)
	if last == nil {
		bad := Warning
		if s != nil {
			if archivesNow, _ := archiving(s); archivesNow || s.Standby {
				bad = Critical
			}
		}
		rep.add("age", bad, "no segment in the repository")
		return
	}
	age := now.Sub(last.Info.ModTime)
	desc := fmt.Sprintf("the last segment archived, %s, was archived %s ago", last.Name, age.Round(time.Second))
	if age <= o.MaxAge {
		rep.add("age", OK, "%s", desc)
		return
	}
	desc += fmt.Sprintf(", more than %s", o.MaxAge)
	if s == nil {
		rep.add("age", Warning, "%s (without a connection to the server, an idle server cannot be told from stopped archiving)", desc)
		return
	}
	pos := max(s.LSN, s.Received)
	h, ok := head(c, path(c, s.Timeline))
	if !ok {
		rep.add("age", Critical, "%s, and the repository holds nothing of timeline %d's history", desc, s.Timeline)
		return
	}
	top := h.Name.SegNo(c.SegSize)
	cur := pos.SegNo(c.SegSize)
	switch {
	case cur > top+1:
		rep.add("age", Critical, "%s, and the server (at %s) has finished %d segment(s) since %s that are not in the repository",
			desc, pos, cur-top-1, h.Name)
	case s.Standby || cur <= top:
		rep.add("age", OK, "%s; the server has no WAL past it: idle", desc)
	case uint64(pos)%uint64(c.SegSize) <= wal.LongHeaderSize:
		rep.add("age", OK, "%s; the server has written nothing since: idle", desc)
	case s.ArchiveTimeout > 0 && s.ArchiveTimeout <= o.MaxAge:
		rep.add("age", OK, "%s; archive_timeout = %s switches out any WAL written since: idle", desc, s.ArchiveTimeout)
	default:
		rep.add("age", Warning, "%s, and the server has written WAL since (at %s) that waits in an unfinished segment: "+
			"set archive_timeout at or below %s so that such WAL is archived in time", desc, pos, o.MaxAge)
	}
}

// checkBackups reports on the newest base backup and returns it.
func checkBackups(rep *Report, c *catalog.Catalog, now time.Time) *catalog.Backup {
	bs := c.Backups()
	if len(bs) == 0 {
		rep.add("backup", Warning, "no base backup in the repository (none stored, no .backup file): nothing to restore from")
		return nil
	}
	b := bs[0]
	st := c.BackupStatuses()[0]
	when := fmt.Sprintf("taken %s ago", now.Sub(b.Time).Round(time.Second))
	if !st.Restorable {
		rep.add("backup", Critical, "the newest base backup %s (%s) is not restorable: %s", st.Name(), when, st.Reason)
	} else {
		rep.add("backup", OK, "the newest base backup %s (%s) is restorable", st.Name(), when)
	}
	return &b
}

// checkGaps reports segments missing since the newest base backup (what
// a restore of it to the end of the archive needs) as critical, older ones
// as a warning, and missing or damaged history files.
func checkGaps(rep *Report, c *catalog.Catalog, newest *catalog.Backup) {
	gaps, _ := catalog.Gaps(c, catalog.TimelineInfos(c))
	var since, before []catalog.Gap
	var nSince, nBefore uint64
	for _, g := range gaps {
		if newest != nil && g.Last.SegNo(c.SegSize) >= newest.Info.Start.SegNo(c.SegSize) {
			since, nSince = append(since, g), nSince+g.Count
		} else {
			before, nBefore = append(before, g), nBefore+g.Count
		}
	}
	switch {
	case len(since) > 0:
		rep.add("gaps", Critical, "%d segment(s) missing since the newest base backup %s: %s", nSince, newest.Name(), ranges(since))
	case newest != nil:
		rep.add("gaps", OK, "no segment missing since the newest base backup %s", newest.Name())
	case len(before) == 0:
		rep.add("gaps", OK, "no segment missing")
	}
	switch {
	case len(before) > 0 && newest != nil:
		rep.add("gaps", Warning, "%d segment(s) missing before the newest base backup: %s", nBefore, ranges(before))
	case len(before) > 0:
		rep.add("gaps", Warning, "%d segment(s) missing: %s", nBefore, ranges(before))
	}
	for _, p := range catalog.HistoryProblems(c) {
		rep.add("history", Critical, "%s", p)
	}
}

// ranges lists gaps, the first few of them.
func ranges(gs []catalog.Gap) string {
	var parts []string
	for i, g := range gs {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more range(s)", len(gs)-i))
			break
		}
		p := g.First.String()
		if g.Last != g.First {
			p += ".." + g.Last.String()
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

// checkReplay compares a standby's replay position with the repository:
// the archive holding the next segment for longer than MaxAge means replay
// is stuck (or far behind).
func checkReplay(rep *Report, c *catalog.Catalog, o Options, now time.Time) {
	s := rep.Server
	h := path(c, s.Timeline)
	cur := s.LSN.SegNo(c.SegSize)
	next := cur + 1
	nextName := wal.SegmentFromNo(h.TimelineAt(wal.LSN((next+1)*uint64(c.SegSize)-1)), next, c.SegSize)
	if abandoned(rep, c, o, now, nextName) {
		return
	}
	top, ok := head(c, h)
	if !ok || top.Name.SegNo(c.SegSize) <= cur {
		rep.add("replay", OK, "replays %s (timeline %d), at or past the newest segment the repository holds for it", s.LSN, s.Timeline)
		return
	}
	behind := top.Name.SegNo(c.SegSize) - cur
	for _, f := range c.Segments(nextName.Timeline) {
		if f.Name != nextName {
			continue
		}
		if age := now.Sub(f.Info.ModTime); age > o.MaxAge {
			rep.add("replay", Critical, "replay is stuck at %s (timeline %d): the repository has held the next segment %s for %s, more than %s, and %d segment(s) up to %s",
				s.LSN, s.Timeline, nextName, age.Round(time.Second), o.MaxAge, behind, top.Name)
			return
		}
	}
	rep.add("replay", OK, "replays %s (timeline %d), %d segment(s) behind the repository's %s", s.LSN, s.Timeline, behind, top.Name)
}

// abandoned reports (CRITICAL) a standby that waits for a segment of a
// timeline the repository has left: a newer timeline branched off it at or
// before that segment's end, and its history file has been there longer
// than MaxAge. The repository will get no more of the old timeline (but
// from a second writer): the standby must follow the new one
// (recovery_target_timeline = 'latest'), and has not.
func abandoned(rep *Report, c *catalog.Catalog, o Options, now time.Time, next wal.Name) bool {
	s := rep.Server
	hist := c.Histories()
	for _, tli := range c.Timelines() {
		f := hist[tli]
		if tli <= s.Timeline || f == nil || f.History == nil {
			continue
		}
		sp, descends := f.History.SwitchPoint(s.Timeline)
		end := next.StartLSN(c.SegSize) + wal.LSN(c.SegSize)
		if !descends || sp >= end || s.LSN > sp || c.HasSegment(next) {
			continue
		}
		age := now.Sub(f.Info.ModTime)
		if age <= o.MaxAge {
			continue // it follows the new timeline at its next look
		}
		rep.add("replay", Critical, "replay is stuck at %s on timeline %d, waiting for %s: timeline %d branched off timeline %d at %s (%s was archived %s ago), "+
			"and the repository gets no more of timeline %d: the standby must follow timeline %d (recovery_target_timeline = 'latest'; "+
			"a waiting walship-restore --standby ends its wait for it by itself)",
			s.LSN, s.Timeline, next, tli, s.Timeline, sp, f.Name, age.Round(time.Second), s.Timeline, tli)
		return true
	}
	return false
}

// checkSecondWriters reports older timelines still archived after a newer
// one branched off: CRITICAL once past the tail grace (two servers write
// into the repository), WARNING within it (an old primary's last segments
// at a failover, or the first of a second writer's).
func checkSecondWriters(rep *Report, c *catalog.Catalog, o Options) {
	critical := map[uint32]bool{}
	for _, w := range catalog.SecondWriters(c, o.TailGrace) {
		critical[w.Old] = true
		rep.add("second_writer", Critical, "%s", w.Problem())
	}
	for _, w := range catalog.SecondWriters(c, catalog.NoGrace) {
		if critical[w.Old] {
			continue
		}
		grace := o.TailGrace
		if grace == 0 {
			grace = catalog.DefaultTailGrace
		}
		rep.add("second_writer", Warning, "timeline %d got %d segment(s) past where timeline %d branched off it (%s..%s, the last at %s), after %s was archived: "+
			"an old primary's last segments at a failover, or a second server writing into this repository (CRITICAL if it goes on for more than %s)",
			w.Old, w.Segments, w.New, w.First, w.Last, w.LastTime.UTC().Format(time.RFC3339),
			wal.Name{Kind: wal.KindHistory, Timeline: w.New}, grace)
	}
}
