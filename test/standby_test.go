package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// restoreWaiters lists the walship-restore processes working in dataDir
// (the server runs restore_command in its data directory).
func restoreWaiters(dataDir string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil || strings.TrimSpace(string(comm)) != "walship-restore" {
			continue
		}
		if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil && cwd == dataDir {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitForWaiter(t *testing.T, c *pgtest.Cluster) {
	t.Helper()
	pgtest.Eventually(t, 30*time.Second, "a walship-restore --standby waiting in "+c.Name, func() bool {
		return len(restoreWaiters(c.Data)) > 0
	})
}

func waitNoWaiter(t *testing.T, c *pgtest.Cluster, after string) {
	t.Helper()
	pgtest.Eventually(t, 5*time.Second, "no walship-restore left in "+c.Name+" after "+after, func() bool {
		return len(restoreWaiters(c.Data)) == 0
	})
}

// switchAndArchive ends the current segment on p and waits until it is
// archived.
func switchAndArchive(t *testing.T, p *pgtest.Cluster) {
	t.Helper()
	seg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+seg+"' FROM pg_stat_archiver", "t", 60*time.Second)
}

func writeTrigger(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWarmStandby is the warm standby of the 8.2 seed on PostgreSQL 12+,
// fed by the archive alone: walship-archive on the primary, walship-restore
// --standby on four copies of one base backup.
//
//   - follower (standby.signal, hot): follows the primary without any
//     streaming, then is promoted with pg_ctl promote while its
//     restore_command waits;
//   - smart and fast (recovery.signal: archive recovery, where a "not
//     found" ends recovery): are stopped, the primary writes on and dies,
//     then they start with a trigger file. The smart one applies every
//     archived segment before promoting, the fast one promotes at once;
//   - orphan (standby.signal): its postmaster is killed while the
//     restore_command waits, which must then exit.
func TestWarmStandby(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir), "archive_timeout = 0")
	p.Start()
	p.Query("CREATE TABLE t (id int, batch text)")
	p.Query("INSERT INTO t SELECT g, 'base' FROM generate_series(1, 1000) g")

	standby := func(name, signal string, flags ...string) *pgtest.Cluster {
		s := p.BaseBackup(base, name)
		s.Conf(pgtest.RestoreCommand(t, repoDir, append([]string{"--standby"}, flags...)...),
			"recovery_prefetch = off", "hot_standby = on", "archive_mode = off",
			"recovery_target_timeline = 'latest'")
		s.Touch(signal)
		return s
	}
	smartTrigger, fastTrigger := filepath.Join(base, "smart.trigger"), filepath.Join(base, "fast.trigger")
	follower := standby("follower", "standby.signal")
	smart := standby("smart", "recovery.signal", "--trigger", smartTrigger)
	fast := standby("fast", "recovery.signal", "--trigger", fastTrigger)
	orphan := standby("orphan", "standby.signal")
	all := []*pgtest.Cluster{follower, smart, fast, orphan}
	for _, s := range all {
		s.Start()
	}

	// Rows written on the primary reach every standby once their segment
	// is switched out and archived.
	p.Query("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 500) g")
	switchAndArchive(t, p)
	countA := p.Query("SELECT count(*) FROM t")
	for _, s := range all {
		s.WaitQuery("SELECT count(*) FROM t", countA, 60*time.Second)
	}
	if n := follower.Int("SELECT count(*) FROM pg_stat_wal_receiver"); n != 0 {
		t.Errorf("follower has %d WAL receivers: it streams instead of reading the archive", n)
	}
	for _, s := range all {
		waitForWaiter(t, s)
	}
	if log := follower.Log(); !strings.Contains(log, "waiting for the segment to be archived") || strings.Contains(log, "recovery_prefetch is") {
		t.Errorf("follower's log does not show a --standby wait with recovery_prefetch = off:\n%s", log)
	}

	// SIGTERM from a server shutdown ends the waits.
	smart.Stop("fast")
	fast.Stop("fast")
	waitNoWaiter(t, smart, "a fast shutdown")
	waitNoWaiter(t, fast, "a fast shutdown")

	// The primary writes two more segments, then dies.
	p.Query("INSERT INTO t SELECT g, 'b1' FROM generate_series(1, 700) g")
	switchAndArchive(t, p)
	p.Query("INSERT INTO t SELECT g, 'b2' FROM generate_series(1, 300) g")
	switchAndArchive(t, p)
	countB := p.Query("SELECT count(*) FROM t")
	follower.WaitQuery("SELECT count(*) FROM t", countB, 60*time.Second)
	p.Stop("fast")

	t.Run("smart trigger applies every archived segment", func(t *testing.T) {
		writeTrigger(t, smartTrigger, "")
		smart.Start()
		smart.WaitQuery("SELECT pg_is_in_recovery()", "f", 60*time.Second)
		if got := smart.Query("SELECT count(*) FROM t"); got != countB {
			t.Errorf("promoted with %s rows, want %s (all the primary archived)", got, countB)
		}
	})
	t.Run("fast trigger promotes at once", func(t *testing.T) {
		writeTrigger(t, fastTrigger, "fast\n")
		fast.Start()
		fast.WaitQuery("SELECT pg_is_in_recovery()", "f", 60*time.Second)
		if got := fast.Query("SELECT count(*) FROM t"); got != countA {
			t.Errorf("promoted with %s rows, want %s (what it had applied before the trigger; the primary archived %s)", got, countA, countB)
		}
	})
	t.Run("pg_ctl promote ends a wait", func(t *testing.T) {
		waitForWaiter(t, follower)
		follower.Promote()
		if got := follower.Query("SELECT pg_is_in_recovery()"); got != "f" {
			t.Fatalf("still in recovery after pg_ctl promote")
		}
		if got := follower.Query("SELECT count(*) FROM t"); got != countB {
			t.Errorf("promoted with %s rows, want %s", got, countB)
		}
		waitNoWaiter(t, follower, "promotion")
	})
	t.Run("postmaster death ends a wait", func(t *testing.T) {
		orphan.WaitQuery("SELECT count(*) FROM t", countB, 60*time.Second)
		waitForWaiter(t, orphan)
		data, err := os.ReadFile(filepath.Join(orphan.Data, "postmaster.pid"))
		if err != nil {
			t.Fatal(err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		pid, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("postmaster.pid: %v", err)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitNoWaiter(t, orphan, "the postmaster was killed")
	})
}

// TestWarmStandbyOnCpArchive is the seed's trap: the primary archives with
// a plain, non-atomic `cp`, so the standby can see a segment while it is
// still being copied. walship-restore --standby --layout plain must wait
// for the whole file: under pgbench load the standby never hits the
// "archive file has wrong size" PANIC and catches up with the primary.
func TestWarmStandbyOnCpArchive(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	archiveDir := pgtest.Mkdir(t, filepath.Join(base, "wal_archive"))
	p := pgtest.NewCluster(t, base, "master", pgtest.InitOptions{})
	p.Conf("archive_mode = on", fmt.Sprintf("archive_command = 'cp %%p %s/%%f'", archiveDir), "archive_timeout = 0")
	p.Start()
	p.Pgbench("-i", "-s", "2", "-q")

	s := p.BaseBackup(base, "slave")
	s.Conf(pgtest.RestoreCommand(t, archiveDir, "--standby", "--layout", "plain"),
		"recovery_prefetch = off", "hot_standby = on", "archive_mode = off")
	s.Touch("standby.signal")
	s.Start()

	p.Pgbench("-c", "2", "-j", "2", "-T", "12", "-n")
	switchAndArchive(t, p)
	want := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts")
	wantHist := p.Query("SELECT count(*) FROM pgbench_history")
	segs, _ := filepath.Glob(filepath.Join(archiveDir, "0000000100000000000000??"))

	s.WaitQuery("SELECT count(*) FROM pgbench_history", wantHist, 120*time.Second)
	if got := s.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"); got != want {
		t.Errorf("standby accounts = %s, want the primary's %s", got, want)
	}
	log := s.Log()
	for _, bad := range []string{"wrong size", "PANIC"} {
		if strings.Contains(log, bad) {
			t.Errorf("standby log contains %q:\n%s", bad, log)
		}
	}
	t.Logf("%d segments copied by cp; the standby met %d of them half-copied", len(segs),
		strings.Count(log, "not complete yet"))
}

// TestWarmStandbyFollowsAFailover: a primary archives, a streaming standby
// of it and an archive-only warm standby (walship-restore --standby) read
// the same repository. The primary dies and the streaming standby is
// promoted: it archives timeline 2. The warm standby, waiting for timeline
// 1's next segment, which will never come, stops waiting (its log says
// why), follows timeline 2 and applies the new primary's rows.
func TestWarmStandbyFollowsAFailover(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	a, b := newPrimaryStandby(t, base, repoDir)
	w := a.BaseBackup(base, "warm")
	w.Conf(pgtest.RestoreCommand(t, repoDir, "--standby", "--poll", "1s"),
		"recovery_prefetch = off", "hot_standby = on", "archive_mode = off", "recovery_target_timeline = 'latest'")
	w.Touch("standby.signal")
	w.Start()
	a.Query("INSERT INTO t (who) SELECT 'before failover' FROM generate_series(1, 100)")
	switchAndArchive(t, a)
	want := a.Query("SELECT count(*) FROM t")
	w.WaitQuery("SELECT count(*) FROM t", want, 60*time.Second)
	waitForWaiter(t, w)

	a.Stop("immediate")
	b.Promote()
	b.Query("INSERT INTO t (who) SELECT 'after failover' FROM generate_series(1, 300)")
	b.Query("SELECT pg_switch_wal()")
	want = b.Query("SELECT count(*) FROM t")
	w.WaitQuery("SELECT count(*) FROM t", want, 90*time.Second)
	if got := w.Query("SELECT timeline_id FROM pg_control_checkpoint()"); got != "2" && !strings.Contains(w.Log(), "new target timeline is 2") {
		t.Errorf("the warm standby is on timeline %s; its log:\n%s", got, w.Log())
	}
	if !strings.Contains(w.Log(), "timeline 2 branched off timeline 1") {
		t.Errorf("the warm standby's log does not say why it stopped waiting for timeline 1:\n%s", w.Log())
	}
}
