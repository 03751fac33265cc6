package prune

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/inspect"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/internal/testenv/s3test"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	_ "github.com/walship/walship/storage/s3"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
)

// TestPruneS3 prunes a repository on a real S3 server: the removals go
// out as multi-object deletes of at most BatchSize keys, and what is left
// verifies.
func TestPruneS3(t *testing.T) {
	srv := s3test.StartServer(t)
	srv.Setenv(t)
	ctx := context.Background()
	raw, err := storage.Open(ctx, "s3://"+srv.NewBucket(t)+"/main", srv.Options(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cb := &storagetest.Faulty{Backend: raw}
	batched := storagetest.Batching(cb)
	r := repo.New(storage.WithRetry(batched, storage.DefaultRetry), repo.Options{Layout: repo.LayoutAuto, Create: true})
	for s := uint64(1); s <= 12; s++ {
		n := seg(1, s)
		data := waltest.FakeSegment(n, fakerepo.SysID, fakerepo.SegSize, nil)
		h, _ := wal.ParseLongHeader(data)
		if err := r.Claim(ctx, h); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Put(ctx, n, data); err != nil {
			t.Fatal(err)
		}
	}
	backup := wal.Name{Kind: wal.KindBackup, Timeline: 1, Seg: 8, Offset: 0x28}
	text := "START WAL LOCATION: 0/800028 (file 000000010000000000000008)\nSTOP WAL LOCATION: 0/800100 (file 000000010000000000000008)\n" +
		"START TIME: " + time.Now().UTC().Format("2006-01-02 15:04:05 MST") + "\n"
	if _, err := r.Put(ctx, backup, []byte(text)); err != nil {
		t.Fatal(err)
	}

	res, err := Prune(ctx, repo.New(storage.WithRetry(batched, storage.DefaultRetry), repo.Options{Layout: repo.LayoutAuto}),
		Options{Policy: Policy{KeepBackups: 1}, BatchSize: 4, SystemID: fakerepo.SysID})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 7 || res.OldestKept != seg(1, 8) {
		t.Errorf("removed %d, oldest kept %s; want 7, %s", res.Removed, res.OldestKept, seg(1, 8))
	}
	if want := []int{4, 3}; !slices.Equal(cb.BatchSizes(), want) {
		t.Errorf("multi-object deletes of %v keys, want %v", cb.BatchSizes(), want)
	}
	r = repo.New(storage.WithRetry(raw, storage.DefaultRetry), repo.Options{Layout: repo.LayoutAuto})
	c, err := catalog.Scan(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, f := range c.Files {
		left = append(left, f.Name.String())
	}
	want := []string{seg(1, 8).String(), backup.String()}
	for s := uint64(9); s <= 12; s++ {
		want = append(want, seg(1, s).String())
	}
	if !slices.Equal(left, want) {
		t.Errorf("left on S3: %v, want %v", left, want)
	}
	rep, err := inspect.Verify(ctx, r, c, inspect.VerifyOptions{Full: true})
	if err != nil || !rep.OK() || rep.Checked != 5 {
		t.Errorf("verify --full after pruning: %v, %+v", err, rep)
	}
}
