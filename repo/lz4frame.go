package repo

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// frameDecoder decodes the lz4 frames the server compresses a base backup
// into (pg_basebackup --compress=server-lz4): linked blocks (each may refer
// to the 64 KiB before it) and no content checksum. lz4.Reader decodes them
// too, but copies each block into a newly allocated window, which costs
// more than the decoding; here the window is the decoded bytes themselves,
// kept in one buffer that is slid back now and then. The blocks are
// decoded by the lz4 package.
//
// It reads one frame, or several one after another, skippable frames
// between them skipped, to the end of its input. The frame format's own
// checksums (header, block and content checksums) are xxh32, which the lz4
// package does not offer: the header's is not checked, and a frame that
// carries a content checksum is refused (lz4.Reader checks those, see
// newBlobDecoder); the object's CRC-32C (frameTrailer) covers its bytes.
type frameDecoder struct {
	r        *bufio.Reader
	inFrame  bool
	linked   bool
	blockSum bool
	maxBlock int
	size     int64 // the frame's content size from its header, or -1
	got      int64 // decoded bytes of the frame so far
	hist     []byte
	out      []byte // decoded, not yet read: the end of hist
	block    []byte
	err      error
}

const (
	lz4Window     = 64 << 10
	lz4SkipMask   = 0xFFFFFFF0
	lz4Version    = 0x40
	lz4FlagIndep  = 0x20
	lz4FlagBlkSum = 0x10
	lz4FlagSize   = 0x08
	lz4FlagDict   = 0x01
	lz4Raw        = 0x80000000 // a block stored uncompressed
)

func newFrameDecoder(r io.Reader) *frameDecoder {
	return &frameDecoder{r: bufio.NewReaderSize(r, copyBuf)}
}

// errFrame is a stream that is not what frameDecoder reads.
type errFrame string

func (e errFrame) Error() string { return "lz4: " + string(e) }

func (d *frameDecoder) Read(p []byte) (int, error) {
	for len(d.out) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.next()
	}
	n := copy(p, d.out)
	d.out = d.out[n:]
	return n, nil
}

// next decodes the next block into d.out, or reads a frame's header or
// end; io.EOF after the end of the last frame.
func (d *frameDecoder) next() error {
	if !d.inFrame {
		return d.header()
	}
	var b [4]byte
	if _, err := io.ReadFull(d.r, b[:]); err != nil {
		return unexpected(err)
	}
	v := binary.LittleEndian.Uint32(b[:])
	if v == 0 { // the end mark
		d.inFrame = false
		if d.size >= 0 && d.got != d.size {
			return errFrame(fmt.Sprintf("the frame holds %d bytes, its header says %d", d.got, d.size))
		}
		return nil
	}
	n := int(v &^ lz4Raw)
	if n > d.maxBlock {
		return errFrame(fmt.Sprintf("a block of %d bytes in a frame of blocks of %d", n, d.maxBlock))
	}
	if cap(d.block) < n {
		d.block = make([]byte, d.maxBlock)
	}
	blk := d.block[:n]
	if _, err := io.ReadFull(d.r, blk); err != nil {
		return unexpected(err)
	}
	if d.blockSum {
		if _, err := d.r.Discard(4); err != nil {
			return unexpected(err)
		}
	}
	if !d.linked {
		d.hist = d.hist[:0] // no window to keep
	}
	// Room for the block after the window: slide the window back to the
	// start of the buffer when the end is near.
	if len(d.hist)+d.maxBlock > cap(d.hist) {
		if cap(d.hist) < lz4Window+2*d.maxBlock {
			d.hist = make([]byte, 0, lz4Window+2*d.maxBlock)
		} else {
			keep := min(len(d.hist), lz4Window)
			d.hist = d.hist[:copy(d.hist[:cap(d.hist)], d.hist[len(d.hist)-keep:])]
		}
	}
	at := len(d.hist)
	dst := d.hist[at : at+d.maxBlock : at+d.maxBlock]
	var k int
	if v&lz4Raw != 0 {
		k = copy(dst, blk)
	} else {
		var dict []byte
		if d.linked {
			dict = d.hist[max(0, at-lz4Window):at]
		}
		var err error
		if k, err = lz4.UncompressBlockWithDict(blk, dst, dict); err != nil {
			return errFrame("a block does not decode: " + err.Error())
		}
	}
	d.hist = d.hist[:at+k]
	d.out = d.hist[at:]
	d.got += int64(k)
	return nil
}

// header reads a frame's header, skipping skippable frames before it;
// io.EOF at the end of the input.
func (d *frameDecoder) header() error {
	var b [4]byte
	for {
		if _, err := io.ReadFull(d.r, b[:]); err == io.EOF {
			return io.EOF
		} else if err != nil {
			return unexpected(err)
		}
		magic := binary.LittleEndian.Uint32(b[:])
		if magic == lz4Magic {
			break
		}
		if magic&lz4SkipMask != skippableMagic {
			return errFrame("not an lz4 frame")
		}
		if _, err := io.ReadFull(d.r, b[:]); err != nil {
			return unexpected(err)
		}
		if _, err := d.r.Discard(int(binary.LittleEndian.Uint32(b[:]))); err != nil {
			return unexpected(err)
		}
	}
	var fd [2]byte
	if _, err := io.ReadFull(d.r, fd[:]); err != nil {
		return unexpected(err)
	}
	flg, bd := fd[0], fd[1]
	switch {
	case flg&0xC0 != lz4Version || flg&0x02 != 0 || bd&0x8F != 0:
		return errFrame("an unknown frame version or reserved bits set")
	case flg&lz4FlagChecksum != 0:
		return errFrame("a frame with a content checksum (read by the lz4 reader)")
	case flg&lz4FlagDict != 0:
		return errFrame("a frame that needs a dictionary")
	}
	id := int(bd>>4) & 7
	if id < 4 {
		return errFrame("an unknown block size")
	}
	d.maxBlock = 1 << (8 + 2*id) // 4: 64 KiB ... 7: 4 MiB
	d.linked, d.blockSum = flg&lz4FlagIndep == 0, flg&lz4FlagBlkSum != 0
	d.size, d.got = -1, 0
	if flg&lz4FlagSize != 0 {
		var s [8]byte
		if _, err := io.ReadFull(d.r, s[:]); err != nil {
			return unexpected(err)
		}
		d.size = int64(binary.LittleEndian.Uint64(s[:]))
	}
	if _, err := d.r.Discard(1); err != nil { // the header checksum
		return unexpected(err)
	}
	d.hist = d.hist[:0]
	d.inFrame = true
	return nil
}

// unexpected is the end of the input inside a frame.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
