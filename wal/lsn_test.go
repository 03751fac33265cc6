package wal

import "testing"

func TestParseLSN(t *testing.T) {
	tests := []struct {
		in   string
		want LSN
		out  string // String() of the result
	}{
		{"0/0", 0, "0/0"},
		{"0/3000028", 0x3000028, "0/3000028"},
		{"16/B374D848", 0x16_B374D848, "16/B374D848"},
		{"16/b374d848", 0x16_B374D848, "16/B374D848"}, // either case in
		{"FFFFFFFF/FFFFFFFF", 0xFFFFFFFF_FFFFFFFF, "FFFFFFFF/FFFFFFFF"},
		{"00000001/00000002", 0x1_00000002, "1/2"},
	}
	for _, tt := range tests {
		got, err := ParseLSN(tt.in)
		if err != nil {
			t.Errorf("ParseLSN(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseLSN(%q) = %#x, want %#x", tt.in, uint64(got), uint64(tt.want))
		}
		if s := got.String(); s != tt.out {
			t.Errorf("ParseLSN(%q).String() = %q, want %q", tt.in, s, tt.out)
		}
	}
}

func TestParseLSNRejects(t *testing.T) {
	for _, s := range []string{"", "/", "0/", "/0", "3000028", "0x0/0x1", "1/2/3", "G/0",
		"100000000/0", "0/100000000", "-1/0", "+1/0", " 0/1", "0/1 ", "0/1_0"} {
		if l, err := ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q) = %v, want an error", s, l)
		}
	}
}

func TestLSNSegment(t *testing.T) {
	tests := []struct {
		lsn     string
		segSize uint32
		tli     uint32
		seg     string // Segment: the segment holding lsn
		end     string // SegmentOfEnd: the segment holding the byte before lsn
	}{
		{"0/0", mb16, 1, "000000010000000000000000", "000000010000000000000000"},
		{"0/3000028", mb16, 1, "000000010000000000000003", "000000010000000000000003"},
		// Exactly at a boundary: the record ended in the previous segment.
		{"0/3000000", mb16, 1, "000000010000000000000003", "000000010000000000000002"},
		{"0/2FFFFFF", mb16, 1, "000000010000000000000002", "000000010000000000000002"},
		{"0/3000001", mb16, 1, "000000010000000000000003", "000000010000000000000003"},
		{"1/0", mb16, 2, "000000020000000100000000", "0000000200000000000000FF"},
		{"16/B374D848", mb16, 3, "0000000300000016000000B3", "0000000300000016000000B3"},
		{"0/400000", mb1, 1, "000000010000000000000004", "000000010000000000000003"},
		{"0/8000000", mb64, 1, "000000010000000000000002", "000000010000000000000001"},
		{"1/40000000", gb1, 1, "000000010000000100000001", "000000010000000100000000"},
	}
	for _, tt := range tests {
		l, err := ParseLSN(tt.lsn)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Segment(tt.tli, tt.segSize).String(); got != tt.seg {
			t.Errorf("%s.Segment(%d, %s) = %s, want %s", tt.lsn, tt.tli, FormatSize(tt.segSize), got, tt.seg)
		}
		if got := l.SegmentOfEnd(tt.tli, tt.segSize).String(); got != tt.end {
			t.Errorf("%s.SegmentOfEnd(%d, %s) = %s, want %s", tt.lsn, tt.tli, FormatSize(tt.segSize), got, tt.end)
		}
		if got, want := l.SegNo(tt.segSize), uint64(l)/uint64(tt.segSize); got != want {
			t.Errorf("%s.SegNo = %d, want %d", tt.lsn, got, want)
		}
	}
}
