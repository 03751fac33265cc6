package repo

import (
	"fmt"
	"strings"

	"github.com/walship/walship/wal"
)

// Codec is how an object's bytes encode the WAL file.
type Codec string

const (
	// CodecLZ4 is an lz4 frame with a content checksum and size; `lz4 -d`
	// decodes it.
	CodecLZ4 Codec = "lz4"
	// CodecNone stores the file as it is.
	CodecNone Codec = "none"
)

// ParseCodec checks a --compress value.
func ParseCodec(s string) (Codec, error) {
	switch c := Codec(s); c {
	case CodecLZ4, CodecNone:
		return c, nil
	case "":
		return CodecLZ4, nil
	}
	return "", fmt.Errorf("unknown compression %q: use lz4 or none", s)
}

// Compressible reports whether files of this kind are stored compressed
// when asked to; history and backup history files are small text and are
// always kept readable.
func Compressible(k wal.Kind) bool { return k == wal.KindSegment || k == wal.KindPartial }

// Key is the storage key of name in the layout with the codec.
func Key(l Layout, n wal.Name, c Codec) string {
	base := n.String()
	if c == CodecLZ4 && Compressible(n.Kind) {
		base += ".lz4"
	}
	if l == LayoutPlain {
		return base
	}
	if n.Kind == wal.KindHistory {
		return "wal/" + base
	}
	return fmt.Sprintf("wal/%08X%08X/%s", n.Timeline, n.Log, base)
}

// Location is where one WAL file may be stored, and how its object is
// encoded there.
type Location struct {
	Key       string
	Codec     Codec
	Sealed    bool // an uncompressed object with a checksum footer
	Encrypted bool // encrypted with age (crypt.go)
}

// Candidates lists where name may be stored in layout l, in the order to
// look: the layout's own places first. LayoutAuto looks in both layouts.
func Candidates(l Layout, n wal.Name) []Location {
	var out []Location
	layouts := []Layout{l}
	if l == LayoutAuto {
		layouts = []Layout{LayoutWalship, LayoutPlain}
	}
	for _, l := range layouts {
		codecs := []Codec{CodecNone}
		if Compressible(n.Kind) {
			codecs = []Codec{CodecLZ4, CodecNone}
			if l == LayoutPlain {
				codecs = []Codec{CodecNone, CodecLZ4}
			}
		}
		for _, c := range codecs {
			out = append(out, Location{Key: Key(l, n, c), Codec: c})
		}
	}
	return out
}

// ParseKey is the inverse of Key: the WAL file a key holds and its codec.
// ok is false for keys that hold no WAL file (the identity file, stray
// objects).
func ParseKey(key string) (n wal.Name, c Codec, l Layout, ok bool) {
	l = LayoutPlain
	if rest, found := strings.CutPrefix(key, "wal/"); found {
		l = LayoutWalship
		key = rest
		if dir, base, hasDir := strings.Cut(key, "/"); hasDir {
			key = base
			defer func() {
				// The directory must agree with the name.
				if ok && (n.Kind == wal.KindHistory || dir != fmt.Sprintf("%08X%08X", n.Timeline, n.Log)) {
					ok = false
				}
			}()
		} else {
			defer func() {
				// Only history files live directly under wal/.
				if ok && n.Kind != wal.KindHistory {
					ok = false
				}
			}()
		}
	}
	c = CodecNone
	if base, found := strings.CutSuffix(key, ".lz4"); found {
		key, c = base, CodecLZ4
	}
	n, err := wal.ParseName(key)
	if err != nil || (c == CodecLZ4 && !Compressible(n.Kind)) {
		return wal.Name{}, "", "", false
	}
	return n, c, l, true
}
