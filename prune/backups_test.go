package prune

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

var day0 = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// storedBackups is timeline 1, segments 1..20, with base backups stored by
// walship in segments 3 (primary), 8 (standby: no backup history file) and
// 14 (primary), one day apart.
func storedBackups(t *testing.T) (*fakerepo.Repo, [3]repo.BackupID) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	var ids [3]repo.BackupID
	for i, s := range []uint64{3, 8, 14} {
		from := "primary"
		if i == 1 {
			from = "standby"
		}
		ids[i] = f.StoredBackup(1, s, s+1, day0.AddDate(0, 0, i), from)
	}
	return f, ids
}

// Expired stored backups go with the WAL only they needed; the kept
// backups, the one taken from a standby among them, keep their WAL and
// objects.
func TestKeepBackupsRemovesExpiredStoredBackups(t *testing.T) {
	f, ids := storedBackups(t)
	res := run(t, f, Options{Policy: Policy{KeepBackups: 2}})
	if res.Cutoff != seg(1, 8) {
		t.Fatalf("cutoff %s (%s), want the start of the standby's backup %s", res.Cutoff, res.Reason, seg(1, 8))
	}
	if exists(f.BackupPath(ids[0], repo.BasePart)) || exists(f.BackupPath(ids[0], repo.MetaPart)) {
		t.Errorf("the expired backup %s is still stored", ids[0])
	}
	for _, id := range ids[1:] {
		if !exists(f.BackupPath(id, repo.BasePart)) || !exists(f.BackupPath(id, repo.MetaPart)) {
			t.Errorf("the kept backup %s lost objects", id)
		}
	}
	if f.Has(seg(1, 7)) || !f.Has(seg(1, 8)) {
		t.Errorf("WAL left: %v, want everything from %s", f.Names(), seg(1, 8))
	}
	if res.RemovedBackups != 1 || len(res.Backups) != 1 || res.Backups[0].ID != ids[0] {
		t.Errorf("removed backups %d %v, want %s", res.RemovedBackups, res.Backups, ids[0])
	}
	if s := res.Summary(); !strings.Contains(s, "1 expired base backup(s) ("+string(ids[0])+")") {
		t.Errorf("Summary = %q", s)
	}
	// The standby's backup counts: keeping one backup keeps the newest
	// (primary) one; keeping two kept the standby's.
	res = run(t, f, Options{Policy: Policy{KeepBackups: 1}})
	if res.Cutoff != seg(1, 14) || exists(f.BackupPath(ids[1], repo.MetaPart)) || !exists(f.BackupPath(ids[2], repo.BasePart)) {
		t.Errorf("keep 1: cutoff %s, standby backup stored %v, newest stored %v", res.Cutoff,
			exists(f.BackupPath(ids[1], repo.MetaPart)), exists(f.BackupPath(ids[2], repo.BasePart)))
	}
}

func TestDryRunKeepsStoredBackups(t *testing.T) {
	f, ids := storedBackups(t)
	res := run(t, f, Options{Policy: Policy{KeepBackups: 1}, DryRun: true})
	if len(res.Backups) != 2 || res.RemovedBackups != 0 {
		t.Errorf("dry run plans %d backups, removed %d; want 2 planned, none removed", len(res.Backups), res.RemovedBackups)
	}
	for _, id := range ids {
		if !exists(f.BackupPath(id, repo.MetaPart)) {
			t.Errorf("dry run removed %s", id)
		}
	}
	if s := res.Summary(); !strings.Contains(s, "would remove") || !strings.Contains(s, "2 expired base backup(s)") {
		t.Errorf("Summary = %q", s)
	}
}

// A backup from a standby is the newest: it is never given up, even when
// %r is past its start.
func TestStandbyBackupIsNewest(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	id := f.StoredBackup(1, 6, 7, day0, "standby")
	res := run(t, f, Options{Policy: Policy{Before: ptr(seg(1, 15))}})
	if res.Cutoff != seg(1, 6) || !exists(f.BackupPath(id, repo.BasePart)) || !f.Has(seg(1, 6)) {
		t.Errorf("cutoff %s (%s); backup kept %v", res.Cutoff, res.Reason, exists(f.BackupPath(id, repo.BasePart)))
	}
}

// --keep-age keeps the newest backup taken before the window, so that
// the window's start can be restored, and what only older backups need
// goes with them.
func TestKeepAgeKeepsTheBackupBeforeTheWindow(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	now := time.Now().Truncate(time.Second)
	// Segment s was archived 21-s hours ago; backups were taken 16, 12
	// and 2 hours ago, in segments 3, 8 and 19.
	for s := uint64(1); s <= 20; s++ {
		f.Age(seg(1, s), now.Add(-time.Duration(21-s)*time.Hour))
	}
	var ids [3]repo.BackupID
	for i, s := range []uint64{3, 8, 19} {
		at := now.Add(-[]time.Duration{16, 12, 2}[i] * time.Hour)
		ids[i] = f.StoredBackup(1, s, s, at, "primary")
		b := seg(1, s)
		b.Kind, b.Offset = wal.KindBackup, 0x28
		f.Age(b, at.Add(time.Minute))
	}
	// The window of 6 hours holds segments 15..20 and the newest backup;
	// the backup of 12 hours ago, the newest before the window, is kept
	// with the WAL from its start, or the window's first 4 hours could not
	// be restored. Only the oldest backup goes.
	res := run(t, f, Options{Policy: Policy{KeepAge: ptr(6 * time.Hour)}, Now: func() time.Time { return now }})
	if res.Cutoff != seg(1, 8) || !strings.Contains(res.Reason, string(ids[1])) {
		t.Errorf("cutoff %s (%s), want the start of %s", res.Cutoff, res.Reason, ids[1])
	}
	if exists(f.BackupPath(ids[0], repo.MetaPart)) || !exists(f.BackupPath(ids[1], repo.BasePart)) || !exists(f.BackupPath(ids[2], repo.BasePart)) {
		t.Errorf("stored after keep-age: %v %v %v, want all but %s", exists(f.BackupPath(ids[0], repo.MetaPart)),
			exists(f.BackupPath(ids[1], repo.BasePart)), exists(f.BackupPath(ids[2], repo.BasePart)), ids[0])
	}
	if f.Has(seg(1, 7)) || !f.Has(seg(1, 8)) {
		t.Errorf("WAL left: %v", f.Names())
	}
}

// The objects of a backup that has no record are left alone while the
// backup may still be running, and removed once they are old.
func TestLeftoversOfInterruptedBackups(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	now := time.Now()
	fresh := f.IncompleteBackup(repo.NewBackupID(now.Add(-time.Hour)), now.Add(-time.Hour))
	stale := f.IncompleteBackup(repo.NewBackupID(now.Add(-48*time.Hour)), now.Add(-25*time.Hour))
	res := run(t, f, Options{Policy: Policy{KeepBackups: 1}, DryRun: true})
	if len(res.Leftovers) != 1 || !exists(stale) {
		t.Errorf("dry run: %d leftovers planned, stale still there %v; want 1 and untouched", len(res.Leftovers), exists(stale))
	}
	res = run(t, f, Options{Policy: Policy{KeepBackups: 1}})
	if exists(stale) || !exists(fresh) || res.RemovedLeftovers != 1 {
		t.Errorf("stale removed %v, fresh kept %v, removed %d; want the stale one gone, the fresh one kept",
			!exists(stale), exists(fresh), res.RemovedLeftovers)
	}
	if s := res.Summary(); !strings.Contains(s, "1 interrupted backup(s)") {
		t.Errorf("Summary = %q", s)
	}
}

// A backup history file whose backup's files are nowhere (a walship
// backup create that failed after the server ended the backup, or a
// backup taken by hand and lost) never takes the place of a stored,
// restorable backup: with --keep-backups 1 and --keep-age, the newest
// stored backup stays, with its WAL and objects.
func TestPhantomBackupNeverDisplacesAStoredOne(t *testing.T) {
	for name, policy := range map[string]func(now time.Time) Options{
		"keep-backups 1": func(time.Time) Options { return Options{Policy: Policy{KeepBackups: 1}} },
		"keep-age": func(now time.Time) Options {
			return Options{Policy: Policy{KeepAge: ptr(30 * time.Minute)}, Now: func() time.Time { return now }}
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := fakerepo.New(t)
			f.Segments(1, 1, 20)
			now := day0.Add(48 * time.Hour)
			for s := uint64(1); s <= 20; s++ {
				f.Age(seg(1, s), day0.Add(time.Duration(s)*time.Hour)) // archived well before the window
			}
			older := f.StoredBackup(1, 3, 4, day0, "standby")
			stored := f.StoredBackup(1, 8, 9, day0.Add(24*time.Hour), "standby")
			phantom := f.Backup(1, 14, 15, now.Add(-time.Hour)) // its files never reached the repository
			res := run(t, f, policy(now))
			if !exists(f.BackupPath(stored, repo.BasePart)) || !exists(f.BackupPath(stored, repo.MetaPart)) || !f.Has(seg(1, 8)) {
				t.Errorf("the newest stored backup %s went (cutoff %s: %s), keeping %s whose files are nowhere", stored, res.Cutoff, res.Reason, phantom)
			}
			if !f.Has(phantom) || !f.Has(seg(1, 14)) {
				t.Errorf("the newer backup history file or its WAL went")
			}
			if exists(f.BackupPath(older, repo.MetaPart)) {
				t.Errorf("the older stored backup %s was kept (cutoff %s: %s)", older, res.Cutoff, res.Reason)
			}
		})
	}
}
