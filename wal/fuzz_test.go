package wal

import (
	"bytes"
	"testing"
)

func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000001",
		"0000000A00000016000000B3",
		"00000002.history",
		"000000010000000000000003.partial",
		"000000010000000000000002.00000028.backup",
		"00000001000000000000000a",
		"000000000000000000000001",
		"../x",
		"pg_wal/000000010000000000000001",
		"000000010000000000000001.lz4",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseName(s)
		if err != nil {
			return
		}
		if got := n.String(); got != s {
			t.Fatalf("ParseName(%q).String() = %q", s, got)
		}
		if n.Timeline == 0 {
			t.Fatalf("ParseName(%q) accepted timeline 0", s)
		}
		again, err := ParseName(n.String())
		if err != nil || again != n {
			t.Fatalf("ParseName(String()) = %+v, %v; want %+v", again, err, n)
		}
		if n.Kind != KindBackup && n.Offset != 0 {
			t.Fatalf("ParseName(%q) set an offset on a %s", s, n.Kind)
		}
	})
}

func FuzzParseLongHeader(f *testing.F) {
	seg := encode(LongHeader{Magic: 0xD110, Info: xlpLongHeader, Timeline: 1, PageAddr: 3 * mb16, SysID: testSysID,
		SegSize: mb16, BlockSize: 8192})
	f.Add(seg)
	f.Add(seg[:LongHeaderSize-1])
	be := LongHeader{Magic: 0xD097, Info: 0x0007, Timeline: 9, PageAddr: 0x16_B3000000, SysID: 1,
		SegSize: mb64, BlockSize: 32768, BigEndian: true}
	f.Add(encode(be))
	f.Add(make([]byte, LongHeaderSize))
	f.Add([]byte("not a WAL segment, not a WAL segment, not a WAL segment"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		h, err := ParseLongHeader(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("ParseLongHeader modified its input")
		}
		if err != nil {
			return
		}
		switch {
		case len(b) < LongHeaderSize:
			t.Fatalf("accepted %d bytes", len(b))
		case h.Version() == "":
			t.Fatalf("accepted unknown magic %04X", h.Magic)
		case h.Info&xlpLongHeader == 0:
			t.Fatalf("accepted info %04X without the long header flag", h.Info)
		case h.Timeline == 0:
			t.Fatal("accepted timeline 0")
		case ValidSegSize(h.SegSize) != nil:
			t.Fatalf("accepted segment size %d", h.SegSize)
		case h.BlockSize < 1024 || h.BlockSize > 65536 || h.BlockSize&(h.BlockSize-1) != 0:
			t.Fatalf("accepted block size %d", h.BlockSize)
		case h.SysID == 0:
			t.Fatal("accepted system identifier 0")
		}
		// Encoding what was parsed gives back the header bytes (the two
		// padding words at 16..23 aside).
		enc := encode(h)
		if !bytes.Equal(enc[:16], b[:16]) || !bytes.Equal(enc[24:LongHeaderSize], b[24:LongHeaderSize]) {
			t.Fatalf("Encode(ParseLongHeader(b)) = % X, want % X", enc, b[:LongHeaderSize])
		}
		// A header always names the segment at its own page address.
		n := h.PageAddr.Segment(h.Timeline, h.SegSize)
		if h.PageAddr%LSN(h.SegSize) == 0 {
			if err := h.CheckName(n); err != nil {
				t.Fatalf("CheckName(%s) of its own segment: %v", n, err)
			}
		} else if err := h.CheckName(n); err == nil {
			t.Fatalf("CheckName(%s) accepted page address %s inside the segment", n, h.PageAddr)
		}
	})
}
