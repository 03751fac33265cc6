package test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/pgtest"
)

// TestRestoreFlippedUncompressedAbortsRecovery flips bytes in the middle of
// an uncompressed object (--compress none) that a point-in-time recovery
// needs: its checksum catches it, and recovery stops with FATAL instead of
// ending early at the damaged record.
func TestRestoreFlippedUncompressedAbortsRecovery(t *testing.T) {
	d := damageArchive(t, "none", 1, flipMiddle)
	wantRecoveryAborted(t, d, d.backups[0])
}

// wantStoppedInRecovery checks that the server b went down without ever
// leaving recovery, and that walship-restore's line in its log says why.
func wantStoppedInRecovery(t *testing.T, b *pgtest.Cluster, wants ...string) {
	t.Helper()
	pgtest.Eventually(t, 120*time.Second, "the server to stop after the restore_command failure", func() bool {
		if out, err := b.QueryErr("SELECT pg_is_in_recovery()"); err == nil && out == "f" {
			t.Fatalf("recovery finished; log:\n%s", b.Log())
		}
		return strings.Contains(b.Log(), "FATAL:  could not restore file") && !b.Running()
	})
	log := b.Log()
	line := logLine(log, "walship-restore: ")
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("walship-restore's line in the server log = %q, want %q in it", line, w)
		}
	}
	for _, bad := range []string{"archive recovery complete", "selected new timeline ID", "database system is ready to accept connections"} {
		if strings.Contains(log, bad) {
			t.Errorf("server log shows %q: recovery ended instead of stopping", bad)
		}
	}
}

// TestPITRFromEmptyRepositoryStops points a point-in-time recovery at an
// archive location that exists but holds nothing (an archive mount point
// with nothing mounted; an S3 prefix with a typo): every answer would be
// "not found" and the recovery would end at the base backup's own WAL,
// silently losing the rest. It must stop with FATAL; a standby must instead
// keep asking, with a warning.
func TestPITRFromEmptyRepositoryStops(t *testing.T) {
	forEachBackend(t, func(t *testing.T, base string, empty archiveBackend) {
		if lb, ok := empty.(localBackend); ok {
			pgtest.Mkdir(t, lb.dir) // the mount point is there
		}
		a := startArchiving(t) // the real archive, elsewhere
		b := a.pg.BaseBackup(a.base, "pitr")
		s := a.pg.BaseBackup(a.base, "standby")
		a.switchSegment(t)

		b.Env, s.Env = empty.env(), empty.env()
		b.Conf(commandLine(t, empty, "walship-restore"), "archive_mode = off")
		b.Touch("recovery.signal")
		b.StartNoWait()
		wantStoppedInRecovery(t, b, "no walship repository", empty.String())

		s.Conf(commandLine(t, empty, "walship-restore"), "archive_mode = off", "wal_retrieve_retry_interval = '100ms'")
		s.Touch("standby.signal")
		s.StartNoWait()
		pgtest.Eventually(t, 60*time.Second, "the standby to ask again", func() bool {
			return strings.Count(s.Log(), "walship-restore: ") >= 3
		})
		if line := logLine(s.Log(), "walship-restore: "); !strings.Contains(line, "no walship repository") || !strings.Contains(line, "retries") {
			t.Errorf("walship-restore's line in the standby's log = %q, want the missing repository and that the server retries", line)
		}
		if !s.Running() || strings.Contains(s.Log(), "FATAL") {
			t.Errorf("the standby stopped; log:\n%s", s.Log())
		}
	})
}

// TestRestoreDestinationErrors: a %p that cannot be written is not "not in
// the archive": 255 during archive recovery, 1 in a standby, with a line
// naming %p either way.
func TestRestoreDestinationErrors(t *testing.T) {
	a := startArchiving(t)
	name, _ := a.switchSegment(t)
	for signal, code := range map[string]int{"recovery.signal": 255, "standby.signal": 1} {
		data := pgtest.Mkdir(t, filepath.Join(a.base, "data-"+signal))
		if err := os.WriteFile(filepath.Join(data, signal), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		pgtest.Chown(t, filepath.Join(data, signal))
		dest := filepath.Join(data, "pg_wal", "RECOVERYXLOG") // pg_wal does not exist
		r := walship(t, runOpts{dir: data}, "walship-restore", "--repo", a.repo, name, dest)
		wantOneLine(t, "restore into a missing directory under "+signal, r, []int{code}, "walship-restore", dest, "cannot write")
	}
}

// TestArchiveSignalWhileBlocked: SIGTERM ends walship-archive promptly,
// even while it is blocked opening %p (here a FIFO nobody writes), and it
// dies of the signal, as PostgreSQL expects of a command it stops.
func TestArchiveSignalWhileBlocked(t *testing.T) {
	pgtest.Require(t)
	base := pgtest.Dir(t)
	fifo := filepath.Join(base, "000000010000000000000001")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pgtest.Chown(t, fifo)
	cmd := walshipCmd(t, runOpts{}, "walship-archive", "--repo", filepath.Join(base, "repo"), fifo, "000000010000000000000001")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // it is in open(2) now
	sent := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("walship-archive still runs 10s after SIGTERM")
	}
	if took := time.Since(sent); took > 3*time.Second {
		t.Errorf("walship-archive took %s to end after SIGTERM", took.Round(time.Millisecond))
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("walship-archive ended with %v, want death by SIGTERM", cmd.ProcessState)
	}
	if _, err := os.Stat(filepath.Join(base, "repo")); !os.IsNotExist(err) {
		t.Errorf("a repository was created: %v", err)
	}
}
