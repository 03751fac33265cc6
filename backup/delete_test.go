package backup

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
)

func TestDelete(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	old := f.StoredBackup(1, 2, 3, day, "standby")
	full := f.StoredBackup(1, 6, 7, day.Add(time.Hour), "standby")
	inc := f.StoredIncremental(1, 10, 11, day.Add(2*time.Hour), full)
	r := f.Open(repo.LayoutAuto)
	exists := func(id repo.BackupID) bool {
		_, err := os.Stat(f.BackupPath(id, repo.MetaPart))
		return err == nil
	}

	if _, err := Delete(ctx, r, inc, false); !errors.Is(err, ErrInUse) || !exists(inc) {
		t.Errorf("deleting the newest restorable backup: %v (still there: %v), want refused", err, exists(inc))
	}
	if _, err := Delete(ctx, r, full, false); !errors.Is(err, ErrInUse) || !exists(full) {
		t.Errorf("deleting the backup an incremental builds on: %v, want refused", err)
	}
	if _, err := Delete(ctx, r, "20240101T000000Z", false); !errors.Is(err, ErrNoBackup) {
		t.Errorf("deleting a backup that is not there: %v, want ErrNoBackup", err)
	}
	res, err := Delete(ctx, r, old, false)
	if err != nil || exists(old) || len(res.Broken) != 0 {
		t.Errorf("deleting an older backup: %v, still there %v", err, exists(old))
	}
	if _, err := os.Stat(f.BackupPath(old, repo.BasePart)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("its base.tar is still there: %v", err)
	}
	res, err = Delete(ctx, r, full, true)
	if err != nil || exists(full) || len(res.Broken) != 1 || res.Broken[0] != inc {
		t.Errorf("--force on a parent: %+v, %v; want it gone and %s reported broken", res, err, inc)
	}
}
