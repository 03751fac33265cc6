package wal

import (
	"encoding/binary"
	"errors"
	"testing"
)

const testSysID = 7229286521432618453

// header returns a valid PostgreSQL 15 header for segment n, for tests to
// spoil one field of.
func header(t *testing.T, n string, segSize uint32) LongHeader {
	t.Helper()
	name := mustName(t, n)
	return LongHeader{Magic: 0xD110, Info: xlpLongHeader, Timeline: name.Timeline,
		PageAddr: name.StartLSN(segSize) - LSN(name.Offset), SysID: testSysID, SegSize: segSize, BlockSize: 8192}
}

func encode(h LongHeader) []byte {
	b := make([]byte, LongHeaderSize)
	h.Encode(b)
	return b
}

func TestParseLongHeaderVersions(t *testing.T) {
	for magic, want := range map[uint16]string{0xD07E: "9.4", 0xD087: "9.5", 0xD093: "9.6",
		0xD097: "10", 0xD098: "11", 0xD101: "12", 0xD106: "13", 0xD10D: "14", 0xD110: "15",
		0xD113: "16", 0xD116: "17", 0xD118: "18"} {
		h := header(t, "000000010000000000000001", mb16)
		h.Magic = magic
		got, err := ParseLongHeader(encode(h))
		if err != nil {
			t.Errorf("magic %04X: %v", magic, err)
			continue
		}
		if got.Version() != want {
			t.Errorf("magic %04X: Version = %q, want %q", magic, got.Version(), want)
		}
	}
}

func TestParseLongHeaderBigEndian(t *testing.T) {
	h := header(t, "000000020000000300000004", mb16)
	h.BigEndian = true
	b := encode(h)
	if binary.BigEndian.Uint16(b) != 0xD110 {
		t.Fatalf("Encode did not write big-endian: % X", b[:2])
	}
	got, err := ParseLongHeader(b)
	if err != nil {
		t.Fatalf("ParseLongHeader: %v", err)
	}
	if got != h {
		t.Errorf("ParseLongHeader = %+v, want %+v", got, h)
	}
	if err := got.CheckName(mustName(t, "000000020000000300000004")); err != nil {
		t.Errorf("CheckName: %v", err)
	}
}

func TestParseLongHeaderRejects(t *testing.T) {
	good := func() LongHeader { return header(t, "000000010000000000000001", mb16) }
	tests := []struct {
		name  string
		bytes func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"short", func() []byte { return encode(good())[:LongHeaderSize-1] }},
		{"zeros", func() []byte { return make([]byte, 8192) }},
		{"unknown magic", func() []byte { h := good(); h.Magic = 0xD111; return encode(h) }},
		{"magic of 9.3", func() []byte { h := good(); h.Magic = 0xD075; return encode(h) }},
		{"short page header", func() []byte { h := good(); h.Info = 0; return encode(h) }},
		{"other flags only", func() []byte { h := good(); h.Info = 0x0005; return encode(h) }},
		{"timeline 0", func() []byte { h := good(); h.Timeline = 0; return encode(h) }},
		{"segment size 0", func() []byte { h := good(); h.SegSize = 0; return encode(h) }},
		{"segment size not a power of two", func() []byte { h := good(); h.SegSize = 3 << 20; return encode(h) }},
		{"segment size too small", func() []byte { h := good(); h.SegSize = 512 << 10; return encode(h) }},
		{"segment size too large", func() []byte { h := good(); h.SegSize = 2 << 30; return encode(h) }},
		{"block size 0", func() []byte { h := good(); h.BlockSize = 0; return encode(h) }},
		{"block size 512", func() []byte { h := good(); h.BlockSize = 512; return encode(h) }},
		{"block size 128k", func() []byte { h := good(); h.BlockSize = 128 << 10; return encode(h) }},
		{"block size not a power of two", func() []byte { h := good(); h.BlockSize = 8000; return encode(h) }},
		{"system identifier 0", func() []byte { h := good(); h.SysID = 0; return encode(h) }},
		{"mixed byte order", func() []byte {
			b := encode(good())
			binary.BigEndian.PutUint32(b[32:], mb16) // size written the other way round
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseLongHeader(tt.bytes())
			if err == nil {
				t.Fatalf("ParseLongHeader = %+v, want an error", h)
			}
			if !errors.Is(err, ErrBadHeader) {
				t.Errorf("error %v does not match ErrBadHeader", err)
			}
			var he *HeaderError
			if !errors.As(err, &he) || he.Reason == "" {
				t.Errorf("error %v is not a *HeaderError with a reason", err)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name   string
		header LongHeader
		file   string
		ok     bool
	}{
		{"matching", header(t, "000000010000000000000005", mb16), "000000010000000000000005", true},
		{"partial", header(t, "000000010000000000000005", mb16), "000000010000000000000005.partial", true},
		{"backup history names a segment too", header(t, "000000010000000000000005", mb16), "000000010000000000000005.00000028.backup", true},
		{"across a log boundary", header(t, "000000010000000100000000", mb16), "000000010000000100000000", true},
		{"recycled file with a stale page address", header(t, "000000010000000000000002", mb16), "000000010000000000000005", false},
		{"page address of the next log", header(t, "000000010000000100000005", mb16), "000000010000000000000005", false},
		{"first segment of a new timeline: older header timeline", header(t, "000000010000000000000005", mb16), "000000020000000000000005", true},
		{"header timeline newer than the name", header(t, "000000030000000000000005", mb16), "000000020000000000000005", false},
		{"segment index out of range for the header's size", header(t, "000000010000000000000001", mb64), "000000010000000000000040", false},
		{"history file", header(t, "000000010000000000000001", mb16), "00000001.history", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.header.CheckName(mustName(t, tt.file))
			if tt.ok && err != nil {
				t.Errorf("CheckName(%s): %v, want nil", tt.file, err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatalf("CheckName(%s) = nil, want an error", tt.file)
				}
				if !errors.Is(err, ErrBadHeader) {
					t.Errorf("error %v does not match ErrBadHeader", err)
				}
			}
		})
	}
}

func TestCheckNameSizes(t *testing.T) {
	// The same page address names different files for different sizes.
	for _, tt := range []struct {
		segSize uint32
		file    string
	}{
		{mb1, "000000010000000000000400"},
		{mb16, "000000010000000000000040"},
		{mb64, "000000010000000000000010"},
		{gb1, "000000010000000000000001"},
	} {
		h := header(t, "000000010000000000000001", tt.segSize)
		h.PageAddr = 1 << 30
		if err := h.CheckName(mustName(t, tt.file)); err != nil {
			t.Errorf("%s with %s segments: %v", tt.file, FormatSize(tt.segSize), err)
		}
	}
}
