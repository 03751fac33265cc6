package s3

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// lazyClient is the S3 client, made at the first request: loading the AWS
// configuration (environment, shared files, profiles) is not free, and a
// walship call may need no request at all.
type lazyClient struct {
	once sync.Once
	load func() (*s3.Client, error)
	c    *s3.Client
	err  error
}

func (l *lazyClient) get() (*s3.Client, error) {
	l.once.Do(func() { l.c, l.err = l.load() })
	return l.c, l.err
}

// The calls the backend makes, each through get.

func (l *lazyClient) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.GetObject(ctx, in, opts...)
}

func (l *lazyClient) HeadObject(ctx context.Context, in *s3.HeadObjectInput, opts ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.HeadObject(ctx, in, opts...)
}

func (l *lazyClient) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.ListObjectsV2(ctx, in, opts...)
}

func (l *lazyClient) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.DeleteObject(ctx, in, opts...)
}

func (l *lazyClient) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, opts ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.DeleteObjects(ctx, in, opts...)
}

func (l *lazyClient) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.PutObject(ctx, in, opts...)
}

func (l *lazyClient) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.CreateMultipartUpload(ctx, in, opts...)
}

func (l *lazyClient) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.AbortMultipartUpload(ctx, in, opts...)
}

func (l *lazyClient) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.UploadPart(ctx, in, opts...)
}

func (l *lazyClient) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c, err := l.get()
	if err != nil {
		return nil, err
	}
	return c.CompleteMultipartUpload(ctx, in, opts...)
}
