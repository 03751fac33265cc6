package prune

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/storage"
	"github.com/walship/walship/storage/storagetest"
	"github.com/walship/walship/wal"
)

var seg = fakerepo.Seg

func ptr[T any](v T) *T { return &v }

// names renders WAL names the way fakerepo.Names does.
func names(ns ...wal.Name) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.String())
	}
	return out
}

// segRange is segments from..to of a timeline.
func segRange(tli uint32, from, to uint64) []wal.Name {
	var out []wal.Name
	for s := from; s <= to; s++ {
		out = append(out, seg(tli, s))
	}
	return out
}

// run prunes a fresh view of the repository and fails the test on error.
func run(t *testing.T, f *fakerepo.Repo, o Options) Result {
	t.Helper()
	res, err := Prune(context.Background(), f.Open(repo.LayoutAuto), o)
	if err != nil {
		t.Fatalf("Prune(%+v): %v", o.Policy, err)
	}
	return res
}

// wantLeft checks that exactly want (and walship.json) is left.
func wantLeft(t *testing.T, f *fakerepo.Repo, want ...[]wal.Name) {
	t.Helper()
	w := []string{repo.IdentityKey}
	for _, ns := range want {
		w = append(w, names(ns...)...)
	}
	slices.Sort(w)
	if got := f.Names(); !slices.Equal(got, w) {
		t.Errorf("left in the repository:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
}

func TestNoPolicyRefuses(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 3)
	before := f.Names()
	_, err := Prune(context.Background(), f.Open(repo.LayoutAuto), Options{DryRun: false})
	if !errors.Is(err, ErrNoPolicy) {
		t.Fatalf("Prune without a policy: %v, want ErrNoPolicy", err)
	}
	if got := f.Names(); !slices.Equal(got, before) {
		t.Errorf("files changed: %v, want %v", got, before)
	}
}

// TestBeforeTimelineRule: like pg_archivecleanup, only the position after
// the timeline counts; history files stay; .partial files before the
// cutoff go.
func TestBeforeTimelineRule(t *testing.T) {
	for _, cutoff := range []string{"000000020000000000000008", "000000010000000000000008", "000000070000000000000008"} {
		t.Run(cutoff, func(t *testing.T) {
			f := fakerepo.New(t)
			f.Segments(1, 1, 5)
			partial := f.Partial(1, 6)
			f.History(2, [2]uint64{1, 6})
			f.Segments(2, 6, 10)
			res := run(t, f, Options{Policy: Policy{Before: ptr(fakerepo.Name(t, cutoff))}})
			wantLeft(t, f, []wal.Name{{Kind: wal.KindHistory, Timeline: 2}}, segRange(2, 8, 10))
			if f.Has(partial) {
				t.Errorf("%s before the cutoff was kept", partial)
			}
			if res.Removed != 8 || !res.HaveOldestKept || res.OldestKept != seg(2, 8) {
				t.Errorf("Removed %d, oldest kept %s; want 8, %s", res.Removed, res.OldestKept, seg(2, 8))
			}
			if s := res.Summary(); !strings.Contains(s, "removed 8 file(s)") || !strings.Contains(s, "oldest kept segment 000000020000000000000008") {
				t.Errorf("Summary = %q", s)
			}
		})
	}
}

func TestBeforeKeepsPartialAtCutoff(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 5)
	partial := f.Partial(1, 6)
	f.History(2, [2]uint64{1, 6})
	f.Segments(2, 6, 8)
	run(t, f, Options{Policy: Policy{Before: ptr(seg(2, 6))}})
	if !f.Has(partial) {
		t.Errorf("%s at the cutoff was removed", partial)
	}
	wantLeft(t, f, []wal.Name{{Kind: wal.KindHistory, Timeline: 2}, partial}, segRange(2, 6, 8))
}

// threeBackups: timeline 1, segments 1..20, base backups starting in 3, 8
// and 14, a day apart.
func threeBackups(t *testing.T) (*fakerepo.Repo, [3]wal.Name) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	day := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	var b [3]wal.Name
	for i, s := range []uint64{3, 8, 14} {
		b[i] = f.Backup(1, s, s+1, day.AddDate(0, 0, i))
	}
	return f, b
}

func TestKeepBackups(t *testing.T) {
	f, b := threeBackups(t)
	res := run(t, f, Options{Policy: Policy{KeepBackups: 2}})
	// The WAL before the second newest backup goes; its record stays one
	// run, so that verify and ls can name the expired backup.
	wantLeft(t, f, segRange(1, 8, 20), b[:])
	if res.OldestKept != seg(1, 8) || res.Removed != 7 {
		t.Errorf("oldest kept %s, removed %d; want %s, 7", res.OldestKept, res.Removed, seg(1, 8))
	}
	if !strings.Contains(res.Reason, "2 newest base backups") || !strings.Contains(res.Reason, b[1].String()) {
		t.Errorf("Reason = %q", res.Reason)
	}
	// The next run finds the expired record and removes it, nothing else.
	res = run(t, f, Options{Policy: Policy{KeepBackups: 2}})
	wantLeft(t, f, segRange(1, 8, 20), b[1:])
	if res.Removed != 1 {
		t.Errorf("second run removed %d files, want 1 (the expired .backup)", res.Removed)
	}
}

func TestKeepMoreBackupsThanThereAre(t *testing.T) {
	f, b := threeBackups(t)
	res := run(t, f, Options{Policy: Policy{KeepBackups: 4}})
	wantLeft(t, f, segRange(1, 1, 20), b[:])
	if res.Removed != 0 || len(res.Notes) == 0 {
		t.Errorf("removed %d, notes %q; want 0 and a note", res.Removed, res.Notes)
	}
	if s := res.Summary(); !strings.Contains(s, "keeping everything") {
		t.Errorf("Summary = %q", s)
	}
}

// TestNewestBackupByTime: "newest" is when a backup was taken, not its
// position: a backup on a timeline that went back in the WAL (a PITR) may
// start before an older backup of the old timeline.
func TestNewestBackupByTime(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 20)
	f.History(2, [2]uint64{1, 6})
	f.Segments(2, 6, 9)
	day := time.Date(2024, 5, 1, 2, 0, 0, 0, time.UTC)
	old := f.Backup(1, 14, 15, day)
	newest := f.Backup(2, 7, 7, day.AddDate(0, 0, 1))
	res := run(t, f, Options{Policy: Policy{KeepBackups: 1}})
	if res.Cutoff != seg(2, 7) {
		t.Errorf("cutoff %s (%s), want the newest backup's start %s", res.Cutoff, res.Reason, seg(2, 7))
	}
	if !f.Has(newest) || !f.Has(seg(2, 7)) || f.Has(seg(2, 6)) || !f.Has(old) {
		t.Errorf("left %v", f.Names())
	}
}

// TestNewestBackupAlwaysKept: whatever the policy, the WAL of the newest
// base backup stays.
func TestNewestBackupAlwaysKept(t *testing.T) {
	for name, p := range map[string]Policy{
		"keep-age 0":     {KeepAge: ptr(time.Duration(0))},
		"before the end": {Before: ptr(seg(1, 20))},
		"keep-backups 1": {KeepBackups: 1},
	} {
		t.Run(name, func(t *testing.T) {
			f, b := threeBackups(t)
			res := run(t, f, Options{Policy: p})
			wantLeft(t, f, segRange(1, 14, 20), b[:])
			if res.Cutoff != seg(1, 14) {
				t.Errorf("cutoff %s (%s), want %s", res.Cutoff, res.Reason, seg(1, 14))
			}
		})
	}
}

func TestKeepAge(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 12)
	now := time.Now()
	for s := uint64(1); s <= 12; s++ {
		age := time.Hour
		if s <= 6 {
			age = 72 * time.Hour
		}
		f.Age(seg(1, s), now.Add(-age))
	}
	res := run(t, f, Options{Policy: Policy{KeepAge: ptr(48 * time.Hour)}, Now: func() time.Time { return now }})
	wantLeft(t, f, segRange(1, 7, 12))
	if res.OldestKept != seg(1, 7) {
		t.Errorf("oldest kept %s, want %s", res.OldestKept, seg(1, 7))
	}
	// Nothing archived in the last 30 minutes: only the newest segment stays.
	run(t, f, Options{Policy: Policy{KeepAge: ptr(30 * time.Minute)}, Now: func() time.Time { return now }})
	wantLeft(t, f, segRange(1, 12, 12))
}

// TestPoliciesCombine: a file goes only if no policy keeps it.
func TestPoliciesCombine(t *testing.T) {
	f, b := threeBackups(t)
	res := run(t, f, Options{Policy: Policy{KeepBackups: 1, Before: ptr(seg(1, 10))}})
	if res.Cutoff != seg(1, 10) {
		t.Errorf("cutoff %s (%s), want %s", res.Cutoff, res.Reason, seg(1, 10))
	}
	// Both older backups lose their start segments; their records stay
	// for this run.
	wantLeft(t, f, segRange(1, 10, 20), b[:])
}

func TestDryRunDeletesNothing(t *testing.T) {
	f, _ := threeBackups(t)
	before := f.Names()
	res := run(t, f, Options{Policy: Policy{KeepBackups: 2}, DryRun: true})
	if got := f.Names(); !slices.Equal(got, before) {
		t.Fatalf("dry run changed the repository:\n%v\nwant\n%v", got, before)
	}
	if len(res.Remove) != 7 || res.Removed != 0 || res.Bytes == 0 || res.RawBytes != 7*int64(fakerepo.SegSize) {
		t.Errorf("dry run plan: %d to remove (%d bytes, %d raw), %d removed; want 7, >0, 7 segments, 0",
			len(res.Remove), res.Bytes, res.RawBytes, res.Removed)
	}
	for i, fl := range res.Remove {
		if fl.Name != seg(1, uint64(i+1)) {
			t.Errorf("Remove[%d] = %s, want %s (oldest first)", i, fl.Name, seg(1, uint64(i+1)))
		}
	}
	if s := res.Summary(); !strings.HasPrefix(s, "would remove 7 file(s)") {
		t.Errorf("Summary = %q", s)
	}
}

func TestRefusesOtherCluster(t *testing.T) {
	f, _ := threeBackups(t)
	before := f.Names()
	_, err := Prune(context.Background(), f.Open(repo.LayoutAuto),
		Options{Policy: Policy{KeepBackups: 1}, SystemID: fakerepo.SysID + 1, SystemIDFrom: "/data/global/pg_control"})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "/data/global/pg_control") {
		t.Fatalf("Prune with another cluster's identifier: %v, want ErrRefused naming the source", err)
	}
	if got := f.Names(); !slices.Equal(got, before) {
		t.Errorf("files changed after a refusal")
	}
	// The right identifier is accepted.
	run(t, f, Options{Policy: Policy{KeepBackups: 1}, SystemID: fakerepo.SysID})
}

func TestNoIdentityFile(t *testing.T) {
	f := fakerepo.NewPlain(t)
	f.Segments(1, 1, 6)
	before := f.Names()
	_, err := Prune(context.Background(), f.Open(repo.LayoutAuto), Options{Policy: Policy{Before: ptr(seg(1, 4))}})
	// (walship-prune adds the hint to say --layout plain: test/prune_test.go.)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("Prune of a repository without walship.json: %v, want ErrRefused and ErrNoIdentity", err)
	}
	if got := f.Names(); !slices.Equal(got, before) {
		t.Errorf("files changed after a refusal")
	}
	// Another cluster's identifier is caught from the segment headers.
	_, err = Prune(context.Background(), f.Open(repo.LayoutPlain), Options{Policy: Policy{Before: ptr(seg(1, 4))}, SystemID: 42})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("plain repository of another cluster: %v, want ErrRefused", err)
	}
	res, err := Prune(context.Background(), f.Open(repo.LayoutPlain), Options{Policy: Policy{Before: ptr(seg(1, 4))}, SystemID: fakerepo.SysID})
	if err != nil {
		t.Fatalf("Prune --layout plain: %v", err)
	}
	if got, want := f.Names(), names(segRange(1, 4, 6)...); !slices.Equal(got, want) || res.Removed != 3 {
		t.Errorf("left %v (removed %d), want %v", got, res.Removed, want)
	}
}

// failOn fails the removal of one key with a permission error.
func failOn(key string) func(op, k string) error {
	return func(op, k string) error {
		if op == "remove" && k == key {
			return &storage.Error{Op: op, Key: k, Err: os.ErrPermission}
		}
		return nil
	}
}

func TestFailedDeleteStopsAndReports(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 10)
	key, err := f.R.Find(context.Background(), seg(1, 4))
	if err != nil {
		t.Fatal(err)
	}
	fb := &storagetest.Faulty{Backend: f.B, Fail: failOn(key.Key)}
	res, err := Prune(context.Background(), repo.New(fb, repo.Options{Layout: repo.LayoutAuto}), Options{Policy: Policy{Before: ptr(seg(1, 8))}})
	var de *DeleteError
	if !errors.As(err, &de) || !slices.Contains(de.Failed, key.Key) || !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Prune with a failing delete: %v, want a DeleteError naming %s", err, key.Key)
	}
	if res.Removed != 3 || de.Removed != 3 {
		t.Errorf("Removed = %d (error says %d), want 3", res.Removed, de.Removed)
	}
	// Nothing after the failure was touched: no holes.
	wantLeft(t, f, segRange(1, 4, 10))
}

func TestBatchDeletes(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 10)
	fb := &storagetest.Faulty{Backend: f.B}
	res, err := Prune(context.Background(), repo.New(storagetest.Batching(fb), repo.Options{Layout: repo.LayoutAuto}), Options{Policy: Policy{Before: ptr(seg(1, 8))}, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 3, 1}; !slices.Equal(fb.BatchSizes(), want) {
		t.Errorf("batches of %v, want %v", fb.BatchSizes(), want)
	}
	if res.Removed != 7 {
		t.Errorf("Removed = %d, want 7", res.Removed)
	}
	wantLeft(t, f, segRange(1, 8, 10))
}

func TestMakePlanRejectsBadPolicy(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 2)
	for _, p := range []Policy{{}, {KeepBackups: -1}, {KeepAge: ptr(-time.Hour)}} {
		if _, err := Prune(context.Background(), f.Open(repo.LayoutAuto), Options{Policy: p}); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
	}
	if got := f.Names(); len(got) != 3 {
		t.Errorf("files changed: %v", got)
	}
}

func ExampleResult_Summary() {
	r := Result{Plan: Plan{Cutoff: fakerepo.Seg(1, 8), Reason: "the 2 newest base backups", Bytes: 3 << 20, RawBytes: 7 << 20,
		OldestKept: fakerepo.Seg(1, 8), HaveOldestKept: true}, Removed: 7, RemovedBytes: 3 << 20}
	fmt.Println(r.Summary())
	// Output: removed 7 file(s), 3.0 MiB (7.0 MiB of WAL); oldest kept segment 000000010000000000000008; cutoff 000000010000000000000008 (the 2 newest base backups)
}

// TestConcurrentPushesUntouched: files that arrive after the listing are
// never removed by the run that did not see them, wherever they fall.
func TestConcurrentPushesUntouched(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 2, 10)
	var once sync.Once
	pb := &storagetest.Faulty{Backend: f.B, Before: func(op, _ string) {
		if op == "remove" { // an archiver pushes as the prune begins to remove
			once.Do(func() {
				f.Segments(1, 11, 11) // the next segment
				f.Segments(1, 1, 1)   // a late push before the cutoff
			})
		}
	}}
	res, err := Prune(context.Background(), repo.New(pb, repo.Options{Layout: repo.LayoutAuto}), Options{Policy: Policy{Before: ptr(seg(1, 6))}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 4 {
		t.Errorf("Removed = %d, want 4", res.Removed)
	}
	wantLeft(t, f, segRange(1, 1, 1), segRange(1, 6, 11))
}
