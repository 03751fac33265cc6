package backup

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

var day = time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)

// threeStored: segments 1..20 archived an hour apart from day, backups
// stored in segments 3, 8 and 14 (each stops a minute after it starts).
func threeStored(t *testing.T) (*catalog.Catalog, [3]repo.BackupID) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	for s := uint64(1); s <= 20; s++ {
		f.Age(fakerepo.Seg(1, s), day.Add(time.Duration(s)*time.Hour))
	}
	var ids [3]repo.BackupID
	for i, s := range []uint64{3, 8, 14} {
		ids[i] = f.StoredBackup(1, s, s, day.Add(time.Duration(s)*time.Hour), "primary")
	}
	c, err := catalog.Scan(context.Background(), f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	return c, ids
}

func TestChoose(t *testing.T) {
	c, ids := threeStored(t)
	at := func(h float64) Target {
		return Target{Kind: TargetTime, Time: day.Add(time.Duration(h * float64(time.Hour)))}
	}
	for _, tc := range []struct {
		name   string
		target Target
		id     repo.BackupID
		want   repo.BackupID
		err    error
	}{
		{"latest", Target{}, "", ids[2], nil},
		{"a time after the newest", at(16), "", ids[2], nil},
		{"a time between the first two", at(5), "", ids[0], nil},
		{"a time before the second is consistent", at(8), "", ids[0], nil},
		{"a time before the oldest is consistent", at(3), "", "", ErrNoBackup},
		{"a time after the archive", at(21), "", "", ErrAfterArchive},
		{"an LSN in the second", Target{Kind: TargetLSN, LSN: wal.LSN(9 * uint64(fakerepo.SegSize))}, "", ids[1], nil},
		{"an LSN before the oldest", Target{Kind: TargetLSN, LSN: 0x100}, "", "", ErrNoBackup},
		{"an LSN after the archive", Target{Kind: TargetLSN, LSN: wal.LSN(22 * uint64(fakerepo.SegSize))}, "", "", ErrAfterArchive},
		{"a restore point: the newest", Target{Kind: TargetName, Name: "x"}, "", ids[2], nil},
		{"the one asked for", Target{Kind: TargetName, Name: "x"}, ids[0], ids[0], nil},
		{"one asked for that does not reach", at(5), ids[2], "", ErrNoBackup},
		{"one that does not exist", Target{}, "20990101T000000Z", "", ErrNoBackup},
	} {
		got, err := choose(c, tc.target, tc.id)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil || got.meta.ID != tc.want {
			t.Errorf("%s: backup %v, %v; want %s", tc.name, got.meta, err, tc.want)
		}
	}
	_, err := choose(c, at(3), "")
	if err == nil || !strings.Contains(err.Error(), "before backup "+string(ids[0])+" became consistent") {
		t.Errorf("a time before the oldest: %v", err)
	}
}

// A backup missing WAL or objects is never chosen.
func TestChooseSkipsUnrestorable(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 10)
	good := f.StoredBackup(1, 2, 2, day, "primary")
	f.StoredBackup(1, 9, 11, day.Add(time.Hour), "standby") // stops in a segment not archived yet
	c, err := catalog.Scan(context.Background(), f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	got, err := choose(c, Target{}, "")
	if err != nil || got.meta.ID != good {
		t.Errorf("choose = %v, %v; want %s, the newest restorable", got.meta, err, good)
	}
	f2 := fakerepo.New(t)
	f2.Segments(1, 1, 3)
	c, _ = catalog.Scan(context.Background(), f2.Open(repo.LayoutAuto))
	if _, err := choose(c, Target{}, ""); !errors.Is(err, ErrNoBackup) || !strings.Contains(err.Error(), "holds no base backup") {
		t.Errorf("no backups: %v", err)
	}
}
