package wal

import (
	"errors"
	"strings"
	"testing"
)

const (
	mb16 = 16 << 20
	mb1  = 1 << 20
	mb64 = 64 << 20
	gb1  = 1 << 30
)

func mustName(t *testing.T, s string) Name {
	t.Helper()
	n, err := ParseName(s)
	if err != nil {
		t.Fatalf("ParseName(%q): %v", s, err)
	}
	return n
}

func TestParseNameRoundTrip(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"000000010000000000000001", Name{Kind: KindSegment, Timeline: 1, Log: 0, Seg: 1}},
		{"0000000A00000016000000B3", Name{Kind: KindSegment, Timeline: 10, Log: 0x16, Seg: 0xB3}},
		{"FFFFFFFFFFFFFFFFFFFFFFFF", Name{Kind: KindSegment, Timeline: 0xFFFFFFFF, Log: 0xFFFFFFFF, Seg: 0xFFFFFFFF}},
		{"00000002.history", Name{Kind: KindHistory, Timeline: 2}},
		{"0000001F.history", Name{Kind: KindHistory, Timeline: 0x1F}},
		{"000000010000000000000003.partial", Name{Kind: KindPartial, Timeline: 1, Log: 0, Seg: 3}},
		{"000000010000000000000002.00000028.backup", Name{Kind: KindBackup, Timeline: 1, Log: 0, Seg: 2, Offset: 0x28}},
		{"00000003000000010000004A.00F00060.backup", Name{Kind: KindBackup, Timeline: 3, Log: 1, Seg: 0x4A, Offset: 0xF00060}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseName(tt.in)
			if err != nil {
				t.Fatalf("ParseName: %v", err)
			}
			if got != tt.want {
				t.Errorf("ParseName = %+v, want %+v", got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseNameRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"00000001000000000000000a",         // lower-case hex
		"0000000100000000000000ab.partial", // lower-case hex
		"0000000a.history",                 // lower-case hex
		"000000010000000000000001.0000002a.backup", // lower-case offset
		"00000001000000000000001",                  // 23 digits
		"0000000100000000000000011",                // 25 digits
		"0000001.history",                          // short timeline
		"000000001.history",                        // long timeline
		"000000000000000000000001",                 // timeline 0
		"00000000.history",                         // timeline 0
		"000000000000000000000001.partial",         // timeline 0
		"000000000000000000000001.00000028.backup", // timeline 0
		"../x",                                         // path traversal
		"../000000010000000000000001",                  // path traversal
		"pg_wal/000000010000000000000001",              // a path, not a name
		"/000000010000000000000001",                    // absolute
		"000000010000000000000001.lz4",                 // extra suffix
		"000000010000000000000001.gz",                  // extra suffix
		"00000002.history.lz4",                         // extra suffix
		"000000010000000000000001.partial.lz4",         // extra suffix
		"000000010000000000000001.00000028.backup.old", // extra suffix
		"000000010000000000000001.00000028.backuq",     // wrong suffix
		"000000010000000000000001.00000028",            // no .backup
		"000000010000000000000001.parti@l",             // wrong suffix
		"00000002.HISTORY",                             // wrong case suffix
		"000000010000000000000001 ",                    // trailing space
		" 00000001000000000000001",                     // leading space
		"+00000010000000000000001",                     // sign
		"0000000G0000000000000001",                     // not hex
		"00000001000000000000000\x00",                  // NUL
		"RECOVERYXLOG",                                 // what %p ends in
		"000000010000000000000001-00000028.backup",     // backup length, wrong separator
	} {
		t.Run(s, func(t *testing.T) {
			n, err := ParseName(s)
			if err == nil {
				t.Fatalf("ParseName(%q) = %+v, want an error", s, n)
			}
			if !errors.Is(err, ErrBadName) {
				t.Errorf("error %v does not match ErrBadName", err)
			}
			var ne *NameError
			if !errors.As(err, &ne) || ne.Name != s {
				t.Errorf("error %v is not a *NameError naming %q", err, s)
			}
		})
	}
}

func TestCheckSegSize(t *testing.T) {
	tests := []struct {
		name    string
		segSize uint32
		ok      bool
	}{
		{"0000000100000000000000FF", mb16, true},
		{"000000010000000000000100", mb16, false}, // 16MB: 256 segments per log
		{"0000000100000000000000FF.partial", mb16, true},
		{"000000010000000000000100.partial", mb16, false},
		{"000000010000000000000FFF", mb1, true}, // 1MB: 4096 per log
		{"000000010000000000001000", mb1, false},
		{"00000001000000000000003F", mb64, true}, // 64MB: 64 per log
		{"000000010000000000000040", mb64, false},
		{"000000010000000000000003", gb1, true}, // 1GB: 4 per log
		{"000000010000000000000004", gb1, false},
		{"00000001FFFFFFFF00000003", gb1, true},
		{"000000010000000000000001.00FFFFFF.backup", mb16, true},
		{"000000010000000000000001.01000000.backup", mb16, false}, // offset beyond the segment
		{"000000010000000000000001.01000000.backup", mb64, true},
		{"00000002.history", mb16, true}, // no position to check
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+FormatSize(tt.segSize), func(t *testing.T) {
			err := mustName(t, tt.name).CheckSegSize(tt.segSize)
			if tt.ok && err != nil {
				t.Errorf("CheckSegSize: %v, want nil", err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("CheckSegSize: nil, want an error")
				}
				if !errors.Is(err, ErrBadName) {
					t.Errorf("error %v does not match ErrBadName", err)
				}
			}
		})
	}
}

func TestValidSegSize(t *testing.T) {
	for _, size := range []uint32{1 << 20, 2 << 20, 16 << 20, 64 << 20, 512 << 20, 1 << 30} {
		if err := ValidSegSize(size); err != nil {
			t.Errorf("ValidSegSize(%d): %v", size, err)
		}
	}
	for _, size := range []uint32{0, 1, 8192, 512 << 10, (1 << 20) - 1, (16 << 20) + 8192, 3 << 20, 2 << 30, 0xFFFFFFFF} {
		if err := ValidSegSize(size); err == nil {
			t.Errorf("ValidSegSize(%d) = nil, want an error", size)
		}
		if err := mustName(t, "000000010000000000000001").CheckSegSize(size); err == nil {
			t.Errorf("CheckSegSize(%d) = nil, want an error", size)
		}
	}
}

func TestSegNoAndBack(t *testing.T) {
	tests := []struct {
		name    string
		segSize uint32
		segNo   uint64
	}{
		{"000000010000000000000000", mb16, 0},
		{"000000010000000000000001", mb16, 1},
		{"0000000100000000000000FF", mb16, 255},
		{"000000010000000100000000", mb16, 256},
		{"000000010000000100000001", mb16, 257},
		{"000000030000001600000007", mb16, 0x16*256 + 7},
		{"000000010000000100000000", mb1, 4096},
		{"000000010000000200000001", mb64, 2*64 + 1},
		{"000000010000000200000003", gb1, 2*4 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+FormatSize(tt.segSize), func(t *testing.T) {
			n := mustName(t, tt.name)
			if got := n.SegNo(tt.segSize); got != tt.segNo {
				t.Errorf("SegNo = %d, want %d", got, tt.segNo)
			}
			if got := SegmentFromNo(n.Timeline, tt.segNo, tt.segSize); got != n {
				t.Errorf("SegmentFromNo = %v, want %v", got, n)
			}
			if got, want := n.StartLSN(tt.segSize), LSN(tt.segNo*uint64(tt.segSize)); got != want {
				t.Errorf("StartLSN = %v, want %v", got, want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		from, want string
		segSize    uint32
	}{
		{"000000010000000000000001", "000000010000000000000002", mb16},
		{"0000000100000000000000FE", "0000000100000000000000FF", mb16},
		{"0000000100000000000000FF", "000000010000000100000000", mb16}, // across a log boundary
		{"0000000200000001000000FF", "000000020000000200000000", mb16},
		{"0000000100000000000000FF", "000000010000000000000100", mb1}, // not a boundary for 1MB
		{"000000010000000000000FFF", "000000010000000100000000", mb1},
		{"00000001000000000000003F", "000000010000000100000000", mb64},
		{"000000010000000000000003", "000000010000000100000000", gb1},
		// A partial or backup name's next segment is a plain segment.
		{"000000010000000000000003.partial", "000000010000000000000004", mb16},
		{"000000010000000000000003.00000028.backup", "000000010000000000000004", mb16},
	}
	for _, tt := range tests {
		t.Run(tt.from+"/"+FormatSize(tt.segSize), func(t *testing.T) {
			if got := mustName(t, tt.from).Next(tt.segSize).String(); got != tt.want {
				t.Errorf("Next = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSegmentName(t *testing.T) {
	for in, want := range map[string]string{
		"000000010000000000000003.partial":         "000000010000000000000003",
		"000000010000000000000003.00000028.backup": "000000010000000000000003",
		"000000010000000000000003":                 "000000010000000000000003",
	} {
		if got := mustName(t, in).SegmentName(); got.String() != want || got.Kind != KindSegment {
			t.Errorf("%s.SegmentName() = %v (%v), want segment %s", in, got, got.Kind, want)
		}
	}
	if mustName(t, "00000002.history").HasSegment() {
		t.Error("a history file has no segment")
	}
	if (Name{}).HasSegment() {
		t.Error("the zero Name has no segment")
	}
}

func TestComparePosition(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"000000010000000000000001", "000000010000000000000001", 0},
		{"000000010000000000000001", "000000010000000000000002", -1},
		{"000000010000000000000002", "000000010000000000000001", 1},
		// The timeline is ignored, as pg_archivecleanup does.
		{"000000020000000000000001", "000000010000000000000001", 0},
		{"000000020000000000000001", "000000010000000000000002", -1},
		{"000000010000000000000005", "0000000A0000000000000004", 1},
		// The log half outranks the segment half.
		{"0000000100000000000000FF", "000000010000000100000000", -1},
		{"000000010000000100000000", "0000000100000000000000FF", 1},
		{"000000010000000000000003.partial", "000000020000000000000003", 0},
	}
	for _, tt := range tests {
		if got := ComparePosition(mustName(t, tt.a), mustName(t, tt.b)); got != tt.want {
			t.Errorf("ComparePosition(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindSegment: "segment", KindHistory: "history",
		KindBackup: "backup", KindPartial: "partial", 0: "unknown"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for size, want := range map[uint32]string{mb1: "1MB", mb16: "16MB", mb64: "64MB", gb1: "1GB",
		8192: "8kB", 1000: "1000B", 3 << 29: "1536MB"} {
		if got := FormatSize(size); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", size, got, want)
		}
	}
}

func TestSortArchiveOrder(t *testing.T) {
	names := []string{"000000020000000000000003", "00000003.history", "000000010000000000000005", "00000002.history", "000000020000000000000002.00000028.backup"}
	SortArchiveOrder(names)
	want := "00000002.history 00000003.history 000000010000000000000005 000000020000000000000002.00000028.backup 000000020000000000000003"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("SortArchiveOrder =\n%s\nwant\n%s", got, want)
	}
}
