package catalog_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

var day = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

func scan(t *testing.T, f *fakerepo.Repo) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Scan(context.Background(), f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statuses(c *catalog.Catalog) map[string]catalog.BackupStatus {
	out := map[string]catalog.BackupStatus{}
	for _, s := range c.BackupStatuses() {
		out[s.Name()] = s
	}
	return out
}

// chain is a full backup and two incrementals, each relative to the one
// before, with the WAL from the first on.
func chain(t *testing.T) (f *fakerepo.Repo, full, inc1, inc2 repo.BackupID) {
	f = fakerepo.New(t)
	f.Segments(1, 1, 20)
	full = f.StoredBackup(1, 4, 5, day, "standby")
	inc1 = f.StoredIncremental(1, 8, 9, day.Add(time.Hour), full)
	inc2 = f.StoredIncremental(1, 12, 13, day.Add(2*time.Hour), inc1)
	return f, full, inc1, inc2
}

func TestChainOfIncrementals(t *testing.T) {
	f, full, inc1, inc2 := chain(t)
	c := scan(t, f)
	st := statuses(c)
	for id, want := range map[repo.BackupID]struct{ typ, parent string }{
		full: {"full", ""}, inc1: {"incremental", string(full)}, inc2: {"incremental", string(inc1)},
	} {
		s := st[string(id)]
		if !s.Restorable || s.Type != want.typ || s.Parent != want.parent {
			t.Errorf("%s: restorable %v (%s), type %q, parent %q; want restorable, %q, %q", id, s.Restorable, s.Reason, s.Type, s.Parent, want.typ, want.parent)
		}
	}
	for _, b := range c.Backups() {
		if b.Stored == nil || b.Stored.ID != inc2 {
			continue
		}
		ch, err := c.Chain(b)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range ch {
			ids = append(ids, string(m.Stored.ID))
		}
		if got, want := strings.Join(ids, " "), strings.Join([]string{string(full), string(inc1), string(inc2)}, " "); got != want {
			t.Errorf("chain of %s: %s, want %s", inc2, got, want)
		}
	}
}

// A member removed by hand (its directory gone) or damaged (an object
// missing) makes every backup above it unrestorable, and says which.
func TestChainWithAMemberMissing(t *testing.T) {
	f, full, inc1, inc2 := chain(t)
	if err := os.Remove(f.BackupPath(full, repo.BasePart)); err != nil {
		t.Fatal(err)
	}
	st := statuses(scan(t, f))
	for _, id := range []repo.BackupID{inc1, inc2} {
		if s := st[string(id)]; s.Restorable || !strings.Contains(s.Reason, string(full)) {
			t.Errorf("%s with its full backup's base.tar gone: restorable %v, %q; want not, naming %s", id, s.Restorable, s.Reason, full)
		}
	}
	for _, p := range []repo.BackupPart{repo.MetaPart, repo.ManifestPart} {
		os.Remove(f.BackupPath(full, p))
	}
	if s := statuses(scan(t, f))[string(inc2)]; s.Restorable || !strings.Contains(s.Reason, "not in the repository") {
		t.Errorf("with its full backup gone: %v, %q", s.Restorable, s.Reason)
	}
}

// Retention keeps whole chains: keeping the newest backup (an incremental)
// keeps every backup it builds on and their WAL; an older chain goes.
func TestRetentionKeepsWholeChains(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 30)
	old := f.StoredBackup(1, 2, 3, day.Add(-24*time.Hour), "standby")
	full := f.StoredBackup(1, 10, 11, day, "standby")
	inc1 := f.StoredIncremental(1, 14, 15, day.Add(time.Hour), full)
	inc2 := f.StoredIncremental(1, 18, 19, day.Add(2*time.Hour), inc1)
	c := scan(t, f)
	kept, err := c.Retain(catalog.Policy{KeepBackups: 1}, day.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if kept.Cutoff != fakerepo.Seg(1, 10) {
		t.Errorf("cutoff %s (%s), want %s: the chain of %s starts at its full backup", kept.Cutoff, kept.Reason, fakerepo.Seg(1, 10), inc2)
	}
	if len(kept.Expired) != 1 || kept.Expired[0].ID != old {
		var ids []repo.BackupID
		for _, s := range kept.Expired {
			ids = append(ids, s.ID)
		}
		t.Errorf("expired %v, want only %s", ids, old)
	}
}

// Each backup says where its files are: in the repository, registered
// elsewhere, or not known (a backup history file alone).
func TestBackupFilesWhere(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 10)
	stored := f.StoredBackup(1, 2, 3, day, "standby")
	hist := f.Backup(1, 6, 7, day.Add(time.Hour))
	st := statuses(scan(t, f))
	if s := st[string(stored)]; s.Files != "repository" || !strings.Contains(s.Where(), "in the repository") {
		t.Errorf("stored backup: files %q, %q", s.Files, s.Where())
	}
	if s := st[hist.String()]; s.Files != "unknown" || !strings.Contains(s.Where(), "not known") {
		t.Errorf("backup history file alone: files %q, %q", s.Files, s.Where())
	}
}

// Without an identity, an encrypted backup history file is not "damaged":
// the status says it is encrypted and which flag reads it.
func TestEncryptedBackupFileWithoutIdentity(t *testing.T) {
	ctx := context.Background()
	key, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := fakerepo.New(t)
	w := repo.New(f.B, repo.Options{Create: true, Keys: repo.Keys{Recipients: []age.Recipient{key.Recipient()}}})
	seg := waltest.FakeSegment(fakerepo.Seg(1, 2), fakerepo.SysID, fakerepo.SegSize, nil)
	h, _ := wal.ParseLongHeader(seg)
	if err := w.Claim(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, fakerepo.Seg(1, 2), seg); err != nil {
		t.Fatal(err)
	}
	bn := fakerepo.Name(t, "000000010000000000000002.00000028.backup")
	label := "START WAL LOCATION: 0/200028 (file 000000010000000000000002)\nSTOP WAL LOCATION: 0/200100 (file 000000010000000000000002)\n"
	if _, err := w.Put(ctx, bn, []byte(label)); err != nil {
		t.Fatal(err)
	}
	s := statuses(scan(t, f))[bn.String()]
	if s.Restorable || strings.Contains(s.Reason, "damaged") || !strings.Contains(s.Reason, "encrypted") || !strings.Contains(s.Reason, "--identity") {
		t.Errorf("an encrypted backup history file read without an identity: %q", s.Reason)
	}
}
