package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/storage"
)

// This file is the one place where the objects of a base backup are
// encoded and decoded: each is one lz4 frame with a content checksum,
// written by the same frame writer as segments and read by the same frame
// reader, which refuses a frame without a checksum; in an encrypted
// repository the frame is then encrypted with age as a segment is
// (crypt.go). They are streamed both ways, never held whole in memory, and
// their calls are storage.Long: a backup's tar may take hours to go up or
// come down.
//
// The backup's record (backup.json) is the one object that stays clear in
// an encrypted repository, like walship.json and the objects' names: it
// says where the backup starts and stops, which walship-prune and verify
// need to keep the backup's WAL, and they hold no identity. It holds no
// data of the database. An encrypted object of a stream carries a zero
// content digest: a backup's objects are never compared with a re-push.

// CheckWrite refuses to store objects that would not be encrypted as the
// repository's (identity id) others are.
func (r *Repo) CheckWrite(id Identity) error { return r.checkWrite(id) }

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
	id, haveID, err := r.Identity(ctx)
	if err != nil {
		return StreamInfo{}, err
	}
	if haveID && o.Part.Kind != PartMeta {
		if err := r.checkWrite(id); err != nil {
			return StreamInfo{}, err
		}
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
				if ew, err = r.Keys.encrypter(out, [digestSize]byte{}); err != nil {
					return err
				}
				w = ew
			}
			lw, err := newLZ4Writer(w, -1)
			if err != nil {
				return err
			}
			n, err := lw.ReadFrom(src)
			info.Raw = n
			if err != nil {
				lw.Close()
				return &sourceError{err}
			}
			if err := lw.Close(); err != nil {
				return err
			}
			if ew != nil {
				return ew.Close()
			}
			return nil
		}()
		info.Stored = out.n
		pw.CloseWithError(err) // nil: the store sees the end of the object
		done <- err
	}()
	err = r.b.Put(storage.Long(ctx), o.Key(), pr, -1)
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

// sourceError is a failure to read what PutStream stores.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
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
	return &blobReader{body: body, key: key, keys: r.Keys, encrypted: r.blobEncrypted(o)}, nil
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
		r, err := newLZ4Reader(body, b.key)
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
