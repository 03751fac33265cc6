package s3

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/walship/walship/storage"
)

// putMultipart uploads an object above the multipart threshold in parts,
// each with its Content-MD5: after a look that k is free (so a taken key
// is refused before a long upload), completed conditionally, and aborted
// when anything fails, so that no part outlives a failed put.
func (b *Backend) putMultipart(ctx context.Context, key, k string, src *source) (err error) {
	if err := b.absent(ctx, key, k); err != nil {
		return err
	}
	create := &s3.CreateMultipartUploadInput{Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k)}
	if b.cfg.StorageClass != "" {
		create.StorageClass = types.StorageClass(b.cfg.StorageClass)
	}
	if b.cfg.SSE != "" {
		create.ServerSideEncryption = types.ServerSideEncryption(b.cfg.SSE)
	}
	if b.cfg.SSEKMSKeyID != "" {
		create.SSEKMSKeyId = aws.String(b.cfg.SSEKMSKeyID)
	}
	out, err := b.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return b.wrap("put", key, err)
	}
	id := out.UploadId
	defer func() {
		if err == nil {
			return
		}
		// The parts of an unfinished upload are invisible but kept (and
		// billed) until aborted: abort even when ctx has ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k), UploadId: id,
		}); aerr != nil {
			b.log.Warn("could not abort a failed multipart upload; a bucket lifecycle rule for incomplete uploads would remove its parts",
				"repo", b.String(), "key", key, "err", classify(aerr, b.cfg.Bucket))
		}
	}()

	var parts []types.CompletedPart
	for num := int32(1); ; num++ {
		if err := ctx.Err(); err != nil {
			return &storage.Error{Op: "put", Key: key, Err: err}
		}
		p, err := src.next(b.partSize)
		if err != nil {
			return &storage.Error{Op: "put", Key: key, Err: err}
		}
		if p.n == 0 && num > 1 {
			break // the stream ended on a part boundary
		}
		if num > maxParts {
			return &storage.Error{Op: "put", Key: key, Err: fmt.Errorf("object larger than %d parts of %d bytes", maxParts, b.partSize)}
		}
		// Parts carry a Content-MD5: a CRC-32C per part would need the
		// upload to be created for it, which stores support less widely.
		sum, err := p.md5()
		if err != nil {
			return &storage.Error{Op: "put", Key: key, Err: err}
		}
		up, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k), UploadId: id, PartNumber: aws.Int32(num),
			Body: p.body, ContentLength: aws.Int64(p.n), ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum)),
		}, b.payload)
		if err != nil {
			return b.wrap("put", fmt.Sprintf("%s (part %d)", key, num), err)
		}
		parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(num)})
		if src.finished() {
			break
		}
	}

	complete := &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(b.cfg.Bucket), Key: aws.String(k), UploadId: id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if b.conditional() {
		complete.IfNoneMatch = aws.String("*")
		_, err = b.client.CompleteMultipartUpload(ctx, complete)
		if err == nil || !isNotImplemented(err) {
			return b.wrapPut(key, err)
		}
		b.notConditional()
		complete.IfNoneMatch = nil
	}
	// Check again, then complete: the same race as in putObject.
	if err = b.absent(ctx, key, k); err != nil {
		return err
	}
	_, err = b.client.CompleteMultipartUpload(ctx, complete)
	return b.wrapPut(key, err)
}
