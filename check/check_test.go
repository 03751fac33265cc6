package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

var (
	seg = fakerepo.Seg
	now = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
)

// healthy is timeline 1, segments 1..6, a base backup in 2..3, all
// archived a minute ago.
func healthy(t *testing.T) *fakerepo.Repo {
	f := fakerepo.New(t)
	f.Segments(1, 1, 6)
	f.Backup(1, 2, 3, now.Add(-time.Hour))
	ageAll(f, 1, 1, 6, now.Add(-time.Minute))
	return f
}

func ageAll(f *fakerepo.Repo, tli uint32, from, to uint64, at time.Time) {
	for s := from; s <= to; s++ {
		f.Age(seg(tli, s), at)
	}
}

// primaryAt is a primary of the fake cluster at lsn on timeline 1.
func primaryAt(lsn wal.LSN) *Server {
	return &Server{SystemID: fakerepo.SysID, Timeline: 1, LSN: lsn, Settings: map[string]string{"archive_mode": "on"}}
}

// inSeg is an LSN off bytes into segment segno.
func inSeg(segno, off uint64) wal.LSN { return wal.LSN(segno*uint64(fakerepo.SegSize) + off) }

// runRepo runs the repository checks as Run does, with s as the server.
func runRepo(t *testing.T, f *fakerepo.Repo, s *Server, o Options) *Report {
	t.Helper()
	o.Now = func() time.Time { return now }
	o = o.withDefaults()
	rep := &Report{Server: s}
	checkRepo(context.Background(), rep, f.Open(repo.LayoutAuto), o)
	rep.finish()
	return rep
}

// want checks that the report has one finding of check with status (and
// none worse than OK of another status) and a message containing each of
// wants.
func want(t *testing.T, rep *Report, check string, status Status, wants ...string) {
	t.Helper()
	var fs []Finding
	for _, f := range rep.Of(check) {
		if f.Status == status || f.Status > OK {
			fs = append(fs, f)
		}
	}
	if len(fs) != 1 || fs[0].Status != status {
		t.Errorf("%s: findings %v, want one %s; all:\n%s", check, fs, status, findings(rep))
		return
	}
	for _, w := range wants {
		if !strings.Contains(fs[0].Message, w) {
			t.Errorf("%s: %q does not say %q", check, fs[0].Message, w)
		}
	}
}

func findings(rep *Report) string {
	var lines []string
	for _, f := range rep.Findings {
		lines = append(lines, f.String())
	}
	return strings.Join(lines, "\n")
}

func TestRepositoryHealthy(t *testing.T) {
	rep := runRepo(t, healthy(t), nil, Options{})
	if rep.Status != OK {
		t.Errorf("status %s:\n%s", rep.Status, findings(rep))
	}
	want(t, rep, "identity", OK, "7229286521432618453")
	want(t, rep, "age", OK, seg(1, 6).String(), "1m0s ago")
	want(t, rep, "backup", OK, "restorable", "1h0m0s ago")
	want(t, rep, "gaps", OK, "no segment missing since the newest base backup")
	rep = runRepo(t, healthy(t), primaryAt(inSeg(7, 0x1000)), Options{})
	if rep.Status != OK {
		t.Errorf("with a server at segment 7: status %s:\n%s", rep.Status, findings(rep))
	}
}

// TestAge: an old last archive is critical when the server has finished
// segments since; an idle server (nothing written, or archive_timeout
// switching out anything written) is fine; a server whose open segment may
// hold unarchived WAL for longer than --max-age is a warning.
func TestAge(t *testing.T) {
	f := healthy(t)
	ageAll(f, 1, 1, 6, now.Add(-time.Hour)) // older than the default 15 minutes
	rep := runRepo(t, f, primaryAt(inSeg(9, 0x5000)), Options{})
	want(t, rep, "age", Critical, seg(1, 6).String(), "1h0m0s ago", "2 segment(s) since")
	if rep.Status != Critical {
		t.Errorf("status %s", rep.Status)
	}
	want(t, runRepo(t, f, primaryAt(inSeg(7, wal.LongHeaderSize)), Options{}), "age", OK, "written nothing since: idle")
	s := primaryAt(inSeg(7, 0x5000))
	want(t, runRepo(t, f, s, Options{}), "age", Warning, "set archive_timeout at or below 15m0s")
	s.ArchiveTimeout = time.Minute
	want(t, runRepo(t, f, s, Options{}), "age", OK, "archive_timeout = 1m0s")
	want(t, runRepo(t, f, s, Options{MaxAge: 2 * time.Hour}), "age", OK, "1h0m0s ago")
	want(t, runRepo(t, f, nil, Options{}), "age", Warning, "without a connection")
	// A standby streaming ahead of the archive: the primary's archiving
	// lags.
	sb := primaryAt(inSeg(7, 0x100))
	sb.Standby, sb.Received = true, inSeg(12, 0)
	want(t, runRepo(t, f, sb, Options{}), "age", Critical, "5 segment(s) since")
}

func TestGapsSinceNewestBackup(t *testing.T) {
	f := healthy(t)
	f.Delete(seg(1, 1))
	f.Segments(1, 0, 0) // the oldest, so that 1 is a gap
	rep := runRepo(t, f, nil, Options{})
	want(t, rep, "gaps", Warning, "1 segment(s) missing before the newest base backup: "+seg(1, 1).String())
	f.Delete(seg(1, 4))
	f.Delete(seg(1, 5))
	rep = runRepo(t, f, nil, Options{})
	fs := rep.Of("gaps")
	if len(fs) != 2 || fs[0].Status != Critical || !strings.Contains(fs[0].Message, "2 segment(s) missing since the newest base backup") ||
		!strings.Contains(fs[0].Message, seg(1, 4).String()+".."+seg(1, 5).String()) {
		t.Errorf("gaps: %v", fs)
	}
	if rep.Status != Critical {
		t.Errorf("status %s", rep.Status)
	}
}

func TestBackups(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	want(t, runRepo(t, f, nil, Options{}), "backup", Warning, "no base backup")
	b := f.Backup(1, 2, 3, now.Add(-time.Hour))
	f.Delete(seg(1, 3))
	rep := runRepo(t, f, nil, Options{})
	want(t, rep, "backup", Critical, b.String(), "not restorable", seg(1, 3).String())
	want(t, rep, "gaps", Critical, seg(1, 3).String())
}

func TestIdentityMismatch(t *testing.T) {
	s := primaryAt(inSeg(7, 0))
	s.SystemID++
	rep := runRepo(t, healthy(t), s, Options{})
	want(t, rep, "identity", Critical, "another cluster's repository")
	if len(rep.Findings) != 1 {
		t.Errorf("after another cluster's identity nothing else is checked:\n%s", findings(rep))
	}
	empty := fakerepo.New(t)
	os.MkdirAll(empty.Dir, 0o700)
	want(t, runRepo(t, empty, s, Options{}), "identity", Critical, "has no walship.json")
}

func TestSecondWriter(t *testing.T) {
	f := healthy(t)
	f.History(2, [2]uint64{1, 4})
	f.Segments(2, 4, 5)
	f.Age(wal.Name{Kind: wal.KindHistory, Timeline: 2}, now.Add(-time.Hour))
	ageAll(f, 1, 1, 4, now.Add(-2*time.Hour))
	rep := runRepo(t, f, nil, Options{})
	want(t, rep, "second_writer", Critical, "timeline 1 is still being archived after timeline 2 branched off", "since "+now.Add(-time.Hour).Format(time.RFC3339))
	if rep.Status != Critical || rep.Findings[0].Check != "second_writer" {
		t.Errorf("status %s, first finding %v: the worst comes first", rep.Status, rep.Findings[0])
	}
}

// TestReplay: a standby whose next segment has been in the repository for
// longer than --max-age is stuck; one that has just been archived is not.
func TestReplay(t *testing.T) {
	f := healthy(t)
	ageAll(f, 1, 1, 6, now.Add(-time.Hour))
	f.Age(seg(1, 6), now)
	sb := primaryAt(inSeg(3, 0x2000))
	sb.Standby = true
	want(t, runRepo(t, f, sb, Options{}), "replay", Critical, "stuck", seg(1, 4).String(), "3 segment(s) up to "+seg(1, 6).String())
	sb.LSN = inSeg(5, 0x100)
	want(t, runRepo(t, f, sb, Options{}), "replay", OK, "1 segment(s) behind")
	sb.LSN = inSeg(6, 0x100)
	want(t, runRepo(t, f, sb, Options{}), "replay", OK, "at or past the newest segment")
}

func TestArchiverAndBacklog(t *testing.T) {
	o := Options{Now: func() time.Time { return now }}.withDefaults()
	check := func(s *Server) *Report {
		rep := &Report{Server: s}
		checkArchiver(rep, s)
		checkBacklog(rep, s, o)
		rep.finish()
		return rep
	}
	s := primaryAt(0)
	s.Archiver = Archiver{Archived: 10, LastArchivedWAL: seg(1, 5).String(), LastArchived: now.Add(-time.Minute)}
	s.Ready = Backlog{Count: 1, Oldest: seg(1, 6).String(), OldestTime: now.Add(-time.Second)}
	rep := check(s)
	want(t, rep, "archiver", OK, "10 archived")
	want(t, rep, "backlog", OK, "1 file(s) waiting")

	// exit 127: nothing counted, the backlog ages.
	s.Ready = Backlog{Count: 7, Oldest: seg(1, 6).String(), OldestTime: now.Add(-time.Hour)}
	rep = check(s)
	want(t, rep, "archiver", OK)
	want(t, rep, "backlog", Critical, "7 file(s)", seg(1, 6).String(), "127", "no failure")

	s.Archiver.Failed, s.Archiver.LastFailedWAL, s.Archiver.LastFailed = 3, seg(1, 6).String(), now.Add(-time.Second)
	rep = check(s)
	want(t, rep, "archiver", Critical, "3 failure(s)", seg(1, 6).String())
	want(t, rep, "backlog", Critical, "archive_command fails, the last time for "+seg(1, 6).String())
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "walship-archive")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	f := healthy(t)
	r := f.Open(repo.LayoutAuto)
	conf := filepath.Join(dir, "walship.toml")
	os.WriteFile(conf, []byte("repo = 'file://"+f.Dir+"'\n"), 0o600)
	run := func(line string) *Report {
		s := primaryAt(0)
		s.Settings["archive_command"] = line
		rep := &Report{Server: s}
		checkCommand(rep, s, r, Options{}, Critical)
		rep.finish()
		return rep
	}
	rep := run(bin + " --repo " + f.Dir + " %p %f")
	want(t, rep, "archive_command", OK, bin)
	want(t, rep, "destination", OK, f.Dir)
	want(t, run(bin+" --config "+conf+" %p %f"), "destination", OK)
	want(t, run(bin+" --repo "+f.Dir+"-other %p %f"), "destination", Critical, "archives into "+f.Dir+"-other")
	want(t, run(filepath.Join(dir, "nowhere", "walship-archive")+" --repo "+f.Dir+" %p %f"), "archive_command", Critical, "no such file")
	want(t, run("cp %p /archive/%f"), "archive_command", Warning, "does not run walship-archive")
	want(t, run(""), "archive_command", Critical, "empty")
	// A bare name, where the server's environment cannot be read (this
	// test process is no postmaster): looked up in our own PATH, a warning.
	t.Setenv("PATH", "/nonexistent")
	want(t, run("walship-archive --repo "+f.Dir+" %p %f"), "archive_command", Warning, "not on the server's PATH (/nonexistent)", "environment could not be read")
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	exe := filepath.Join(dir, "bin", "walship-archive")
	os.WriteFile(exe, nil, 0o755)
	os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644)
	if p, err := lookPath("walship-archive", "/nonexistent:"+filepath.Join(dir, "bin"), ""); p != exe || err != nil {
		t.Errorf("on PATH: %q, %v", p, err)
	}
	if p, err := lookPath("bin/walship-archive", "", dir); p != exe || err != nil {
		t.Errorf("relative to the data directory: %q, %v", p, err)
	}
	if _, err := lookPath("walship-archive", "/usr/bin:/bin", dir); err == nil || !strings.Contains(err.Error(), "not on the server's PATH (/usr/bin:/bin)") {
		t.Errorf("missing: %v", err)
	}
	if _, err := lookPath(filepath.Join(dir, "noexec"), "", ""); err == nil {
		t.Error("not executable: no error")
	}
}

// TestSecondWriterWithinGrace: an older timeline archived past a newer
// one's switch point is at least a WARNING from its first segment, and
// CRITICAL once past --tail-grace.
func TestSecondWriterWithinGrace(t *testing.T) {
	f := healthy(t)
	f.History(2, [2]uint64{1, 4})
	f.Segments(2, 4, 5)
	f.Age(wal.Name{Kind: wal.KindHistory, Timeline: 2}, now.Add(-2*time.Minute))
	ageAll(f, 1, 1, 4, now.Add(-2*time.Hour))
	ageAll(f, 1, 5, 6, now.Add(-time.Minute)) // past the switch point, after timeline 2
	rep := runRepo(t, f, nil, Options{})
	want(t, rep, "second_writer", Warning, "timeline 1 got 2 segment(s) past where timeline 2 branched off", "CRITICAL if it goes on for more than 10m0s")
	rep = runRepo(t, f, nil, Options{TailGrace: 30 * time.Second})
	want(t, rep, "second_writer", Critical, "timeline 1 is still being archived after timeline 2 branched off")
}

// TestReplayOnAnAbandonedTimeline: after a failover the repository holds
// timeline 2, which left timeline 1 in segment 4; a standby still on
// timeline 1, waiting for its segment 4 (which will never come), is stuck:
// CRITICAL once 00000002.history is older than --max-age, not OK "at the
// newest segment".
func TestReplayOnAnAbandonedTimeline(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 3)
	f.Backup(1, 2, 3, now.Add(-time.Hour))
	f.History(2, [2]uint64{1, 4})
	f.Segments(2, 4, 6)
	ageAll(f, 1, 1, 3, now.Add(-2*time.Hour))
	ageAll(f, 2, 4, 6, now.Add(-time.Minute))
	hist := wal.Name{Kind: wal.KindHistory, Timeline: 2}
	sb := primaryAt(inSeg(3, 0x2000))
	sb.Standby = true
	f.Age(hist, now.Add(-10*time.Second))
	if rep := runRepo(t, f, sb, Options{MaxAge: 20 * time.Second}); len(rep.Of("replay")) != 1 || rep.Of("replay")[0].Status == Critical {
		t.Errorf("timeline 2 appeared 10s ago (max age 20s): %s", findings(rep))
	}
	f.Age(hist, now.Add(-time.Minute))
	want(t, runRepo(t, f, sb, Options{MaxAge: 20 * time.Second}), "replay", Critical, "stuck", "timeline 2 branched off timeline 1", seg(1, 4).String())
	sb.Timeline, sb.LSN = 2, inSeg(6, 0x100) // it followed
	want(t, runRepo(t, f, sb, Options{MaxAge: 20 * time.Second}), "replay", OK, "timeline 2")
}
