package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// TestPITRWithPrefetch restores a base backup through walship-restore
// --prefetch: the restored cluster has exactly the primary's data, and the
// server was served from the prefetch spool.
func TestPITRWithPrefetch(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	spool := pgtest.Mkdir(t, filepath.Join(base, "spool"))
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{SegSizeMB: 1})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir))
	p.Start()
	p.Pgbench("-i", "-s", "2", "-q")
	backup := p.BaseBackup(base, "restored")
	p.Pgbench("-c", "2", "-t", "800", "-n")
	want := p.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts")
	last := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+last+"' FROM pg_stat_archiver", "t", 120*time.Second)
	p.Stop("fast")

	backup.Conf(pgtest.RestoreCommand(t, repoDir, "-v", "--prefetch", "4", "--spool", spool),
		"recovery_target_action = 'promote'", "archive_mode = off")
	backup.Touch("recovery.signal")
	backup.Start()
	backup.WaitQuery("SELECT pg_is_in_recovery()", "f", 120*time.Second)
	if got := backup.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"); got != want {
		t.Fatalf("restored accounts = %s, want %s", got, want)
	}
	log := backup.Log()
	fromSpool := strings.Count(log, "restored from the prefetch spool")
	direct := strings.Count(log, "walship-restore: restored file=")
	if fromSpool == 0 {
		t.Fatalf("no segment was served from the prefetch spool (%d fetched directly)", direct)
	}
	t.Logf("%d segments from the spool, %d fetched directly", fromSpool, direct)
}

// TestPgRewindWithPrefetchConfigured runs plain pg_rewind -c on an old
// primary whose own restore_command is walship-restore --prefetch: pg_rewind
// fetches the WAL it lacks through it into pg_wal/<name>, where prefetch
// must stay off (nothing is spooled, no worker runs), and the rewound
// server follows the new primary without the rows it alone had.
func TestPgRewindWithPrefetchConfigured(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	spool := pgtest.Mkdir(t, filepath.Join(base, "spool"))
	a, b := newPrimaryStandby(t, base, repoDir)
	a.Conf(pgtest.RestoreCommand(t, repoDir, "-v", "--prefetch", "4", "--spool", spool))
	lost := diverge(t, 1, a, b, "fast")
	b.Query("CHECKPOINT")

	src := b.ConnString()
	if out, err := pgtest.RunErr(t, pgtest.Tool(t, "pg_rewind"), "--dry-run", "-D", a.Data, "--source-server", src); err == nil {
		t.Fatalf("pg_rewind without restore_command succeeded, so this test would not use the archive:\n%s", out)
	}
	out, err := pgtest.RunErr(t, pgtest.Tool(t, "pg_rewind"), "-c", "-D", a.Data, "--source-server", src)
	if err != nil {
		t.Fatalf("pg_rewind -c with walship-restore --prefetch: %v\n%s", err, out)
	}
	if !strings.Contains(out, "walship-restore: restored file=") {
		t.Errorf("pg_rewind -c did not restore through walship-restore:\n%s", out)
	}
	if strings.Contains(out, "prefetch spool") {
		t.Errorf("walship-restore used the prefetch spool for pg_rewind:\n%s", out)
	}
	// A worker would have written into the spool by now, or soon; and
	// pg_rewind's calls want no side effects at all, not even the cached
	// identity of the server's own recovery calls.
	time.Sleep(time.Second)
	filepath.WalkDir(spool, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("prefetch ran for pg_rewind: %s in the spool", path)
		}
		return nil
	})

	a.Touch("standby.signal")
	a.Conf("primary_conninfo = '" + src + "'")
	a.Start()
	a.WaitQuery("SELECT status FROM pg_stat_wal_receiver", "streaming", 60*time.Second)
	if n := a.Query("SELECT count(*) FROM t WHERE who = '" + lost + "'"); n != "0" {
		t.Errorf("after pg_rewind the old primary still has %s rows it alone wrote", n)
	}
	waitReplayed(t, b, a)
	if got, want := a.Query("SELECT count(*) FROM t"), b.Query("SELECT count(*) FROM t"); got != want {
		t.Errorf("rewound server has %s rows, the new primary %s", got, want)
	}
}
