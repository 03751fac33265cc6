package wal

import (
	"reflect"
	"strings"
	"testing"
)

func mustLSN(t *testing.T, s string) LSN {
	t.Helper()
	l, err := ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name    string
		tli     uint32
		content string
		want    []HistoryEntry
	}{
		{
			name:    "as PostgreSQL writes it",
			tli:     2,
			content: "1\t0/3000158\tno recovery target specified\n",
			want:    []HistoryEntry{{1, 0x3000158, "no recovery target specified"}},
		},
		{
			name: "three generations",
			tli:  4,
			content: "1\t0/3000158\tno recovery target specified\n" +
				"\n" +
				"2\t0/5000000\tat restore point \"before_upgrade\"\n" +
				"3\t16/B374D848\tbefore 2023-05-04 12:00:00+00\n",
			want: []HistoryEntry{
				{1, 0x3000158, "no recovery target specified"},
				{2, 0x5000000, "at restore point \"before_upgrade\""},
				{3, 0x16_B374D848, "before 2023-05-04 12:00:00+00"},
			},
		},
		{
			name:    "comments, blank lines, indentation, no reason, no final newline",
			tli:     3,
			content: "# written by hand\n\n   \n\t1\t0/3000158\n  # another\n2\t0/4000000\t  spaced reason  ",
			want:    []HistoryEntry{{1, 0x3000158, ""}, {2, 0x4000000, "spaced reason"}},
		},
		{
			name:    "skipped timelines",
			tli:     9,
			content: "1\t0/3000158\tx\n5\t0/9000000\ty\n",
			want:    []HistoryEntry{{1, 0x3000158, "x"}, {5, 0x9000000, "y"}},
		},
		{
			name:    "empty",
			tli:     1,
			content: "",
			want:    nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHistory(tt.tli, strings.NewReader(tt.content))
			if err != nil {
				t.Fatalf("ParseHistory: %v", err)
			}
			if h.Timeline != tt.tli {
				t.Errorf("Timeline = %d, want %d", h.Timeline, tt.tli)
			}
			if !reflect.DeepEqual(h.Entries, tt.want) {
				t.Errorf("Entries = %+v, want %+v", h.Entries, tt.want)
			}
		})
	}
}

func TestParseHistoryRejects(t *testing.T) {
	tests := []struct {
		name    string
		tli     uint32
		content string
	}{
		{"decreasing timelines", 5, "2\t0/3000000\ta\n1\t0/4000000\tb\n"},
		{"repeated timeline", 5, "2\t0/3000000\ta\n2\t0/4000000\tb\n"},
		{"parent equal to own timeline", 2, "2\t0/3000000\ta\n"},
		{"parent newer than own timeline", 2, "3\t0/3000000\ta\n"},
		{"timeline 0", 2, "0\t0/3000000\ta\n"},
		{"no switch point", 2, "1\n"},
		{"bad switch point", 2, "1\t3000000\ta\n"},
		{"not a number", 2, "one\t0/3000000\ta\n"},
		{"negative", 2, "-1\t0/3000000\ta\n"},
		{"garbage", 2, "this is not a history file\n"},
		{"binary", 2, "\x00\x01\x02\t\x03\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if h, err := ParseHistory(tt.tli, strings.NewReader(tt.content)); err == nil {
				t.Errorf("ParseHistory = %+v, want an error", h)
			}
		})
	}
}

func TestHistoryLookups(t *testing.T) {
	h, err := ParseHistory(4, strings.NewReader(
		"1\t0/3000158\tno recovery target specified\n"+
			"2\t0/5000000\tno recovery target specified\n"+
			"3\t1/0\tno recovery target specified\n"))
	if err != nil {
		t.Fatal(err)
	}
	timelineAt := []struct {
		lsn  string
		want uint32
	}{
		{"0/0", 1},
		{"0/3000157", 1},
		{"0/3000158", 2}, // the switch point is the new timeline's first byte
		{"0/4FFFFFF", 2},
		{"0/5000000", 3},
		{"0/FFFFFFFF", 3},
		{"1/0", 4},
		{"FFFFFFFF/FFFFFFFF", 4},
	}
	for _, tt := range timelineAt {
		if got := h.TimelineAt(mustLSN(t, tt.lsn)); got != tt.want {
			t.Errorf("TimelineAt(%s) = %d, want %d", tt.lsn, got, tt.want)
		}
	}
	switchPoint := []struct {
		tli  uint32
		want string
		ok   bool
	}{
		{1, "0/3000158", true},
		{2, "0/5000000", true},
		{3, "1/0", true},
		{4, "", false}, // the current timeline has not ended
		{5, "", false},
	}
	for _, tt := range switchPoint {
		got, ok := h.SwitchPoint(tt.tli)
		if ok != tt.ok {
			t.Errorf("SwitchPoint(%d) ok = %v, want %v", tt.tli, ok, tt.ok)
			continue
		}
		if ok && got != mustLSN(t, tt.want) {
			t.Errorf("SwitchPoint(%d) = %s, want %s", tt.tli, got, tt.want)
		}
	}
	for tli, want := range map[uint32]bool{1: true, 2: true, 3: true, 4: true, 5: false, 0: false} {
		if got := h.Contains(tli); got != want {
			t.Errorf("Contains(%d) = %v, want %v", tli, got, want)
		}
	}
}

func TestHistoryWithGaps(t *testing.T) {
	// Timeline 7 descends from 1 and 5 only: 2, 3, 4 and 6 are branches
	// it never followed.
	h, err := ParseHistory(7, strings.NewReader("1\t0/3000158\ta\n5\t0/9000000\tb\n"))
	if err != nil {
		t.Fatal(err)
	}
	for lsn, want := range map[string]uint32{"0/1000000": 1, "0/3000158": 5, "0/9000000": 7} {
		if got := h.TimelineAt(mustLSN(t, lsn)); got != want {
			t.Errorf("TimelineAt(%s) = %d, want %d", lsn, got, want)
		}
	}
	if h.Contains(3) || h.Contains(6) {
		t.Error("Contains reports a timeline the history never followed")
	}
	if _, ok := h.SwitchPoint(3); ok {
		t.Error("SwitchPoint of a timeline not in the history")
	}
}
