package test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/pgtest"
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
	direct := strings.Count(log, "msg=restored ")
	if fromSpool == 0 {
		t.Fatalf("no segment was served from the prefetch spool (%d fetched directly)", direct)
	}
	t.Logf("%d segments from the spool, %d fetched directly", fromSpool, direct)
}
