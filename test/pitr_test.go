package test

import (
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// TestArchiveUnderLoadThenPITR is the core promise, on every backend: a
// primary archives through walship-archive under pgbench load without a
// single failure, every segment it reports archived is in the archive and
// nothing but WAL and the identity file (of this cluster, 16MB segments)
// is, and a fresh cluster restored from a base backup with walship-restore
// reaches a named restore point with exactly the primary's data at that
// point. No log line shows a secret.
func TestArchiveUnderLoadThenPITR(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, store archiveBackend) {
		p := archivingPrimary(t, store, base, "primary")

		p.Pgbench("-i", "-s", "5", "-q")
		backup := p.BaseBackup(base, "restored")
		backup.Env = store.env()
		p.Pgbench("-c", "4", "-j", "2", "-t", "1500", "-n")
		p.Query("CREATE TABLE marker AS SELECT count(*) AS n, sum(abalance) AS s FROM pgbench_accounts")
		want := p.Query("SELECT n || ':' || s FROM marker")
		p.Query("SELECT pg_create_restore_point('before_damage')")
		// Work after the restore point that the restored cluster must not see.
		p.Query("UPDATE pgbench_accounts SET abalance = abalance + 1000000")
		p.Query("DROP TABLE pgbench_history")
		lastSeg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
		p.Query("SELECT pg_switch_wal()")
		p.WaitQuery("SELECT last_archived_wal >= '"+lastSeg+"' FROM pg_stat_archiver", "t", 120*time.Second)

		if failed := pgStat(p, "failed_count"); failed != 0 {
			t.Errorf("pg_stat_archiver.failed_count = %d, want 0\n%s", failed, p.Log())
		}
		archived := pgStat(p, "archived_count")
		segs := segmentSet(t, store)
		first := p.Query("SELECT pg_walfile_name('0/1000001'::pg_lsn)") // the first segment initdb writes
		for n := mustName(t, first); n.String() <= lastSeg; n = n.Next(segSize) {
			if !segs[n.String()] {
				t.Errorf("segment %s was archived by the server but is not in %s", n, store)
			}
		}
		if int64(len(segs)) > archived {
			t.Errorf("%s holds %d segments, the server archived only %d files", store, len(segs), archived)
		}
		if l := leftovers(t, store); len(l) > 0 {
			t.Errorf("%s holds files that are no WAL: %v", store, l)
		}
		if id, _ := readIdentity(t, store); id.SystemID != sysID(t, p) || id.SegSize != segSize {
			t.Errorf("identity file %+v, want system %d with 16MB segments", id, sysID(t, p))
		}

		restoreToPoint(t, backup, commandLine(t, store, "walship-restore"), want, 180*time.Second)
		noSecret(t, "the primary's log", p.Log(), store.secrets()...)
		noSecret(t, "the restored server's log", backup.Log(), store.secrets()...)
		t.Logf("archived %d files, %d segments in %s, restored %s rows:sum", archived, len(segs), store, want)
	})
}

// restoreToPoint recovers backup with restoreLine to the restore point
// 'before_damage' made by the PITR tests, and checks it holds want
// (accounts "count:sum", equal to the marker table), still has
// pgbench_history (dropped after the point), and stopped at the point.
func restoreToPoint(t *testing.T, backup *pgtest.Cluster, restoreLine, want string, timeout time.Duration) {
	t.Helper()
	backup.Conf(restoreLine,
		"recovery_target_name = 'before_damage'",
		"recovery_target_action = 'promote'",
		"archive_mode = off")
	backup.Touch("recovery.signal")
	backup.Start()
	backup.WaitQuery("SELECT pg_is_in_recovery()", "f", timeout)
	if got := backup.Query("SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts"); got != want {
		t.Errorf("restored accounts = %s, want %s (the primary's at the restore point)", got, want)
	}
	if got := backup.Query("SELECT n || ':' || s FROM marker"); got != want {
		t.Errorf("restored marker = %s, want %s", got, want)
	}
	if got := backup.Query("SELECT to_regclass('pgbench_history') IS NOT NULL"); got != "t" {
		t.Errorf("pgbench_history, dropped after the restore point, is missing in the restored cluster")
	}
	if !strings.Contains(backup.Log(), `recovery stopping at restore point "before_damage"`) {
		t.Errorf("restored server did not stop at the restore point; log:\n%s", backup.Log())
	}
}
