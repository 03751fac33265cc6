package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walship/walship/storage"
	"github.com/walship/walship/wal"
)

// Writing: the one place a name is stored, create-only, encoded as the
// repository says; a name stored already is compared, never replaced.

// errPutStopped ends a compressor whose output is no longer read.
var errPutStopped = errors.New("the store stopped reading")

// putStream writes what encode produces straight into a backend that
// streams puts: no copy of the object is held in memory. It returns once
// encode has returned.
func (r *Repo) putStream(ctx context.Context, key string, encode func(io.Writer) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := encode(pw)
		pw.CloseWithError(err) // nil: the reader sees the end of the object
		done <- err
	}()
	err := r.b.Put(ctx, key, pr, -1)
	pr.CloseWithError(errPutStopped)
	encErr := <-done
	if err != nil && encErr != nil && !errors.Is(encErr, errPutStopped) && !errors.Is(encErr, io.ErrClosedPipe) {
		return fmt.Errorf("encoding: %w", encErr)
	}
	return err
}

// putEncoded stores what encode produces under key: streamed where the
// backend streams, else built in memory first (room for size bytes and
// some) and put with its exact length.
func (r *Repo) putEncoded(ctx context.Context, key string, size int64, encode func(io.Writer) error) error {
	if storage.StreamsPuts(r.b) {
		return r.putStream(ctx, key, encode)
	}
	buf := bytes.NewBuffer(make([]byte, 0, lz4Bound(size)+int(size/(64<<10)+1)*16+1024))
	if err := encode(buf); err != nil {
		return fmt.Errorf("encoding: %w", err)
	}
	return r.b.Put(ctx, key, bytes.NewReader(buf.Bytes()), int64(buf.Len()))
}

// encryptTo writes the encrypted object of size bytes of src at loc to w:
// compressed or sealed as loc says, then encrypted to the recipients.
func (r *Repo) encryptTo(w io.Writer, loc Location, src io.ReadSeeker, size int64) error {
	digest, err := Digest(src, size)
	if err != nil {
		return err
	}
	ew, err := r.keys.encrypter(w, loc.Key, digest)
	if err != nil {
		return err
	}
	switch {
	case loc.Codec == CodecLZ4:
		err = encodeLZ4To(ew, src, size)
	case loc.Sealed:
		var sum uint32
		if sum, err = Sum(src, size); err == nil {
			_, err = io.Copy(ew, newSealed(src, size, sum))
		}
	default:
		_, err = io.CopyN(ew, src, size)
	}
	if err != nil {
		return err
	}
	return ew.Close()
}

// Put stores data as name, create-only, in the one place the repository
// has for it (history and backup files are never compressed). When name is
// already stored, Put compares: identical content returns nil with existed
// true (after making the stored copy durable); different content returns
// an error matching fs.ErrExist and leaves the stored object as it is.
func (r *Repo) Put(ctx context.Context, n wal.Name, data []byte) (existed bool, err error) {
	_, existed, err = r.PutFrom(ctx, n, bytes.NewReader(data), int64(len(data)))
	return existed, err
}

// PutFrom is Put reading size bytes from src, which must be rewindable (a
// file or an in-memory reader): it is read again to checksum or compare.
// A bare *os.File reaches a local backend as it is, so the kernel copies
// it. It also returns the key the file is stored under.
func (r *Repo) PutFrom(ctx context.Context, n wal.Name, src io.ReadSeeker, size int64) (key string, existed bool, err error) {
	if err := r.CheckWritable(ctx); err != nil {
		return "", false, err
	}
	loc, err := r.location(ctx, n)
	if err != nil {
		return "", false, err
	}
	// Where others may write too (cp, in the plain layout), the file may
	// be stored in another place already.
	locs, err := r.locations(ctx, n)
	if err != nil {
		return "", false, err
	}
	for _, other := range locs {
		if other.Key == loc.Key {
			continue
		}
		if _, err := r.b.Stat(ctx, other.Key); err == nil {
			return other.Key, true, r.existing(ctx, n, other, src, size)
		} else if !storage.IsNotExist(err) {
			return "", false, err
		}
	}
	switch {
	case loc.Encrypted:
		err = r.putEncoded(ctx, loc.Key, size, func(w io.Writer) error { return r.encryptTo(w, loc, src, size) })
	case loc.Codec == CodecLZ4 && storage.StreamsPuts(r.b):
		err = r.putStream(ctx, loc.Key, func(w io.Writer) error { return encodeLZ4To(w, src, size) })
	case loc.Codec == CodecLZ4:
		obj, release, encErr := encodeLZ4Pooled(src, size)
		if encErr != nil {
			return "", false, fmt.Errorf("compressing %s: %w", n, encErr)
		}
		err = r.b.Put(ctx, loc.Key, bytes.NewReader(obj), int64(len(obj)))
		release()
	case loc.Sealed:
		sum, sumErr := Sum(src, size)
		if sumErr != nil {
			return "", false, fmt.Errorf("reading %s: %w", n, sumErr)
		}
		obj := newSealed(src, size, sum)
		err = r.b.Put(ctx, loc.Key, obj, obj.Len())
	default:
		err = r.b.Put(ctx, loc.Key, src, size)
	}
	if storage.IsExist(err) {
		return loc.Key, true, r.existing(ctx, n, loc, src, size)
	}
	return loc.Key, false, err
}

// existing answers a put of n whose object is stored at loc already:
// identical content is made durable (an earlier attempt may have died
// between its rename and the sync of the directory) before it counts as
// archived; different content is an error matching ErrDifferent.
func (r *Repo) existing(ctx context.Context, n wal.Name, loc Location, src io.ReadSeeker, size int64) error {
	if err := r.compare(ctx, n, loc, src, size); err != nil {
		return err
	}
	return storage.Sync(ctx, r.b, loc.Key)
}

// ErrDifferent is matched when a file is already archived with other content.
var ErrDifferent = fmt.Errorf("archived with different content: %w", errExist)

// compare checks that the stored copy of n at loc holds exactly the size
// bytes of src.
func (r *Repo) compare(ctx context.Context, n wal.Name, loc Location, src io.ReadSeeker, size int64) error {
	if loc.Encrypted {
		return r.compareDigest(ctx, loc, src, size)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	o, err := r.openAt(ctx, n, loc)
	if err != nil {
		return err
	}
	defer o.Close()
	stored, mine := make([]byte, copyBuf), make([]byte, copyBuf)
	var off int64
	for {
		k, err := io.ReadFull(o, stored)
		if k > 0 {
			if off+int64(k) > size {
				return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
			}
			if _, rerr := io.ReadFull(src, mine[:k]); rerr != nil {
				return fmt.Errorf("re-reading the file to compare: %w", rerr)
			}
			if !bytes.Equal(stored[:k], mine[:k]) {
				return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
			}
			off += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return fmt.Errorf("%s: %w", o.Key, ErrDifferent)
	}
	return nil
}

// compareDigest compares src with an encrypted object by the content
// digest in its clear-text line: a writer holds no identity to decrypt.
func (r *Repo) compareDigest(ctx context.Context, loc Location, src io.ReadSeeker, size int64) error {
	body, err := r.b.Open(ctx, loc.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	stored, err := storedDigest(body, loc.Key)
	if err != nil {
		return err
	}
	mine, err := Digest(src, size)
	if err != nil {
		return err
	}
	if stored != mine {
		return fmt.Errorf("%s: %w", loc.Key, ErrDifferent)
	}
	return nil
}
