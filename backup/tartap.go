package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// tarTap passes a tar stream through unchanged while it reads the headers
// as they go by: it keeps the content of a few small files (backup_label,
// tablespace_map), counts the files, and at the end of the stream refuses
// a tar that stops before its end-of-archive blocks: a pg_basebackup that
// died half-way closes its pipe as if the tar were complete.
type tarTap struct {
	r    io.Reader
	keep map[string][]byte // name -> content, for the names asked for

	hdr      [blockSize]byte
	inHdr    int   // bytes of the current header block read so far
	left     int64 // bytes of content (and padding) still to skip
	capture  *bytes.Buffer
	capName  string
	capLeft  int64 // content bytes still to capture
	zeros    int   // consecutive zero header blocks
	files    int
	err      error
	finished bool
}

const blockSize = 512

// maxCapture bounds a file kept by the tap.
const maxCapture = 1 << 20

func newTarTap(r io.Reader, keep ...string) *tarTap {
	t := &tarTap{r: r, keep: map[string][]byte{}}
	for _, k := range keep {
		t.keep[k] = nil
	}
	return t
}

// errTruncatedTar is the end of a stream before the end of its tar.
var errTruncatedTar = errors.New("the tar stream ended before its end-of-archive marker (pg_basebackup stopped half-way?)")

func (t *tarTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && t.err == nil {
		t.err = t.scan(p[:n])
	}
	if t.err != nil {
		return n, t.err
	}
	if err == io.EOF && !t.complete() {
		return n, errTruncatedTar
	}
	return n, err
}

// complete: the stream is at a block boundary after two zero blocks.
func (t *tarTap) complete() bool { return t.zeros >= 2 && t.inHdr == 0 && t.left == 0 }

// Kept returns the content of a file asked for, and whether it was seen.
func (t *tarTap) Kept(name string) ([]byte, bool) {
	b, ok := t.keep[name]
	return b, ok && b != nil
}

func (t *tarTap) scan(p []byte) error {
	for len(p) > 0 {
		if t.left > 0 {
			k := int(min(int64(len(p)), t.left))
			if t.capture != nil && t.capLeft > 0 {
				c := int(min(int64(k), t.capLeft))
				t.capture.Write(p[:c])
				t.capLeft -= int64(c)
				if t.capLeft == 0 {
					t.keep[t.capName] = t.capture.Bytes()
					t.capture = nil
				}
			}
			p = p[k:]
			t.left -= int64(k)
			continue
		}
		k := copy(t.hdr[t.inHdr:], p)
		t.inHdr += k
		p = p[k:]
		if t.inHdr < blockSize {
			return nil
		}
		t.inHdr = 0
		if err := t.header(); err != nil {
			return err
		}
	}
	return nil
}

// header handles one complete header block.
func (t *tarTap) header() error {
	if t.hdr == [blockSize]byte{} {
		t.zeros++
		return nil
	}
	if t.zeros >= 2 {
		return fmt.Errorf("data after the end of the tar archive")
	}
	t.zeros = 0
	size, err := tarNumber(t.hdr[124:136])
	if err != nil {
		return fmt.Errorf("bad tar header: size: %w", err)
	}
	name := cString(t.hdr[0:100])
	if string(t.hdr[257:262]) == "ustar" {
		if prefix := cString(t.hdr[345:500]); prefix != "" {
			name = prefix + "/" + name
		}
	}
	typ := t.hdr[156]
	switch typ {
	case '0', 0, '7':
		t.files++
		if _, want := t.keep[name]; want && size <= maxCapture {
			t.capture, t.capName, t.capLeft = &bytes.Buffer{}, name, size
			if size == 0 {
				t.keep[name] = []byte{}
				t.capture = nil
			}
		}
	case '1', '2', '3', '4', '5', '6', 'x', 'g', 'L', 'K':
	default:
		return fmt.Errorf("bad tar header: entry type %q of %q", typ, name)
	}
	t.left = (size + blockSize - 1) / blockSize * blockSize
	return nil
}

// tarNumber reads a numeric header field: octal digits, or base-256 when
// the first byte has its high bit set (sizes past 8 GiB).
func tarNumber(b []byte) (int64, error) {
	if len(b) > 0 && b[0]&0x80 != 0 {
		var n int64
		for i, c := range b {
			if i == 0 {
				c &= 0x7f
			}
			if n > (1<<55)-1 {
				return 0, errors.New("too large")
			}
			n = n<<8 | int64(c)
		}
		return n, nil
	}
	s := strings.Trim(string(b), " \x00")
	if s == "" {
		return 0, nil
	}
	return strconv.ParseInt(s, 8, 64)
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
