package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walship/walship/storage"
)

// wrapRead is wrap with a missing object mapped to fs.ErrNotExist. A
// missing bucket is not a missing object: it stays an error of its own.
func (b *Backend) wrapRead(op, key string, err error) error {
	if err != nil && isNotFound(err) && code(err) != "NoSuchBucket" {
		return &storage.Error{Op: op, Key: key, Err: fs.ErrNotExist}
	}
	return b.wrap(op, key, err)
}

// Open implements storage.Backend.
func (b *Backend) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := b.objectKey(key)
	if err != nil {
		return nil, &storage.Error{Op: "open", Key: key, Err: err}
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return nil, b.wrapRead("open", key, err)
	}
	return &body{ReadCloser: out.Body, b: b, key: key}, nil
}

// body marks the errors of reading an object the same way as those of
// the calls.
type body struct {
	io.ReadCloser
	b   *Backend
	key string
}

func (r *body) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap("read", r.key, err)
	}
	return n, err
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (storage.Info, error) {
	k, err := b.objectKey(key)
	if err != nil {
		return storage.Info{}, &storage.Error{Op: "stat", Key: key, Err: err}
	}
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil {
		return storage.Info{}, b.wrapRead("stat", key, err)
	}
	return storage.Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List implements storage.Backend. S3 lists keys in byte order, which is
// Go's string order. Keys that are not valid storage keys (directory
// markers "a/", names starting with '.') are skipped.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	pages := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.cfg.Bucket), Prefix: aws.String(b.prefix + prefix),
	})
	last := ""
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			full := aws.ToString(o.Key)
			if len(full) < len(b.prefix) || full[:len(b.prefix)] != b.prefix {
				continue
			}
			key := full[len(b.prefix):]
			if storage.CheckKey(key) != nil {
				continue
			}
			if key <= last {
				return &storage.Error{Op: "list", Key: prefix, Err: fmt.Errorf("the store listed %q after %q: keys are not in order", key, last)}
			}
			last = key
			if err := fn(storage.Info{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Remove implements storage.Backend.
func (b *Backend) Remove(ctx context.Context, key string) error {
	k, err := b.objectKey(key)
	if err != nil {
		return &storage.Error{Op: "remove", Key: key, Err: err}
	}
	_, err = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)})
	if err != nil && isNotFound(err) && code(err) != "NoSuchBucket" {
		return nil // S3 itself answers 204; some stores say 404
	}
	return b.wrap("remove", key, err)
}

// maxBatch is the most keys S3 deletes in one DeleteObjects call.
const maxBatch = 1000

// RemoveMany implements storage.BatchRemover with DeleteObjects, 1000 keys
// a call. Missing keys are not an error. Stores without multi-object
// delete get one DeleteObject per key.
func (b *Backend) RemoveMany(ctx context.Context, keys []string) error {
	objs := make([]types.ObjectIdentifier, 0, min(len(keys), maxBatch))
	for i, key := range keys {
		k, err := b.objectKey(key)
		if err != nil {
			return &storage.Error{Op: "remove", Key: key, Err: err}
		}
		objs = append(objs, types.ObjectIdentifier{Key: aws.String(k)})
		if len(objs) == maxBatch || i == len(keys)-1 {
			if err := b.deleteObjects(ctx, keys[i+1-len(objs):i+1], objs); err != nil {
				return err
			}
			objs = objs[:0]
		}
	}
	return nil
}

func (b *Backend) deleteObjects(ctx context.Context, keys []string, objs []types.ObjectIdentifier) error {
	out, err := b.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(b.cfg.Bucket),
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)},
	}, withContentMD5)
	if err != nil && isNotImplemented(err) {
		for _, key := range keys {
			if err := b.Remove(ctx, key); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return b.wrap("remove", fmt.Sprintf("%s and %d more", keys[0], len(keys)-1), err)
	}
	var errs []error
	transient := false
	for _, e := range out.Errors {
		c := aws.ToString(e.Code)
		if c == "NoSuchKey" {
			continue
		}
		switch c {
		case "InternalError", "SlowDown", "ServiceUnavailable":
			transient = true
		}
		key := aws.ToString(e.Key)
		if len(key) >= len(b.prefix) {
			key = key[len(b.prefix):]
		}
		errs = append(errs, &storage.Error{Op: "remove", Key: key, Err: fmt.Errorf("%s: %s", c, aws.ToString(e.Message))})
	}
	if len(errs) == 0 {
		return nil
	}
	err = fmt.Errorf("%d of %d objects not removed, the first: %w", len(errs), len(keys), errs[0])
	if transient {
		// Deleting is idempotent: the whole batch can be tried again.
		err = storage.Transient(err)
	}
	return err
}

// withContentMD5 adds a Content-MD5 header to a request body. DeleteObjects
// requires a checksum; the SDK sends a CRC32 header, which several
// S3-compatible stores do not accept in place of the Content-MD5 that S3
// has always required there.
func withContentMD5(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Build.Add(middleware.BuildMiddlewareFunc("WalshipContentMD5",
			func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
				req, ok := in.Request.(*smithyhttp.Request)
				if !ok || req.Header.Get("Content-MD5") != "" || req.GetStream() == nil || !req.IsStreamSeekable() {
					return next.HandleBuild(ctx, in)
				}
				h := md5.New()
				if _, err := io.Copy(h, req.GetStream()); err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("hashing the request: %w", err)
				}
				if err := req.RewindStream(); err != nil {
					return middleware.BuildOutput{}, middleware.Metadata{}, fmt.Errorf("rewinding the request: %w", err)
				}
				req.Header.Set("Content-MD5", base64.StdEncoding.EncodeToString(h.Sum(nil)))
				return next.HandleBuild(ctx, in)
			}), middleware.After)
	})
}
