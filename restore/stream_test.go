package restore

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
	"github.com/walship/walship/wal/waltest"
	"github.com/walship/walship/warmstandby"
)

// When the streamed tail is handed out: the server's own recovery, at the
// end of an archive recovery or at a standby's promotion; never pg_rewind,
// never a standby that goes on.
func TestWantsTail(t *testing.T) {
	archive, standby := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(standby, "standby.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	seg := fakerepo.Seg(1, 5)
	notFound := &storage.Error{Op: "open", Key: seg.String(), Err: os.ErrNotExist}
	stop := func(r warmstandby.Reason) error { return &warmstandby.StopError{Name: seg, Reason: r} }
	wait := &warmstandby.Options{}
	for _, c := range []struct {
		what string
		req  Request
		err  error
		want bool
	}{
		{"archive recovery", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: archive}, notFound, true},
		{"pg_rewind", Request{Name: seg, Dest: "/data/pg_wal/" + seg.String(), DataDir: archive}, notFound, false},
		{"a history file", Request{Name: wal.Name{Kind: wal.KindHistory, Timeline: 2}, Dest: "pg_wal/RECOVERYHISTORY", DataDir: archive}, notFound, false},
		{"a standby asking again", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: standby}, notFound, false},
		{"a waiting standby promoted", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: standby, Standby: wait}, stop(warmstandby.Promoted), true},
		{"a smart trigger", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: archive, Standby: wait}, stop(warmstandby.Triggered), true},
		{"a fast trigger", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: archive, Standby: wait}, stop(warmstandby.TriggeredFast), false},
		{"--max-wait", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: standby, Standby: wait}, stop(warmstandby.MaxWaitReached), false},
		{"the prefetch worker", Request{Name: seg, Dest: "pg_wal/RECOVERYXLOG", DataDir: archive, WorkerSegSize: fakerepo.SegSize}, notFound, false},
	} {
		if got := c.req.wantsTail(c.err); got != c.want {
			t.Errorf("%s: wantsTail = %v, want %v", c.what, got, c.want)
		}
	}
}

// The tail is the last timeline's: not once a newer timeline branched off;
// and a segment stored whole is restored whole.
func TestFetchStreamed(t *testing.T) {
	ctx := context.Background()
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	seg := fakerepo.Seg(1, 5)
	data := waltest.Seeded(seg, fakerepo.SysID, fakerepo.SegSize, 9)
	for _, p := range []repo.Piece{{Seg: seg, Start: 0, End: 5000}, {Seg: seg, Start: 5000, End: 7000}} {
		if err := f.R.PutPiece(ctx, p, data[p.Start:p.End]); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	res, err := FetchStreamed(ctx, f.Open(repo.LayoutAuto), seg, dest)
	if err != nil || !res.Streamed || res.Bytes != 7000 {
		t.Fatalf("FetchStreamed = %+v, %v; want the 7000 streamed bytes", res, err)
	}
	got, _ := os.ReadFile(dest)
	if len(got) != int(fakerepo.SegSize) || string(got[:7000]) != string(data[:7000]) || got[7000] != 0 || got[len(got)-1] != 0 {
		t.Errorf("restored %d bytes: want the segment's size, the streamed bytes, zeros after", len(got))
	}
	f.Put(seg, data)
	res, err = FetchStreamed(ctx, f.Open(repo.LayoutAuto), seg, dest)
	if err != nil || res.Streamed || res.Bytes != int64(fakerepo.SegSize) {
		t.Errorf("with the segment stored whole: %+v, %v; want the whole segment", res, err)
	}
	f.Delete(seg)
	f.History(2, [2]uint64{1, 5})
	if _, err := FetchStreamed(ctx, f.Open(repo.LayoutAuto), seg, dest); !storage.IsNotExist(err) {
		t.Errorf("with timeline 2 branched off: %v, want not found", err)
	}
}
