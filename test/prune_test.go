package test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// prFiles maps the WAL file names stored in a local repository to their
// paths.
func prFiles(t *testing.T, repoDir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(repoDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repoDir, path)
		if n, _, _, ok := repo.ParseKey(filepath.ToSlash(rel)); ok {
			out[n.String()] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// prSegments lists the stored segments (not partial) in WAL order.
func prSegments(files map[string]string) []wal.Name {
	var out []wal.Name
	for s := range files {
		if n, err := wal.ParseName(s); err == nil && n.Kind == wal.KindSegment {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b wal.Name) int {
		if c := wal.ComparePosition(a, b); c != 0 {
			return c
		}
		return int(a.Timeline) - int(b.Timeline)
	})
	return out
}

// prBackups lists the backup history files stored.
func prBackups(files map[string]string) []string {
	var out []string
	for s := range files {
		if strings.HasSuffix(s, ".backup") {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// prSwitch writes a little on the primary c, switches to a new segment and
// waits until the finished one is in the repository. It returns the LSN of
// the switch.
func prSwitch(t *testing.T, c *pgtest.Cluster, repoDir string) string {
	t.Helper()
	c.Query("CREATE TABLE IF NOT EXISTS prune_tick (i int); INSERT INTO prune_tick VALUES (1)")
	seg := c.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	lsn := c.Query("SELECT pg_switch_wal()")
	pgtest.Eventually(t, 60*time.Second, seg+" in the repository", func() bool {
		_, ok := prFiles(t, repoDir)[seg]
		return ok
	})
	return lsn
}

// prPgbench starts pgbench on c and returns a function that waits for it.
func prPgbench(t *testing.T, c *pgtest.Cluster, args ...string) (wait func()) {
	t.Helper()
	all := append([]string{"-h", c.Socket, "-p", strconv.Itoa(c.Port), "-U", "postgres"}, args...)
	cmd := pgtest.Command(t, pgtest.Tool(t, "pgbench"), append(all, "postgres")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out.String())
		}
	}
}

// prWaitReplay waits until the standby s has replayed up to lsn.
func prWaitReplay(t *testing.T, s *pgtest.Cluster, lsn string) {
	t.Helper()
	s.WaitQuery("SELECT pg_last_wal_replay_lsn() >= '"+lsn+"'::pg_lsn", "t", 90*time.Second)
}

// backupStart is the segment a backup history file's base backup starts in.
func backupStart(t *testing.T, backupFile string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	return n.SegmentName()
}

// TestPruneKeepBackups: three base backups taken while pgbench writes;
// --keep-backups 2 removes exactly the WAL before the second newest, the
// older kept backup still restores to a consistent state, and walship
// verify names the dropped one as no longer restorable.
func TestPruneKeepBackups(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{SegSizeMB: 1})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir))
	p.Start()
	p.Pgbench("-i", "-s", "1", "-q")

	var backups []string
	var kept *pgtest.Cluster // the second newest backup, restored below
	for i := range 3 {
		before := prBackups(prFiles(t, repoDir))
		wait := prPgbench(t, p, "-n", "-c", "2", "-j", "1", "-T", "2")
		b := p.BaseBackup(base, fmt.Sprintf("backup%d", i))
		wait()
		prSwitch(t, p, repoDir)
		var added []string
		for _, f := range prBackups(prFiles(t, repoDir)) {
			if !slices.Contains(before, f) {
				added = append(added, f)
			}
		}
		if len(added) != 1 {
			t.Fatalf("backup %d added backup history files %v, want one", i, added)
		}
		backups = append(backups, added[0])
		if i == 1 {
			kept = b
		}
	}
	cutoff := backupStart(t, backups[1])
	beforeFiles := prFiles(t, repoDir)
	if first := prSegments(beforeFiles)[0]; wal.ComparePosition(first, cutoff) >= 0 {
		t.Fatalf("nothing to prune: oldest segment %s, second newest backup starts in %s", first, cutoff)
	}
	prune := func(args ...string) result {
		return walship(t, runOpts{}, "walship-prune", append([]string{"--repo", repoDir}, args...)...)
	}

	// Another cluster's identifier: refused, nothing touched.
	r := prune("--keep-backups", "2", "--system-identifier", "42")
	wantOneLine(t, "prune with a wrong --system-identifier", r, []int{1}, "walship-prune", "refusing to prune", "42")

	// A dry run lists what would go and removes nothing.
	r = prune("--keep-backups", "2", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would remove") || !strings.Contains(r.stdout, prSegments(beforeFiles)[0].String()) {
		t.Errorf("dry run: %s", r)
	}
	if got := prFiles(t, repoDir); len(got) != len(beforeFiles) {
		t.Fatalf("dry run removed %d files", len(beforeFiles)-len(got))
	}

	r = prune("--keep-backups", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "oldest kept segment "+cutoff.String()) {
		t.Fatalf("walship-prune --keep-backups 2: %s", r)
	}
	t.Logf("walship-prune --keep-backups 2: %s", r.stdout)
	after := prFiles(t, repoDir)
	if oldest := prSegments(after)[0]; oldest != cutoff {
		t.Errorf("oldest segment left is %s, want the second newest backup's start %s", oldest, cutoff)
	}
	for name := range beforeFiles {
		n, _ := wal.ParseName(name)
		_, left := after[name]
		switch {
		case n.Kind == wal.KindSegment && wal.ComparePosition(n, cutoff) < 0 && left:
			t.Errorf("%s before the cutoff %s was kept", name, cutoff)
		case n.Kind == wal.KindSegment && wal.ComparePosition(n, cutoff) >= 0 && !left:
			t.Errorf("%s at or after the cutoff %s was removed", name, cutoff)
		case n.Kind == wal.KindBackup && !left:
			t.Errorf("backup history file %s removed with its WAL, want it kept one run for verify", name)
		}
	}

	// verify: the dropped backup is named as no longer restorable, the kept
	// ones are restorable, and the repository is healthy.
	r = walship(t, runOpts{}, "walship", "verify", "--repo", repoDir)
	if r.code != 0 {
		t.Errorf("walship verify after pruning: %s", r)
	}
	t.Logf("walship verify:\n%s", r.stdout)
	for i, b := range backups {
		line := logLine(r.stdout, "backup "+b+":")
		if want := i > 0; strings.Contains(line, "NOT restorable") == want || line == "" {
			t.Errorf("verify on backup %s (restorable: %v): %q\n%s", b, want, line, r.stdout)
		}
	}

	// The next run drops the expired backup's record, and nothing else.
	r = prune("--keep-backups", "2")
	if r.code != 0 || !strings.Contains(r.stdout, "removed 1 file(s)") {
		t.Errorf("second walship-prune: %s", r)
	}
	if _, ok := prFiles(t, repoDir)[backups[0]]; ok {
		t.Errorf("record %s of the expired backup is still there", backups[0])
	}

	// The older kept backup restores from the pruned archive.
	p.Stop("fast")
	kept.Conf(pgtest.RestoreCommand(t, repoDir), "recovery_target = 'immediate'",
		"recovery_target_action = 'promote'", "archive_mode = off")
	kept.Touch("recovery.signal")
	kept.Start()
	kept.WaitQuery("SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if n := kept.Int("SELECT count(*) FROM pgbench_accounts"); n != 100000 {
		t.Errorf("restored backup has %d accounts, want 100000", n)
	}
}

// TestPruneArchiveCleanupOnStandby: a standby that follows the archive
// alone runs walship-prune as archive_cleanup_command and keeps the archive
// trimmed as restartpoints happen, across a timeline switch made by
// promoting another standby of the same archive; history files stay. The
// repository then serves as the subject of walship verify.
func TestPruneArchiveCleanupOnStandby(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{SegSizeMB: 1})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir))
	p.Start()
	p.Pgbench("-i", "-s", "1", "-q")
	prSwitch(t, p, repoDir)

	standby := func(c *pgtest.Cluster, lines ...string) {
		c.Conf(append([]string{pgtest.RestoreCommand(t, repoDir), "wal_retrieve_retry_interval = '100ms'"}, lines...)...)
		c.Touch("standby.signal")
		c.Start()
	}
	cleaner := p.BaseBackup(base, "cleaner")
	standby(cleaner, fmt.Sprintf("archive_cleanup_command = '%s --repo %s %%r'", pgtest.Bin(t, "walship-prune"), repoDir))
	promoted := p.BaseBackup(base, "promoted")
	standby(promoted, "archive_mode = on", pgtest.ArchiveCommand(t, repoDir))
	backupsTL1 := prBackups(prFiles(t, repoDir))
	if len(backupsTL1) != 2 {
		t.Fatalf("backup history files %v, want two", backupsTL1)
	}
	newestTL1 := backupStart(t, backupsTL1[1])
	first := prSegments(prFiles(t, repoDir))[0]

	// Timeline 1: the primary writes and checkpoints, the standby replays
	// that checkpoint and makes a restartpoint, whose %r lets the WAL
	// before the newest backup go.
	p.Pgbench("-n", "-c", "2", "-j", "1", "-t", "300")
	p.Query("CHECKPOINT")
	lsn := prSwitch(t, p, repoDir)
	prWaitReplay(t, cleaner, lsn)
	prWaitReplay(t, promoted, lsn)
	cleaner.Query("CHECKPOINT")
	pgtest.Eventually(t, 30*time.Second, "the cleanup after a restartpoint on timeline 1", func() bool {
		segs := prSegments(prFiles(t, repoDir))
		return len(segs) > 0 && segs[0] == newestTL1
	})
	if _, ok := prFiles(t, repoDir)[first.String()]; ok {
		t.Fatalf("%s is still archived", first)
	}

	// The switch: the primary goes, the other standby is promoted to
	// timeline 2 and archives into the same repository; a base backup of
	// it, writes, a checkpoint.
	p.Stop("fast")
	promoted.Promote()
	if seg := promoted.Query("SELECT pg_walfile_name(pg_current_wal_lsn())"); !strings.HasPrefix(seg, "00000002") {
		t.Fatalf("promoted standby writes %s, want timeline 2", seg)
	}
	promoted.BaseBackup(base, "backup-tl2")
	var newest wal.Name
	for _, b := range prBackups(prFiles(t, repoDir)) {
		if n := backupStart(t, b); n.Timeline == 2 {
			newest = n
		}
	}
	if newest.Timeline != 2 {
		t.Fatal("no backup history file of timeline 2 in the repository")
	}
	promoted.Pgbench("-n", "-c", "2", "-j", "1", "-t", "300")
	promoted.Query("CHECKPOINT")
	for range 3 {
		lsn = prSwitch(t, promoted, repoDir)
	}
	prWaitReplay(t, cleaner, lsn)
	cleaner.Query("CHECKPOINT")
	pgtest.Eventually(t, 30*time.Second, "the cleanup after a restartpoint on timeline 2", func() bool {
		segs := prSegments(prFiles(t, repoDir))
		return len(segs) > 0 && segs[0] == newest
	})
	files := prFiles(t, repoDir)
	if _, ok := files["00000002.history"]; !ok {
		t.Errorf("00000002.history was removed")
	}
	for name := range files {
		n, _ := wal.ParseName(name)
		if n.HasSegment() && n.Kind != wal.KindBackup && wal.ComparePosition(n, newest) < 0 {
			t.Errorf("%s before the cutoff %s is still archived", name, newest)
		}
	}
	if tli := cleaner.Query("SELECT timeline_id FROM pg_control_checkpoint()"); tli != "2" {
		t.Errorf("the cleaning standby's restartpoint is on timeline %s, want 2", tli)
	}
	for _, l := range strings.Split(cleaner.Log(), "\n") {
		if strings.Contains(l, "archive_cleanup_command") || strings.Contains(l, "walship-prune") {
			t.Errorf("the standby logged about its archive_cleanup_command: %s", l)
		}
	}
	id := sysID(t, promoted)
	cleaner.Stop("fast")
	promoted.Stop("fast")

	t.Run("verify", func(t *testing.T) { prVerify(t, repoDir, id) })
}

// prVerify damages a healthy repository in three ways, one at a time, and
// checks that walship verify names each and fails.
func prVerify(t *testing.T, repoDir string, sysID uint64) {
	verify := func(args ...string) result {
		return walship(t, runOpts{}, "walship", append([]string{"verify", "--repo", repoDir}, args...)...)
	}
	r := verify("--full")
	if r.code != 0 || !strings.Contains(r.stdout, "ok: no problems found") {
		t.Fatalf("verify --full of a healthy repository: %s", r)
	}
	t.Logf("walship verify --full:\n%s", r.stdout)
	files := prFiles(t, repoDir)
	segs := prSegments(files)

	// status and ls agree with the files on disk.
	r = walship(t, runOpts{}, "walship", "status", "--repo", repoDir, "--json")
	var st struct {
		SystemID  string `json:"system_identifier"`
		Segments  int    `json:"segments"`
		Histories int    `json:"history_files"`
		Timelines []struct {
			Timeline    uint32
			First, Last string
		}
		NewestBackup struct {
			File       string
			Restorable bool
		} `json:"newest_backup"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("walship status --json: %v: %s", err, r)
	}
	if st.SystemID != strconv.FormatUint(sysID, 10) || st.Segments != len(segs) || st.Histories != 1 ||
		len(st.Timelines) != 1 || st.Timelines[0].Timeline != 2 || st.Timelines[0].First != segs[0].String() ||
		st.Timelines[0].Last != segs[len(segs)-1].String() || !st.NewestBackup.Restorable ||
		!strings.HasPrefix(st.NewestBackup.File, "00000002") {
		t.Errorf("walship status --json: %+v; want system %d, %d segments of timeline 2 from %s to %s, a restorable backup on timeline 2",
			st, sysID, len(segs), segs[0], segs[len(segs)-1])
	}
	r = walship(t, runOpts{}, "walship", "ls", "--repo", repoDir, "--timeline", "2")
	if r.code != 0 || strings.Count(r.stdout, "\nsegment ") != len(segs) || !strings.Contains(r.stdout, "\nhistory  00000002.history") {
		t.Errorf("walship ls --timeline 2: %s", r)
	}
	t.Logf("walship ls --timeline 2:\n%s", r.stdout)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments to damage the middle one, have %v", segs)
	}
	middle := segs[len(segs)/2]
	aside := func(name string) (restore func()) {
		t.Helper()
		path := files[name]
		if err := os.Rename(path, path+"-aside"); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Rename(path+"-aside", path); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantNamed := func(what string, r result, name string) {
		t.Helper()
		if r.code != 1 || !strings.Contains(logLine(r.stdout, "PROBLEM "), name) || !strings.Contains(r.stderr, "problem") {
			t.Errorf("verify with %s: %s, want exit 1 and a PROBLEM line naming %s", what, r, name)
		}
	}

	back := aside(middle.String())
	wantNamed("a segment deleted in the middle", verify(), middle.String())
	back()

	back = aside("00000002.history")
	wantNamed("the history file missing", verify(), "00000002.history")
	back()

	path := files[middle.String()]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone(orig)
	for i := len(damaged) / 2; i < len(damaged)/2+16; i++ {
		damaged[i] ^= 0x5A
	}
	os.WriteFile(path, damaged, 0o600)
	if r := verify(); r.code != 0 {
		t.Errorf("verify without --full read the objects: %s", r)
	}
	rel, _ := filepath.Rel(repoDir, path)
	wantNamed("a corrupt object", verify("--full"), filepath.ToSlash(rel))
	os.WriteFile(path, orig, 0o600)

	if r := verify("--full"); r.code != 0 {
		t.Errorf("verify --full after undoing the damage: %s", r)
	}
}

// TestPruneBadInput: every mistake gets one line on stderr and an exit
// status that says what kind it was, and nothing is removed.
func TestPruneBadInput(t *testing.T) {
	pgtest.Require(t)
	a := startArchiving(t)
	a.pg.Pgbench("-i", "-s", "1", "-q")
	for range 3 {
		prSwitch(t, a.pg, a.repo)
	}
	// The same WAL as cp would archive it: bare files, no walship.json.
	plainDir := filepath.Join(a.base, "plain")
	for name := range prFiles(t, a.repo) {
		data, err := decodeObject(t, a.repo, name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		writeSegment(t, plainDir, name, data)
	}
	before := prFiles(t, a.repo)
	some := prSegments(before)[1].String()
	for _, tt := range []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"no policy", []string{"--repo", a.repo}, 2, []string{"no retention policy"}},
		{"no repo", []string{"--keep-backups", "1"}, 2, []string{"no repository given"}},
		{"missing repo", []string{"--repo", a.base + "/nowhere", "--keep-backups", "1"}, 1, []string{"does not exist"}},
		{"bad %r", []string{"--repo", a.repo, "00000001.history"}, 2, []string{"not a WAL segment name"}},
		{"two %r", []string{"--repo", a.repo, some, some}, 2, []string{"at most one argument"}},
		{"%r and --before", []string{"--repo", a.repo, "--before", some, some}, 2, []string{"not both"}},
		{"bad age", []string{"--repo", a.repo, "--keep-age", "a week"}, 2, []string{"--keep-age"}},
		{"zero backups", []string{"--repo", a.repo, "--keep-backups", "0"}, 2, []string{"at least 1"}},
		{"bad identifier", []string{"--repo", a.repo, "--before", some, "--system-identifier", "x"}, 2, []string{"--system-identifier"}},
		{"other data directory", []string{"--repo", a.repo, "--before", some, "-D", a.base}, 1, []string{"refusing to prune", "pg_control"}},
		{"plain archive without --layout plain", []string{"--repo", plainDir, "--before", some}, 1, []string{"refusing to prune", "--layout plain"}},
		{"plain archive of another cluster", []string{"--repo", plainDir, "--layout", "plain", "--before", some, "--system-identifier", "42"}, 1, []string{"refusing to prune", "42"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := walship(t, runOpts{}, "walship-prune", tt.args...)
			wantOneLine(t, tt.name, r, []int{tt.code}, "walship-prune", tt.wants...)
		})
	}
	// As archive_cleanup_command the server runs it in its data directory:
	// a pg_control of another cluster there is refused.
	other := filepath.Join(a.base, "other")
	ctl := make([]byte, 8192)
	binary.NativeEndian.PutUint64(ctl, 42)
	binary.NativeEndian.PutUint32(ctl[8:], 1300)
	writeSegment(t, filepath.Join(other, "global"), "pg_control", ctl)
	r := walship(t, runOpts{dir: other}, "walship-prune", "--repo", a.repo, some)
	wantOneLine(t, "%r in another cluster's data directory", r, []int{1}, "walship-prune", "global/pg_control", "42")
	if after := prFiles(t, a.repo); len(after) != len(before) {
		t.Errorf("%d files removed by runs that failed", len(before)-len(after))
	}
	// The data directory check passes for the cluster's own directory.
	first := prSegments(before)[0].String()
	r = walship(t, runOpts{}, "walship-prune", "--repo", a.repo, "--before", some, "-D", a.pg.Data, "--dry-run")
	if r.code != 0 || !strings.Contains(logLine(r.stdout, "would remove "), first) {
		t.Errorf("prune -D of the cluster's own data directory: %s", r)
	}
	// In its own data directory, %r is quiet on success.
	r = walship(t, runOpts{dir: a.pg.Data}, "walship-prune", "--repo", a.repo, some)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Errorf("%%r in the cluster's own data directory: %s, want exit 0 and no output", r)
	}
	if segs := prSegments(prFiles(t, a.repo)); segs[0].String() != some {
		t.Errorf("oldest segment after %%r %s: %s", some, segs[0])
	}
	// A plain archive is pruned when said so, after its headers agree.
	r = walship(t, runOpts{}, "walship-prune", "--repo", plainDir, "--layout", "plain", "--before", some, "-D", a.pg.Data)
	if r.code != 0 || !strings.Contains(r.stdout, "oldest kept segment "+some) {
		t.Errorf("prune --layout plain: %s", r)
	}
	for _, args := range [][]string{{}, {"nope"}, {"ls", "extra"}, {"verify", "--repo", a.base + "/nowhere"}} {
		r := walship(t, runOpts{}, "walship", args...)
		wantOneLine(t, fmt.Sprintf("walship %q", args), r, []int{1, 2}, "walship")
	}
}
