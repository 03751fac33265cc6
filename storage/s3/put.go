package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walship/walship/storage"
)

// Put implements storage.Backend. Objects up to the multipart threshold go
// up in one conditional PutObject; larger ones in parts, checked for the
// key first (so a taken key is refused before a long upload) and completed
// conditionally. An upload that fails is aborted, so nothing is visible.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := b.objectKey(key)
	if err != nil {
		return &storage.Error{Op: "put", Key: key, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return &storage.Error{Op: "put", Key: key, Err: err}
	}
	src := newSource(r, size)
	p, small, err := src.whole(b.threshold)
	if err != nil {
		return &storage.Error{Op: "put", Key: key, Err: err}
	}
	if small {
		err = b.putObject(ctx, key, k, p)
	} else {
		err = b.putMultipart(ctx, key, k, src)
	}
	if err == nil {
		src.finish()
	}
	return err
}

// conditional reports whether writes may use If-None-Match.
func (b *Backend) conditional() bool { return !b.cfg.NoConditionalPut && !b.noConditional.Load() }

// notConditional records that the store does not do conditional writes.
func (b *Backend) notConditional() {
	if b.noConditional.CompareAndSwap(false, true) {
		b.log.Warn("the S3 store does not support conditional writes (If-None-Match); checking for the key before each write instead, which two writers of the same key at the same moment can race",
			"repo", b.String())
	}
}

func (b *Backend) putObject(ctx context.Context, key, k string, p piece) error {
	in := &s3.PutObjectInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k),
		Body: p.body, ContentLength: aws.Int64(p.n), ChecksumCRC32C: aws.String(p.checksum()),
	}
	if b.cfg.StorageClass != "" {
		in.StorageClass = types.StorageClass(b.cfg.StorageClass)
	}
	if b.cfg.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(b.cfg.SSE)
	}
	if b.cfg.SSEKMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(b.cfg.SSEKMSKeyID)
	}
	if b.conditional() {
		in.IfNoneMatch = aws.String("*")
		out, err := b.send(ctx, in, p)
		if err == nil {
			return b.confirm(ctx, key, k, p, in, out)
		}
		if !isNotImplemented(err) {
			return b.wrapPut(key, err)
		}
		b.notConditional()
		if _, err := p.body.Seek(0, io.SeekStart); err != nil {
			return &storage.Error{Op: "put", Key: key, Err: err}
		}
		in.IfNoneMatch = nil
	}
	// Check, then write. This is not atomic: a second writer of the same
	// key between our HeadObject and our PutObject would be overwritten,
	// or overwrite us. WAL file names are written by one server, so this
	// only matters with two primaries archiving into one repository, which
	// the identity file already refuses.
	if err := b.absent(ctx, key, k); err != nil {
		return err
	}
	out, err := b.send(ctx, in, p)
	if err != nil {
		return b.wrapPut(key, err)
	}
	return b.confirm(ctx, key, k, p, in, out)
}

// send makes the PutObject call. A store that refuses the CRC-32C header
// (Backblaze B2 and Cloudflare R2 have refused checksum headers they did
// not know, naming them) is sent the bytes again with a Content-MD5, which
// every store checks.
func (b *Backend) send(ctx context.Context, in *s3.PutObjectInput, p piece) (*s3.PutObjectOutput, error) {
	out, err := b.client.PutObject(ctx, in, b.payload)
	if err == nil || in.ContentMD5 != nil || !checksumRefused(err) {
		return out, err
	}
	b.log.Debug("the S3 store refused the CRC-32C header; sending a Content-MD5 instead", "repo", b.String(), "err", err)
	sum, serr := p.md5()
	if serr != nil {
		return nil, serr
	}
	in.ChecksumCRC32C, in.ContentMD5 = nil, aws.String(base64.StdEncoding.EncodeToString(sum))
	return b.client.PutObject(ctx, in, b.payload)
}

// confirm returns nil when the store kept exactly the bytes of p under k,
// sent as in. A Content-MD5 the store checks before it answers at all; a
// store that checked the CRC-32C sent instead says so by returning it
// (S3 and most compatible stores do). One that ignores the header is
// asked differently: the ETag of a plain upload is the MD5 of its bytes,
// and where it is not (encryption with keys of the store's own), the
// object is read back. An object found different is removed: this put
// made it, and a retry stores it again.
func (b *Backend) confirm(ctx context.Context, key, k string, p piece, in *s3.PutObjectInput, out *s3.PutObjectOutput) error {
	if in.ContentMD5 != nil {
		return nil // checked by the store, which refuses a Content-MD5 it does not match
	}
	want := p.checksum()
	switch got := aws.ToString(out.ChecksumCRC32C); {
	case got == want:
		return nil
	case got != "":
		return b.discard(ctx, key, k, fmt.Errorf("the store holds it with CRC-32C %s, not the %s of the bytes sent", got, want))
	}
	sum, err := p.md5()
	if err != nil {
		return &storage.Error{Op: "put", Key: key, Err: err}
	}
	if strings.Trim(aws.ToString(out.ETag), `"`) == hex.EncodeToString(sum) {
		return nil
	}
	obj, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return b.wrap("put", key, fmt.Errorf("reading the object back to check it: %w", err))
	}
	defer obj.Body.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, obj.Body)
	if err != nil {
		return b.wrap("put", key, fmt.Errorf("reading the object back to check it: %w", err))
	}
	if n != p.n || h.Sum32() != p.crc {
		return b.discard(ctx, key, k, fmt.Errorf("read back, it has %d bytes with CRC-32C %08x, not the %d bytes with %08x sent", n, h.Sum32(), p.n, p.crc))
	}
	return nil
}

// discard removes the object this put made at k, found different from
// what was sent, and returns the error saying so; a retry sends it again.
func (b *Backend) discard(ctx context.Context, key, k string, why error) error {
	err := fmt.Errorf("the store did not keep the object as sent: %w", why)
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, derr := b.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)}); derr != nil {
		return &storage.Error{Op: "put", Key: key, Err: fmt.Errorf("%w; removing it failed too: %v", err, classify(derr, b.cfg.Bucket))}
	}
	return &storage.Error{Op: "put", Key: key, Err: storage.Transient(err)}
}

// payload is the option of the requests that carry an object's bytes:
// over TLS, which protects them on the way, the signature leaves the body
// out (UNSIGNED-PAYLOAD), which spares a SHA-256 pass over it; the store
// still checks the CRC-32C or the Content-MD5 sent, whose header the
// signature covers. Over plain HTTP the body is signed: a checksum alone
// would not stop someone on the way who rewrites it.
func (b *Backend) payload(o *s3.Options) {
	if b.tls {
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}
}

// absent returns nil when k does not exist, an error matching fs.ErrExist
// when it does, or the error that kept it from finding out.
func (b *Backend) absent(ctx context.Context, key, k string) error {
	_, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	switch {
	case err == nil:
		return &storage.Error{Op: "put", Key: key, Err: fs.ErrExist}
	case isNotFound(err) && code(err) != "NoSuchBucket":
		return nil
	}
	return b.wrap("put", key, err)
}

// wrapPut maps the refusal of a conditional write to fs.ErrExist.
func (b *Backend) wrapPut(key string, err error) error {
	if err != nil && isTaken(err) {
		return &storage.Error{Op: "put", Key: key, Err: fs.ErrExist}
	}
	return b.wrap("put", key, err)
}

// piece is a run of the object's bytes: seekable, because the SDK hashes a
// body to sign it and then sends it from the start.
type piece struct {
	body io.ReadSeeker
	n    int64
	crc  uint32 // CRC-32C of the bytes
}

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the piece's CRC-32C as S3 writes it (x-amz-checksum-crc32c):
// the big-endian bytes in base64.
func (p piece) checksum() string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], p.crc)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// md5 reads the piece again for its MD5 and leaves it at its start.
func (p piece) md5() ([]byte, error) {
	if _, err := p.body.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	h := md5.New()
	if _, err := io.Copy(h, p.body); err != nil {
		return nil, fmt.Errorf("reading the data: %w", err)
	}
	if _, err := p.body.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// source hands out the bytes of one Put in pieces. A reader that can read
// at offsets (bytes.Reader, os.File) with a known size is read in place;
// any other reader is read into memory, one piece at a time.
type source struct {
	ra              io.ReaderAt
	seeker          io.Seeker
	base, size, off int64

	r       io.Reader
	pending []byte // read from r but not yet handed out
	buf     []byte // reused for pieces read from r
	eof     bool   // r is exhausted
}

func newSource(r io.Reader, size int64) *source {
	ra, isRA := r.(io.ReaderAt)
	sk, isSeeker := r.(io.Seeker)
	if isRA && isSeeker && size >= 0 {
		// ReadAt ignores the reader's offset: start where a Read would.
		if base, err := sk.Seek(0, io.SeekCurrent); err == nil {
			return &source{ra: ra, seeker: sk, base: base, size: size}
		}
	}
	return &source{r: r}
}

// whole returns the entire object as one piece when it has at most limit
// bytes; small is false when it is larger, and then next hands it out.
func (s *source) whole(limit int64) (p piece, small bool, err error) {
	if s.ra != nil {
		if s.size > limit {
			return piece{}, false, nil
		}
		p, err := s.next(s.size)
		return p, err == nil, err
	}
	data, err := io.ReadAll(io.LimitReader(s.r, limit+1))
	if err != nil {
		return piece{}, false, fmt.Errorf("reading the data: %w", err)
	}
	if int64(len(data)) <= limit {
		s.eof = true
		return bytesPiece(data), true, nil
	}
	s.pending = data
	return piece{}, false, nil
}

// next returns the next piece of at most max bytes; it is shorter than max
// only at the end, and empty once everything was handed out.
func (s *source) next(max int64) (piece, error) {
	if s.ra != nil {
		n := min(max, s.size-s.off)
		sec := io.NewSectionReader(s.ra, s.base+s.off, n)
		h := crc32.New(castagnoli)
		got, err := io.Copy(h, sec)
		if err != nil {
			return piece{}, fmt.Errorf("reading the data: %w", err)
		}
		if got != n {
			return piece{}, fmt.Errorf("the data ended after %d of the %d bytes announced", s.off+got, s.size)
		}
		if _, err := sec.Seek(0, io.SeekStart); err != nil {
			return piece{}, err
		}
		s.off += n
		if s.off == s.size {
			var one [1]byte
			if k, _ := s.ra.ReadAt(one[:], s.base+s.size); k > 0 {
				return piece{}, fmt.Errorf("the data is longer than the %d bytes announced", s.size)
			}
		}
		return piece{body: sec, n: n, crc: h.Sum32()}, nil
	}
	if int64(len(s.pending)) >= max || s.eof {
		n := min(max, int64(len(s.pending)))
		p := s.pending[:n]
		s.pending = s.pending[n:]
		return bytesPiece(p), nil
	}
	// Part of what was read ahead plus fresh bytes. The previous piece
	// is done with (parts go up one at a time), so buf is free.
	if int64(cap(s.buf)) < max {
		s.buf = make([]byte, max)
	}
	buf := s.buf[:max]
	k := copy(buf, s.pending)
	s.pending = nil
	m, err := io.ReadFull(s.r, buf[k:])
	switch err {
	case nil:
	case io.EOF, io.ErrUnexpectedEOF:
		s.eof = true
	default:
		return piece{}, fmt.Errorf("reading the data: %w", err)
	}
	return bytesPiece(buf[:k+m]), nil
}

// finished reports whether every byte was handed out.
func (s *source) finished() bool {
	if s.ra != nil {
		return s.off == s.size
	}
	return s.eof && len(s.pending) == 0
}

// finish leaves a seekable reader at its end, as if it had been read.
func (s *source) finish() {
	if s.seeker != nil {
		s.seeker.Seek(s.base+s.size, io.SeekStart)
	}
}

func bytesPiece(p []byte) piece {
	return piece{body: bytes.NewReader(p), n: int64(len(p)), crc: crc32.Checksum(p, castagnoli)}
}
