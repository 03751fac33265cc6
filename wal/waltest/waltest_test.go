package waltest_test

import (
	"testing"

	"github.com/walship/walship/wal"
	. "github.com/walship/walship/wal/waltest"
)

const (
	testSysID        = 7229286521432618453
	mb1       uint32 = 1 << 20
	mb16      uint32 = 16 << 20
	mb64      uint32 = 64 << 20
)

func mustName(t *testing.T, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestParseLongHeaderFakeSegment(t *testing.T) {
	for _, tt := range []struct {
		name    string
		segSize uint32
	}{
		{"000000010000000000000001", mb16},
		{"000000030000001600000007", mb16},
		{"0000000200000001000000FF", mb16},
		{"000000010000000000000FFF", mb1},
		{"00000001000000050000003F", mb64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := mustName(t, tt.name)
			seg := FakeSegment(n, testSysID, tt.segSize, nil)
			if len(seg) != int(tt.segSize) {
				t.Fatalf("FakeSegment is %d bytes, want %d", len(seg), tt.segSize)
			}
			h, err := wal.ParseLongHeader(seg)
			if err != nil {
				t.Fatalf("ParseLongHeader: %v", err)
			}
			want := wal.LongHeader{Magic: 0xD110, Info: 0x0002, Timeline: n.Timeline,
				PageAddr: wal.LSN(n.SegNo(tt.segSize) * uint64(tt.segSize)), SysID: testSysID,
				SegSize: tt.segSize, BlockSize: 8192}
			if h != want {
				t.Errorf("ParseLongHeader = %+v, want %+v", h, want)
			}
			if v := h.Version(); v != "15" {
				t.Errorf("Version = %q, want 15", v)
			}
			if err := h.CheckName(n); err != nil {
				t.Errorf("CheckName(%s): %v", n, err)
			}
		})
	}
}

func TestFakeSegmentFill(t *testing.T) {
	n := mustName(t, "000000010000000000000001")
	seg := FakeSegment(n, testSysID, mb1, func(b []byte) {
		for i := range b {
			b[i] = 0xAB
		}
	})
	if _, err := wal.ParseLongHeader(seg); err != nil {
		t.Fatalf("the header must survive fill: %v", err)
	}
	if seg[wal.LongHeaderSize] != 0xAB || seg[len(seg)-1] != 0xAB {
		t.Error("fill did not reach the rest of the segment")
	}
}
