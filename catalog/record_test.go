package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
)

func TestRecordRoundTrip(t *testing.T) {
	r := fakerepo.New(t).R
	m := catalog.Record{ID: "20240102T030405Z", Label: "nightly", From: "standby", SystemID: 7300000000000000001,
		PGVersion: "15.4", PGVersionNum: 150004, SegSize: 16 << 20,
		Start: 0x5000028, StartTimeline: 2, Stop: 0x5000100, StopTimeline: 2, Checkpoint: 0x5000060,
		StartTime: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), StopTime: time.Date(2024, 1, 2, 3, 5, 0, 0, time.UTC),
		Objects: []catalog.RecordObject{{Name: "16384.tar", Tablespace: 16384, Location: "/srv/ts", Size: 10, Stored: 5},
			{Name: "base.tar", Size: 100, Stored: 50}},
		Manifest: &catalog.ManifestInfo{Checksum: "ab", Algorithm: "CRC32C"}}
	if err := catalog.PutRecord(context.Background(), r, m); err != nil {
		t.Fatal(err)
	}
	got, err := catalog.ReadRecord(context.Background(), r, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	m.Format = catalog.RecordFormat
	if got.ID != m.ID || got.Start != m.Start || got.Stop != m.Stop || got.SystemID != m.SystemID ||
		got.From != "standby" || !got.StopTime.Equal(m.StopTime) || len(got.Objects) != 2 || got.Objects[0] != m.Objects[0] ||
		*got.Manifest != *m.Manifest || got.Format != catalog.RecordFormat {
		t.Errorf("read back %+v\nwant %+v", got, m)
	}
	// A record under another backup's ID is refused.
	other := m
	other.ID = "20240102T030406Z"
	rc, err := r.OpenStream(context.Background(), repo.BackupObject{ID: m.ID, Part: repo.MetaPart})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if _, err := r.PutStream(context.Background(), repo.BackupObject{ID: other.ID, Part: repo.MetaPart}, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.ReadRecord(context.Background(), r, other.ID); !errors.Is(err, repo.ErrCorrupt) {
		t.Errorf("a record naming another backup: %v, want ErrCorrupt", err)
	}
}
