package repo

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// How an object's bytes carry a WAL file, and how its integrity is checked
// on every read:
//
//   - lz4: one lz4 frame that must carry its content checksum (a frame
//     without one is refused), so `lz4 -d` reads it;
//   - none, in the walship layout of a repository of format 2 or later: the
//     file's bytes followed by a footer, one line of text that holds their
//     CRC-32C ("#walship crc32c=1a2b3c4d\n"), so a history file stays
//     readable text;
//   - none in the plain layout (and in format 1): the bare file, as cp
//     writes it; only its size and page header can be checked.

// Castagnoli is the CRC-32C table of every checksum walship computes.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	footerPrefix = "#walship crc32c="
	// FooterSize is the length of the footer of an uncompressed object.
	FooterSize = len(footerPrefix) + 8 + 1
)

// Footer is the checksum footer that follows the content of an
// uncompressed object whose CRC-32C is sum.
func Footer(sum uint32) []byte { return fmt.Appendf(nil, "%s%08x\n", footerPrefix, sum) }

// Sum is the CRC-32C of the size bytes of src, which is rewound to its
// start before and after.
func Sum(src io.ReadSeeker, size int64) (uint32, error) {
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	h := crc32.New(Castagnoli)
	n, err := io.CopyBuffer(h, io.LimitReader(src, size), make([]byte, copyBuf))
	if err != nil {
		return 0, err
	}
	if n != size {
		return 0, fmt.Errorf("source ended after %d of %d bytes", n, size)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// sealed is the size bytes of src followed by the footer of their
// checksum: an uncompressed object as it is stored. It rewinds, so that a
// put can be retried.
type sealed struct {
	src  io.ReadSeeker
	size int64
	foot []byte
	off  int64
}

func newSealed(src io.ReadSeeker, size int64, sum uint32) *sealed {
	return &sealed{src: src, size: size, foot: Footer(sum)}
}

func (s *sealed) Len() int64 { return s.size + int64(len(s.foot)) }

func (s *sealed) Read(p []byte) (int, error) {
	if s.off < s.size {
		if rest := s.size - s.off; int64(len(p)) > rest {
			p = p[:rest]
		}
		n, err := s.src.Read(p)
		s.off += int64(n)
		if err == io.EOF && s.off < s.size {
			return n, io.ErrUnexpectedEOF
		}
		if err == io.EOF {
			err = nil
		}
		return n, err
	}
	i := s.off - s.size
	if i >= int64(len(s.foot)) {
		return 0, io.EOF
	}
	n := copy(p, s.foot[i:])
	s.off += int64(n)
	return n, nil
}

func (s *sealed) Seek(offset int64, whence int) (int64, error) {
	if offset != 0 || whence != io.SeekStart {
		return 0, errors.New("sealed object: only a rewind is supported")
	}
	if _, err := s.src.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	s.off = 0
	return 0, nil
}

// unsealer reads an uncompressed object and delivers the file's bytes,
// holding back the trailer at their end (head, then the footer); at the end
// it checks the footer against the CRC-32C of what it delivered. head is
// empty for an uncompressed object, and lz4's skippable-frame header for a
// frame made by the server (blob.go).
type unsealer struct {
	r    *bufio.Reader
	key  string
	head []byte
	h    hash.Hash32
	done bool
	err  error // the end: io.EOF, or what is wrong with the trailer
}

func newUnsealer(r io.Reader, key string) *unsealer { return newTrailed(r, key, nil) }

func newTrailed(r io.Reader, key string, head []byte) *unsealer {
	return &unsealer{r: bufio.NewReaderSize(r, copyBuf), key: key, head: head, h: crc32.New(Castagnoli)}
}

func (u *unsealer) Read(p []byte) (int, error) {
	if u.done {
		return 0, u.err
	}
	size := len(u.head) + FooterSize
	// Make sure more than a trailer is buffered, or the end is reached.
	buf, err := u.r.Peek(size + 1)
	if err != nil && err != io.EOF {
		return 0, err
	}
	if len(buf) > size {
		// Everything buffered but the last size bytes is content.
		n := min(u.r.Buffered()-size, len(p))
		n, _ = u.r.Read(p[:n])
		u.h.Write(p[:n])
		return n, nil
	}
	// The end: what is left must be the trailer of what was read.
	u.done = true
	u.err = u.check(buf)
	return 0, u.err
}

func (u *unsealer) check(buf []byte) error {
	foot, ok := bytes.CutPrefix(buf, u.head)
	if len(buf) < len(u.head)+FooterSize || !ok || !bytes.HasPrefix(foot, []byte(footerPrefix)) || foot[FooterSize-1] != '\n' {
		return &CorruptError{Key: u.key, Reason: "no checksum footer (truncated, or not written by walship)"}
	}
	var want uint32
	if _, err := fmt.Sscanf(string(foot[len(footerPrefix):FooterSize-1]), "%08x", &want); err != nil {
		return &CorruptError{Key: u.key, Reason: "unreadable checksum footer"}
	}
	if got := u.h.Sum32(); got != want {
		return &CorruptError{Key: u.key, Reason: fmt.Sprintf("checksum mismatch: content has CRC-32C %08x, the footer says %08x", got, want)}
	}
	return io.EOF
}

// lz4 frame header: the magic number, then the flags byte, whose bit 2
// says a content checksum follows the frame.
const (
	lz4Magic        = 0x184D2204
	lz4FlagChecksum = 0x04
)

// peekFrame reads, without consuming them, the first bytes of br: whether
// they start an lz4 frame, and whether that frame carries a content
// checksum.
func peekFrame(br *bufio.Reader) (isLZ4, checksummed bool, err error) {
	head, err := br.Peek(5)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, false, err
	}
	if len(head) < 5 || binary.LittleEndian.Uint32(head) != lz4Magic {
		return false, false, nil
	}
	return true, head[4]&lz4FlagChecksum != 0, nil
}

// newLZ4Reader decodes one lz4 frame, refusing a frame that does not carry
// a content checksum: without one, damage could go unnoticed.
func newLZ4Reader(body io.Reader, key string) (io.Reader, error) {
	br := bufio.NewReaderSize(body, copyBuf)
	isLZ4, checksummed, err := peekFrame(br)
	if err != nil {
		return nil, err
	}
	if !isLZ4 {
		return nil, &CorruptError{Key: key, Reason: "not an lz4 frame"}
	}
	if !checksummed {
		return nil, &CorruptError{Key: key, Reason: "lz4 frame without a content checksum"}
	}
	return lz4.NewReader(br), nil
}

// Encode returns the object bytes for data under codec c, sealed with a
// checksum footer when seal is set (an uncompressed object of the walship
// layout).
func Encode(c Codec, data []byte, seal bool) ([]byte, error) {
	if c == CodecLZ4 {
		return encodeLZ4(bytes.NewReader(data), int64(len(data)))
	}
	if !seal {
		return data, nil
	}
	return append(append([]byte(nil), data...), Footer(crc32.Checksum(data, Castagnoli))...), nil
}

// encodeLZ4 compresses size bytes from src into one lz4 frame with a
// content checksum and the content size in its header.
func encodeLZ4(src io.Reader, size int64) ([]byte, error) {
	// Room for the worst case up front: growing the buffer would copy
	// and clear megabytes, and pages of a fresh allocation cost nothing
	// until they are written.
	buf := bytes.NewBuffer(make([]byte, 0, lz4Bound(size)))
	if err := encodeLZ4To(buf, src, size); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lz4Buffers keeps the buffers of compressed segments a process that
// pushes one segment after another (the look-ahead worker) has finished
// with: a buffer of a fresh allocation is cleared before use, megabytes
// each time, once the memory has been used before.
var lz4Buffers sync.Pool

// pooledMax bounds the buffers kept: those of 64MB segments and smaller.
var pooledMax = lz4Bound(64 << 20)

// encodeLZ4Pooled is encodeLZ4 into a buffer from lz4Buffers; release
// hands it back once the bytes are no longer read.
func encodeLZ4Pooled(src io.Reader, size int64) (obj []byte, release func(), err error) {
	need := lz4Bound(size)
	buf, _ := lz4Buffers.Get().(*bytes.Buffer)
	if buf == nil || buf.Cap() < need {
		buf = bytes.NewBuffer(make([]byte, 0, need))
	}
	buf.Reset()
	release = func() {
		if buf.Cap() <= pooledMax {
			lz4Buffers.Put(buf)
		}
	}
	if err := encodeLZ4To(buf, src, size); err != nil {
		release()
		return nil, nil, err
	}
	return buf.Bytes(), release, nil
}

// newLZ4Writer is the one lz4 frame writer of every object walship
// compresses (segments, backups): a frame with a content checksum, and the
// content size in its header when it is known (size >= 0).
func newLZ4Writer(dst io.Writer, size int64) (*lz4.Writer, error) {
	w := lz4.NewWriter(dst)
	opts := []lz4.Option{lz4.ChecksumOption(true), lz4.BlockSizeOption(lz4.Block256Kb), lz4.ConcurrencyOption(compressWorkers())}
	if size >= 0 {
		opts = append(opts, lz4.SizeOption(uint64(size)))
	}
	if err := w.Apply(opts...); err != nil {
		return nil, err
	}
	return w, nil
}

// encodeLZ4To writes the frame encodeLZ4 makes to dst as it is compressed.
func encodeLZ4To(dst io.Writer, src io.Reader, size int64) error {
	w, err := newLZ4Writer(dst, size)
	if err != nil {
		return err
	}
	n, err := w.ReadFrom(io.LimitReader(src, size))
	if err != nil {
		w.Close()
		return err
	}
	if n != size {
		w.Close()
		return fmt.Errorf("source ended after %d of %d bytes", n, size)
	}
	return w.Close()
}

// lz4Bound is the largest frame encodeLZ4 can produce for size bytes: an
// incompressible block is stored as it is, behind a 4-byte length.
func lz4Bound(size int64) int {
	const block = 256 << 10
	return int(size + (size/block+1)*4 + 64)
}

// compressWorkers is how many blocks are compressed at once: every core
// the process may use, at most four (a segment has 64 blocks).
func compressWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }
