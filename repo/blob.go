package repo

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"

	"github.com/pierrec/lz4/v4"

	"github.com/walship/walship/storage"
)

// This file is the one place where the objects of a base backup are
// encoded and decoded. Each is one lz4 frame: with a content checksum,
// written by the same frame writer as segments and read by the same frame
// reader (PutStream), or the server's frame as it came (PutFrame), which
// carries no content checksum and is followed by walship's trailer, the
// CRC-32C of every byte before it (frameTrailer; frameDecoder reads such
// frames). A frame with neither is refused. In an encrypted repository the
// object is then encrypted with age as a segment is (crypt.go). They are
// streamed both ways, never held whole in memory, and their calls are
// storage.Long: a backup's tar may take hours to go up or come down.
//
// The backup's record (backup.json) is the one object that stays clear in
// an encrypted repository, like walship.json and the objects' names: it
// says where the backup starts and stops, which walship-prune and verify
// need to keep the backup's WAL, and they hold no identity. It holds no
// data of the database. An encrypted object of a stream carries a zero
// content digest: a backup's objects are never compared with a re-push.

// blobEncrypted reports whether the object is encrypted: every object of
// a backup in an encrypted repository but its record.
func (r *Repo) blobEncrypted(o BackupObject) bool { return o.Part.Kind != PartMeta && r.encrypted() }

// StreamInfo is what PutStream stored.
type StreamInfo struct {
	Raw    int64 // bytes read from the source
	Stored int64 // bytes of the stored object
}

// PutStream compresses everything src delivers, to its end, into the
// backup object o, create-only (an object that exists gives an error
// matching fs.ErrExist). Nothing is visible under o's key unless all of src
// was stored. When it fails, PutStream may return before it has stopped
// reading src: the caller ends src (the producer it reads from).
func (r *Repo) PutStream(ctx context.Context, o BackupObject, src io.Reader) (StreamInfo, error) {
	return r.putBlob(ctx, o, func(w io.Writer) (int64, error) {
		lw, err := newLZ4Writer(w, -1)
		if err != nil {
			return 0, err
		}
		n, err := lw.ReadFrom(src)
		if err != nil {
			lw.Close()
			return n, &sourceError{err}
		}
		return n, lw.Close()
	})
}

// PutFrame stores the lz4 frame src delivers, compressed elsewhere (by the
// server: pg_basebackup --compress=server-lz4), as the backup object o, as
// PutStream stores what it compresses. The frame's bytes are stored as they
// are; one without a content checksum of its own (the server's) is followed
// by the trailer of their CRC-32C. PutFrame decodes the frame as it stores it
// and hands its content to check, which reads it to its end: a source that is
// not one lz4 stream to its end, or an error of check, fails the put. Raw is
// the size of the content.
func (r *Repo) PutFrame(ctx context.Context, o BackupObject, src io.Reader, check func(content io.Reader) error) (StreamInfo, error) {
	return r.putBlob(ctx, o, func(w io.Writer) (int64, error) {
		br := bufio.NewReaderSize(src, copyBuf)
		isLZ4, checksummed, err := peekFrame(br)
		if err != nil {
			return 0, &sourceError{err}
		}
		if !isLZ4 {
			return 0, &sourceError{errors.New("not an lz4 frame")}
		}
		trailed := !checksummed
		// The decoder reads what is stored as it is stored, from a pipe.
		dr, dw := io.Pipe()
		decoded := make(chan error, 1)
		content := &countReader{r: newFrameDecoder(dr)}
		if checksummed {
			content.r = lz4.NewReader(dr) // which checks the checksum
		}
		go func() {
			err := check(content)
			if err == nil {
				// Past the content's end, the stream must end too.
				if _, err = io.Copy(io.Discard, content); err == nil && content.n == 0 {
					err = errors.New("an lz4 frame without content")
				}
			}
			dr.CloseWithError(err)
			decoded <- err
		}()
		h := crc32.New(Castagnoli)
		buf := make([]byte, copyBuf)
		for {
			// Whole buffers: a pipe delivers what its writer wrote, often
			// a few KiB, and every piece costs a write and a hand-over.
			n, rerr := io.ReadFull(br, buf)
			if rerr == io.ErrUnexpectedEOF {
				rerr = io.EOF
			}
			if n > 0 {
				if _, err := w.Write(buf[:n]); err != nil { // the store failed
					dw.CloseWithError(err)
					<-decoded
					return content.n, err
				}
				h.Write(buf[:n])
				if _, err := dw.Write(buf[:n]); err != nil { // the decoder failed
					decErr := <-decoded
					return content.n, &sourceError{fmt.Errorf("the lz4 stream: %w", decErr)}
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				dw.CloseWithError(rerr)
				<-decoded
				return content.n, &sourceError{rerr}
			}
		}
		dw.Close()
		if err := <-decoded; err != nil {
			return content.n, &sourceError{fmt.Errorf("the lz4 stream: %w", err)}
		}
		if trailed {
			if _, err := w.Write(frameTrailer(h.Sum32())); err != nil {
				return content.n, err
			}
		}
		return content.n, nil
	})
}

// putBlob stores what encode writes as the backup object o, encrypted in
// an encrypted repository; encode returns the size of the content.
func (r *Repo) putBlob(ctx context.Context, o BackupObject, encode func(io.Writer) (int64, error)) (StreamInfo, error) {
	if o.Part.Kind != PartMeta {
		if err := r.CheckWritable(ctx); err != nil {
			return StreamInfo{}, err
		}
	} else if err := r.CheckOwner(); err != nil {
		return StreamInfo{}, err
	} else if _, _, err := r.Identity(ctx); err != nil {
		return StreamInfo{}, err
	}
	encrypt := r.blobEncrypted(o)
	var info StreamInfo
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		out := &countWriter{w: pw}
		err := func() error {
			var w io.Writer = out
			var ew io.WriteCloser
			if encrypt {
				var err error
				if ew, err = r.keys.encrypter(out, o.Key(), [digestSize]byte{}); err != nil {
					return err
				}
				w = ew
			}
			n, err := encode(w)
			info.Raw = n
			if err != nil {
				return err
			}
			if ew != nil {
				return ew.Close()
			}
			return nil
		}()
		info.Stored = out.n.Load()
		pw.CloseWithError(err) // nil: the store sees the end of the object
		done <- err
	}()
	err := r.b.Put(storage.Long(ctx), o.Key(), pr, -1)
	pr.CloseWithError(errPutStopped)
	if err != nil {
		var se *sourceError
		select {
		case encErr := <-done:
			if errors.As(encErr, &se) {
				return info, fmt.Errorf("reading the data for %s: %w", o.Key(), se.err)
			}
			return info, err
		default: // still reading src: the caller ends it
			return StreamInfo{}, err
		}
	}
	if err := <-done; err != nil {
		return info, fmt.Errorf("encoding %s: %w", o.Key(), err)
	}
	return info, nil
}

// A frame compressed by the server carries no content checksum: walship
// follows it with a trailer, an lz4 skippable frame (which `lz4 -d` skips)
// whose content is the footer of an uncompressed object, the CRC-32C of
// every byte of the object before it.
const skippableMagic = 0x184D2A50

var trailerHead = binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, skippableMagic), uint32(FooterSize))

func frameTrailer(sum uint32) []byte {
	return append(append([]byte(nil), trailerHead...), Footer(sum)...)
}

// sourceError is a failure to read what PutStream stores.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// countWriter counts what is written through it; atomically, as a
// compressor that failed may still be writing from its own goroutines.
type countWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// OpenStream opens the backup object o for reading, decoded. Its content
// checksum is checked at the end of the frame: a damaged object gives a
// read error matching ErrCorrupt, at the latest when the last byte has
// been read, so a reader must read to io.EOF before it trusts anything it
// read. A missing object gives an error matching fs.ErrNotExist.
func (r *Repo) OpenStream(ctx context.Context, o BackupObject) (io.ReadCloser, error) {
	if _, _, err := r.Identity(ctx); err != nil {
		return nil, err
	}
	key := o.Key()
	body, err := r.b.Open(storage.Long(ctx), key)
	if err != nil {
		return nil, err
	}
	return &blobReader{body: body, key: key, keys: r.keys, encrypted: r.blobEncrypted(o)}, nil
}

type blobReader struct {
	body      io.ReadCloser
	key       string
	keys      Keys
	encrypted bool
	r         io.Reader // the decoder, made at the first read
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.r == nil {
		var body io.Reader = b.body
		if b.encrypted {
			d, _, err := b.keys.decrypter(body, b.key)
			if err != nil {
				return 0, err
			}
			body = d
		}
		r, err := newBlobDecoder(body, b.key)
		if err != nil {
			return 0, err
		}
		b.r = r
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && !isStorageErr(err) && !errors.Is(err, ErrCorrupt) {
		err = &CorruptError{Key: b.key, Reason: err.Error()}
	}
	return n, err
}

func (b *blobReader) Close() error { return b.body.Close() }

// newBlobDecoder decodes a backup object: one lz4 frame with its content
// checksum, or one without (the server's) that must be followed by
// walship's trailer.
func newBlobDecoder(body io.Reader, key string) (io.Reader, error) {
	br := bufio.NewReaderSize(body, copyBuf)
	isLZ4, checksummed, err := peekFrame(br)
	if err != nil {
		return nil, err
	}
	if isLZ4 && !checksummed {
		t := newTrailed(br, key, trailerHead)
		return &trailedFrame{t: t, z: newFrameDecoder(t)}, nil
	}
	return newLZ4Reader(br, key)
}

// trailedFrame decodes a frame behind which the trailer is checked: the
// decoder sees the end of its input where the trailer starts.
type trailedFrame struct {
	t *unsealer
	z io.Reader
}

func (f *trailedFrame) Read(p []byte) (int, error) {
	n, err := f.z.Read(p)
	if err == io.EOF {
		// The decoder saw the end of its input: there, the trailer must
		// check (its verdict stays, whatever the decoder made of it).
		m, terr := io.Copy(io.Discard, f.t)
		if terr != nil {
			return n, terr
		}
		if m > 0 {
			return n, &CorruptError{Key: f.t.key, Reason: "data after the lz4 frame"}
		}
	}
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
