package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// archivedSegments lists the WAL segments stored in a local walship repo.
func archivedSegments(t *testing.T, repoDir string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	filepath.WalkDir(filepath.Join(repoDir, "wal"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(repoDir, path)
			if n, _, _, ok := repo.ParseKey(filepath.ToSlash(rel)); ok && n.Kind == wal.KindSegment {
				got[n.String()] = true
			}
		}
		return nil
	})
	return got
}

// TestArchiveUnderLoadThenPITR is the core promise: a primary archives
// through walship-archive under pgbench load without a single failure, every
// segment it reports archived is in the repository, and a fresh cluster
// restored from a base backup with walship-restore reaches a named restore
// point with exactly the primary's data at that point.
func TestArchiveUnderLoadThenPITR(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	repoDir := filepath.Join(base, "repo")
	p := pgtest.NewCluster(t, base, "primary", pgtest.InitOptions{})
	p.Conf("archive_mode = on", pgtest.ArchiveCommand(t, repoDir), "archive_timeout = 0")
	p.Start()

	p.Pgbench("-i", "-s", "5", "-q")
	backup := p.BaseBackup(base, "restored")
	p.Pgbench("-c", "4", "-j", "2", "-t", "1500", "-n")
	p.Query("CREATE TABLE marker AS SELECT count(*) AS n, sum(abalance) AS s FROM pgbench_accounts")
	want := p.Query("SELECT n || ':' || s FROM marker")
	p.Query("SELECT pg_create_restore_point('before_damage')")
	// Work after the restore point that the restored cluster must not see.
	p.Query("UPDATE pgbench_accounts SET abalance = abalance + 1000000")
	p.Query("DROP TABLE pgbench_history")
	lastSeg := p.Query("SELECT pg_walfile_name(pg_current_wal_lsn())")
	p.Query("SELECT pg_switch_wal()")
	p.WaitQuery("SELECT last_archived_wal >= '"+lastSeg+"' FROM pg_stat_archiver", "t", 60*time.Second)

	if failed := p.Int("SELECT failed_count FROM pg_stat_archiver"); failed != 0 {
		t.Errorf("pg_stat_archiver.failed_count = %d, want 0\n%s", failed, p.Log())
	}
	archived := p.Int("SELECT archived_count FROM pg_stat_archiver")
	segs := archivedSegments(t, repoDir)
	first := p.Query("SELECT pg_walfile_name('0/1000001'::pg_lsn)") // the first segment initdb writes
	for n, _ := wal.ParseName(first); n.String() <= lastSeg; n = n.Next(16 << 20) {
		if !segs[n.String()] {
			t.Errorf("segment %s was archived by the server but is not in the repository", n)
		}
	}
	if int64(len(segs)) > archived {
		t.Errorf("repository holds %d segments, the server archived only %d files", len(segs), archived)
	}

	restoreToPoint(t, backup, pgtest.RestoreCommand(t, repoDir), want, 120*time.Second)
	t.Logf("archived %d files, %d segments in the repository, restored %s rows:sum", archived, len(segs), want)
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
