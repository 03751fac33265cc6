package repo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// The frames in testdata were written by the lz4 program, from
// frameContent, as the server writes a backup's (linked blocks, no
// content checksum):
//
//	lz4 -BD -B4 --no-frame-crc content linked.lz4
//	lz4 -BD -BX -B4 --content-size --no-frame-crc content linked-sums.lz4
//
// (64 KiB blocks; the second with block checksums and the content size).
func frameContent() []byte {
	var b bytes.Buffer
	for i := range 20000 {
		fmt.Fprintf(&b, "%08d some row text that repeats\n", i%500)
	}
	return b.Bytes()
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameDecoderLinkedBlocks(t *testing.T) {
	want := frameContent()
	for _, name := range []string{"linked.lz4", "linked-sums.lz4"} {
		frame := fixture(t, name)
		if frame[4]&lz4FlagIndep != 0 {
			t.Fatalf("%s: independent blocks, want linked ones", name)
		}
		got, err := io.ReadAll(newFrameDecoder(bytes.NewReader(frame)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: decoded %d bytes, %v; want the %d of the content", name, len(got), err, len(want))
		}
		// As the lz4 package decodes it.
		if ref, err := io.ReadAll(lz4.NewReader(bytes.NewReader(frame))); err != nil || !bytes.Equal(ref, want) {
			t.Errorf("%s: the lz4 package reads %d bytes, %v", name, len(ref), err)
		}
	}
	// Frames one after another, a skippable frame between, with reads of
	// every size.
	skip := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, skippableMagic+3), 5)
	stream := append(append(append(fixture(t, "linked.lz4"), skip...), "12345"...), fixture(t, "linked-sums.lz4")...)
	d := newFrameDecoder(bytes.NewReader(stream))
	var got []byte
	buf := make([]byte, 70000)
	for i := 1; ; i = i*3 + 1 {
		n, err := d.Read(buf[:min(i, len(buf))])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > len(buf) {
			i = 1
		}
	}
	if !bytes.Equal(got, append(append([]byte(nil), want...), want...)) {
		t.Errorf("two frames: decoded %d bytes, want twice %d", len(got), len(want))
	}
	// Independent blocks, as lz4.Writer makes them.
	data := tarLike(1<<20 + 5)
	got, err := io.ReadAll(newFrameDecoder(bytes.NewReader(serverFrame(t, data))))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("independent blocks: decoded %d bytes, %v", len(got), err)
	}
}

// A stream that is not whole frames is never read as a shorter content.
func TestFrameDecoderRefuses(t *testing.T) {
	frame := fixture(t, "linked-sums.lz4")
	sized := append([]byte(nil), frame...)
	sized[6]++ // the content size in the header (its checksum is not checked)
	withSum, err := encodeLZ4(bytes.NewReader(frameContent()), int64(len(frameContent())))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty frame header":   frame[:4],
		"cut in the header":    frame[:6],
		"cut in a block":       frame[:len(frame)/2],
		"no end mark":          frame[:len(frame)-4],
		"junk after":           append(append([]byte(nil), frame...), "junk"...),
		"wrong content size":   sized,
		"not lz4":              []byte("hello, world"),
		"a content checksum":   withSum,
		"a block too large":    append(append([]byte(nil), frame[:15]...), 0xff, 0xff, 0x01, 0x00),
		"a block that is junk": append(append([]byte(nil), frame[:15]...), 0x10, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0),
	}
	for what, b := range cases {
		got, err := io.ReadAll(newFrameDecoder(bytes.NewReader(b)))
		if err == nil {
			t.Errorf("%s: read %d bytes without an error", what, len(got))
		}
		var fe errFrame
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &fe) {
			t.Errorf("%s: %v, want a frame error or an unexpected end", what, err)
		}
	}
	if got, err := io.ReadAll(newFrameDecoder(bytes.NewReader(nil))); err != nil || len(got) != 0 {
		t.Errorf("no input: %d bytes, %v; want none and no error", len(got), err)
	}
}
