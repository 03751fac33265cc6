package repo

import (
	"reflect"
	"testing"

	"github.com/walship/walship/wal"
)

func parseName(t testing.TB, s string) wal.Name {
	t.Helper()
	n, err := wal.ParseName(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestKey(t *testing.T) {
	tests := []struct {
		layout Layout
		name   string
		codec  Codec
		want   string
	}{
		{LayoutWalship, "000000010000000000000003", CodecLZ4, "wal/0000000100000000/000000010000000000000003.lz4"},
		{LayoutWalship, "000000010000000000000003", CodecNone, "wal/0000000100000000/000000010000000000000003"},
		{LayoutWalship, "0000000200000016000000B3", CodecLZ4, "wal/0000000200000016/0000000200000016000000B3.lz4"},
		{LayoutWalship, "000000010000000000000003.partial", CodecLZ4, "wal/0000000100000000/000000010000000000000003.partial.lz4"},
		{LayoutWalship, "000000010000000000000002.00000028.backup", CodecLZ4, "wal/0000000100000000/000000010000000000000002.00000028.backup"},
		{LayoutWalship, "00000002.history", CodecLZ4, "wal/00000002.history"},
		{LayoutWalship, "00000002.history", CodecNone, "wal/00000002.history"},
		{LayoutPlain, "000000010000000000000003", CodecNone, "000000010000000000000003"},
		{LayoutPlain, "000000010000000000000003", CodecLZ4, "000000010000000000000003.lz4"},
		{LayoutPlain, "000000010000000000000003.partial", CodecNone, "000000010000000000000003.partial"},
		{LayoutPlain, "000000010000000000000002.00000028.backup", CodecLZ4, "000000010000000000000002.00000028.backup"},
		{LayoutPlain, "00000002.history", CodecLZ4, "00000002.history"},
	}
	for _, tt := range tests {
		if got := Key(tt.layout, parseName(t, tt.name), tt.codec); got != tt.want {
			t.Errorf("Key(%s, %s, %s) = %q, want %q", tt.layout, tt.name, tt.codec, got, tt.want)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	names := []string{
		"000000010000000000000001",
		"0000000A00000016000000B3",
		"000000010000000100000000",
		"000000010000000000000003.partial",
		"000000010000000000000002.00000028.backup",
		"00000002.history",
		"FFFFFFFF.history",
	}
	for _, l := range []Layout{LayoutWalship, LayoutPlain} {
		for _, s := range names {
			for _, c := range []Codec{CodecLZ4, CodecNone} {
				n := parseName(t, s)
				key := Key(l, n, c)
				gotN, gotC, gotL, ok := ParseKey(key)
				if !ok {
					t.Errorf("ParseKey(%q) not ok", key)
					continue
				}
				wantC := c
				if !Compressible(n.Kind) {
					wantC = CodecNone // text files are never compressed
				}
				if gotN != n || gotC != wantC || gotL != l {
					t.Errorf("ParseKey(%q) = %v, %s, %s; want %v, %s, %s", key, gotN, gotC, gotL, n, wantC, l)
				}
			}
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, key := range []string{
		"",
		IdentityKey,
		"wal/" + IdentityKey,
		"README",
		"wal/",
		"wal/0000000100000000/",
		// The directory must agree with the name.
		"wal/0000000100000001/000000010000000000000001",
		"wal/0000000200000000/000000010000000000000001.lz4",
		"wal/0000000100000000/000000020000000000000001.partial",
		"wal/0000000100000000/00000001.history",
		"wal/0000000100000000/x/000000010000000000000001",
		"wal/00000001/000000010000000000000001",
		"wal/0000000100000000/000000010000000100000001.00000028.backup",
		// A segment belongs in its directory, never directly in wal/.
		"wal/000000010000000000000001",
		"wal/000000010000000000000001.lz4",
		// History and backup history files are never compressed.
		"00000002.history.lz4",
		"wal/00000002.history.lz4",
		"000000010000000000000002.00000028.backup.lz4",
		"wal/0000000100000000/000000010000000000000002.00000028.backup.lz4",
		// Not names.
		"000000010000000000000001.lz4.lz4",
		"000000010000000000000001.gz",
		"00000001000000000000000a",
		"x/000000010000000000000001",
		".000000010000000000000001.tmp-123",
		"wal/0000000100000000/.000000010000000000000001.lz4.tmp-1",
	} {
		if n, c, l, ok := ParseKey(key); ok {
			t.Errorf("ParseKey(%q) = %v, %s, %s, ok; want not ok", key, n, c, l)
		}
	}
}

func TestCandidates(t *testing.T) {
	seg := parseName(t, "000000010000000000000003")
	hist := parseName(t, "00000002.history")
	backup := parseName(t, "000000010000000000000002.00000028.backup")
	const d = "wal/0000000100000000/"
	tests := []struct {
		name   string
		layout Layout
		n      wal.Name
		want   []Location
	}{
		{"walship segment: compressed first", LayoutWalship, seg, []Location{
			{Key: d + "000000010000000000000003.lz4", Codec: CodecLZ4},
			{Key: d + "000000010000000000000003", Codec: CodecNone}}},
		{"plain segment: as cp writes it first", LayoutPlain, seg, []Location{
			{Key: "000000010000000000000003", Codec: CodecNone},
			{Key: "000000010000000000000003.lz4", Codec: CodecLZ4}}},
		{"auto segment: walship layout, then plain", LayoutAuto, seg, []Location{
			{Key: d + "000000010000000000000003.lz4", Codec: CodecLZ4},
			{Key: d + "000000010000000000000003", Codec: CodecNone},
			{Key: "000000010000000000000003", Codec: CodecNone},
			{Key: "000000010000000000000003.lz4", Codec: CodecLZ4}}},
		{"walship history", LayoutWalship, hist, []Location{{Key: "wal/00000002.history", Codec: CodecNone}}},
		{"plain history", LayoutPlain, hist, []Location{{Key: "00000002.history", Codec: CodecNone}}},
		{"auto history", LayoutAuto, hist, []Location{
			{Key: "wal/00000002.history", Codec: CodecNone},
			{Key: "00000002.history", Codec: CodecNone}}},
		{"auto backup", LayoutAuto, backup, []Location{
			{Key: d + "000000010000000000000002.00000028.backup", Codec: CodecNone},
			{Key: "000000010000000000000002.00000028.backup", Codec: CodecNone}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Candidates(tt.layout, tt.n); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Candidates = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseCodecAndLayout(t *testing.T) {
	for in, want := range map[string]Codec{"": CodecLZ4, "lz4": CodecLZ4, "none": CodecNone} {
		if got, err := ParseCodec(in); err != nil || got != want {
			t.Errorf("ParseCodec(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"gzip", "LZ4", "zstd"} {
		if _, err := ParseCodec(in); err == nil {
			t.Errorf("ParseCodec(%q) = nil error", in)
		}
	}
	for in, want := range map[string]Layout{"": LayoutAuto, "auto": LayoutAuto, "walship": LayoutWalship, "plain": LayoutPlain} {
		if got, err := ParseLayout(in); err != nil || got != want {
			t.Errorf("ParseLayout(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"flat", "Plain", "wal-g"} {
		if _, err := ParseLayout(in); err == nil {
			t.Errorf("ParseLayout(%q) = nil error", in)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	for _, k := range []string{
		"wal/0000000100000000/000000010000000000000003.lz4",
		"wal/00000002.history",
		"000000010000000000000003",
		"000000010000000000000003.partial.lz4",
		"wal/0000000100000000/000000010000000000000002.00000028.backup",
		"wal/0000000100000001/000000010000000000000001",
		IdentityKey,
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		n, c, l, ok := ParseKey(key)
		if !ok {
			return
		}
		// Every key ParseKey accepts is the one Key builds for it, so List
		// never reports an object that Open cannot find.
		if got := Key(l, n, c); got != key {
			t.Fatalf("ParseKey(%q) = %v, %s, %s, but Key gives %q", key, n, c, l, got)
		}
	})
}
