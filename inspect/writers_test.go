package inspect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/walship/walship/catalog"
	"github.com/walship/walship/internal/testenv/fakerepo"
	"github.com/walship/walship/repo"
	"github.com/walship/walship/wal"
)

// history2 is the name of timeline 2's history file.
var history2 = wal.Name{Kind: wal.KindHistory, Timeline: 2}

// TestSecondWriterPITRCopy: a restored copy promoted to timeline 2 archives
// into the primary's repository, and the primary goes on archiving
// timeline 1 for half an hour after that: a PROBLEM naming both timelines
// and when the copy started. Segments archived before the branch, and the
// short tail just after it, are not.
func TestSecondWriterPITRCopy(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 9)
	f.History(2, [2]uint64{1, 4})
	f.Segments(2, 4, 6)
	for s := uint64(1); s <= 6; s++ {
		f.Age(seg(1, s), day.Add(-time.Hour)) // before the copy was promoted
	}
	f.Age(history2, day)
	f.Age(seg(1, 7), day.Add(time.Minute)) // within the grace
	f.Age(seg(1, 8), day.Add(20*time.Minute))
	f.Age(seg(1, 9), day.Add(30*time.Minute))

	rep := verify(t, f, false)
	file := seg(1, 8).String() + ".." + seg(1, 9).String()
	wantProblem(t, rep, file, "timeline 1 is still being archived after timeline 2 branched off it at "+fakerepo.SwitchPoint(4).String())
	for _, want := range []string{"2 segment(s)", "00000002.history", "since " + day.Format(time.RFC3339), "archive_mode = off",
		"the last at " + day.Add(30*time.Minute).Format(time.RFC3339)} {
		if !strings.Contains(problems(rep), want) {
			t.Errorf("problem does not say %q:\n%s", want, problems(rep))
		}
	}
	if len(rep.Problems) != 1 {
		t.Errorf("problems:\n%s", problems(rep))
	}

	// Within a grace of an hour it is the tail of an old primary.
	c := scan(t, f)
	if ws := catalog.SecondWriters(c, time.Hour); len(ws) != 0 {
		t.Errorf("with an hour's grace: %+v", ws)
	}
	ws := catalog.SecondWriters(c, 0)
	if len(ws) != 1 || ws[0].Old != 1 || ws[0].New != 2 || ws[0].Segments != 2 || !ws[0].Since.Equal(day) {
		t.Errorf("SecondWriters = %+v", ws)
	}
}

// TestSecondWriterLateBacklog: an old primary that archives, long after
// the switch, the segments it had not archived before it (its backlog,
// before the switch point) is no second writer.
func TestSecondWriterLateBacklog(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 3)
	f.History(2, [2]uint64{1, 5})
	f.Segments(2, 5, 7)
	f.Segments(1, 4, 4)
	f.Age(history2, day)
	f.Age(seg(1, 4), day.Add(time.Hour)) // before the switch point in segment 5
	if ws := catalog.SecondWriters(scan(t, f), 0); len(ws) != 0 {
		t.Errorf("SecondWriters = %+v, want none", ws)
	}
}

// TestSecondWriterSibling: timeline 3 branched off timeline 1 (a copy
// restored to a point before the failover that made timeline 2), and
// timeline 2 goes on being archived: two writers, though timeline 3 does
// not descend from timeline 2.
func TestSecondWriterSibling(t *testing.T) {
	f := fakerepo.New(t)
	f.Segments(1, 1, 4)
	f.History(2, [2]uint64{1, 4})
	f.Segments(2, 4, 8)
	f.History(3, [2]uint64{1, 3})
	f.Segments(3, 3, 5)
	for s := uint64(1); s <= 4; s++ {
		f.Age(seg(1, s), day.Add(-48*time.Hour))
	}
	f.Age(history2, day.Add(-24*time.Hour))
	f.Age(wal.Name{Kind: wal.KindHistory, Timeline: 3}, day)
	for s := uint64(4); s <= 6; s++ {
		f.Age(seg(2, s), day.Add(-time.Hour))
	}
	f.Age(seg(2, 7), day.Add(time.Hour))
	f.Age(seg(2, 8), day.Add(2*time.Hour))
	rep := verify(t, f, false)
	wantProblem(t, rep, seg(2, 7).String()+".."+seg(2, 8).String(), "timeline 2 is still being archived after timeline 3 (which does not descend from it) appeared")
	// Timeline 1 was left before timeline 3 appeared, and timeline 2 is
	// only compared with newer timelines.
	if ws := catalog.SecondWriters(scan(t, f), 0); len(ws) != 1 || ws[0].Old != 2 || ws[0].New != 3 || ws[0].SwitchPoint != "" {
		t.Errorf("SecondWriters = %+v", ws)
	}
}

func scan(t *testing.T, f *fakerepo.Repo) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Scan(context.Background(), f.Open(repo.LayoutAuto))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
