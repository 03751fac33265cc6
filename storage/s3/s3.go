// Package s3 stores a walship archive in an S3 bucket, or in any store that
// speaks the S3 API (MinIO, Ceph RGW, versitygw, ...). A repository URL is
// s3://bucket/prefix; every key lives at prefix + "/" + key.
//
// Credentials come from the standard AWS chain (environment, shared config
// and credentials files with an optional profile, web identity, instance
// metadata); they are never logged or put in error messages.
//
// Writes are create-only: a conditional PutObject (If-None-Match: *), or a
// multipart upload whose completion is conditional, for objects above the
// multipart threshold. Every upload carries a checksum the store checks
// before it keeps the bytes, so a body damaged on the way is rejected: the
// CRC-32C of a PutObject (confirmed by the store's answer, see confirm), the
// Content-MD5 of a part. The SDK's own retries are off:
// storage.WithRetry is the one retry layer, and this backend marks the
// errors worth retrying with storage.Transient.
package s3

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/logging"

	"github.com/walship/walship/internal/logx"
	"github.com/walship/walship/storage"
)

func init() {
	storage.Register("s3", func(ctx context.Context, u *url.URL, opts storage.Options, log *slog.Logger) (storage.Backend, error) {
		cfg, err := ParseURL(u, opts)
		if err != nil {
			return nil, err
		}
		cfg.Log = log
		return New(ctx, cfg)
	})
}

const (
	// DefaultMultipartThreshold is the object size above which Put uploads
	// in parts. WAL segments are 16 MiB by default and go up to 1 GiB.
	DefaultMultipartThreshold = 64 << 20
	// DefaultPartSize is the size of each part of a multipart upload.
	DefaultPartSize = 16 << 20
	// MinPartSize is S3's smallest part (except the last one).
	MinPartSize = 5 << 20
	// maxParts is S3's limit on the parts of one upload.
	maxParts = 10000
	// dialTimeout bounds connecting to the endpoint, so that a store that is
	// down fails fast and the retry wrapper can try again.
	dialTimeout = 5 * time.Second
)

// Config says where a backend stores its objects and how.
type Config struct {
	Bucket string
	Prefix string // without leading or trailing slash; may be empty

	// Endpoint is the store's URL (https://minio.example:9000); empty means
	// AWS itself (or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set).
	Endpoint string
	// Region; empty takes AWS_REGION or the profile's, else us-east-1.
	Region string
	// PathStyle addresses buckets as endpoint/bucket rather than
	// bucket.endpoint. Nil means: on when Endpoint is set (what most
	// S3-compatible stores need), off for AWS.
	PathStyle *bool
	// StorageClass for new objects (STANDARD_IA, ...); empty is the
	// store's default.
	StorageClass string
	// SSE is the server-side encryption asked for: "", "AES256" or
	// "aws:kms" (with SSEKMSKeyID, or the account's default key).
	SSE         string
	SSEKMSKeyID string
	// Profile selects a profile in the shared AWS config files.
	Profile string
	// Credentials replaces the default credential chain when set.
	Credentials aws.CredentialsProvider

	// MultipartThreshold and PartSize; zero means the defaults.
	MultipartThreshold int64
	PartSize           int64
	// NoConditionalPut makes Put check with HeadObject and then write,
	// for stores that ignore If-None-Match (two writers racing for the
	// same key can then both succeed; the last one wins). Without it, Put
	// switches to that mode by itself when the store answers 501.
	NoConditionalPut bool
	// Log receives the backend's warnings and debug lines (nil: none).
	Log *slog.Logger
}

// ParseURL makes a Config from an s3://bucket/prefix URL and the options
// endpoint, region, path-style, storage-class, sse, sse-kms-key-id,
// profile, multipart-threshold, part-size and conditional-put.
func ParseURL(u *url.URL, opts storage.Options) (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return Config{}, fmt.Errorf("s3 repository %s: "+format, append([]any{u.Redacted()}, a...)...)
	}
	if u.User != nil {
		return bad("credentials do not belong in the URL: use the AWS environment variables or a profile")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return bad("unexpected query or fragment: S3 settings are options, not part of the URL")
	}
	cfg := Config{
		Bucket:       u.Host,
		Prefix:       strings.Trim(u.Path, "/"),
		Endpoint:     opts["endpoint"],
		Region:       opts["region"],
		StorageClass: opts["storage-class"],
		SSE:          opts["sse"],
		SSEKMSKeyID:  opts["sse-kms-key-id"],
		Profile:      opts["profile"],
	}
	if cfg.Bucket == "" {
		return bad("no bucket: use s3://bucket/prefix")
	}
	if v := opts["path-style"]; v != "" {
		ps, err := strconv.ParseBool(v)
		if err != nil {
			return bad("path-style %q: want true or false", v)
		}
		cfg.PathStyle = &ps
	}
	if v := opts["conditional-put"]; v != "" {
		cp, err := strconv.ParseBool(v)
		if err != nil {
			return bad("conditional-put %q: want true or false", v)
		}
		cfg.NoConditionalPut = !cp
	}
	for name, dst := range map[string]*int64{"multipart-threshold": &cfg.MultipartThreshold, "part-size": &cfg.PartSize} {
		if v := opts[name]; v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return bad("%s %q: want a positive number of bytes", name, v)
			}
			*dst = n
		}
	}
	return cfg, nil
}

// Backend is a bucket and prefix holding objects under their keys.
type Backend struct {
	client    *lazyClient
	cfg       Config
	prefix    string // cfg.Prefix + "/", or ""
	threshold int64
	partSize  int64
	// noConditional is set once the store has answered 501 to a
	// conditional write.
	noConditional atomic.Bool
	// tls is whether requests go over TLS (every endpoint but http://).
	tls bool
	log *slog.Logger
}

// New checks cfg and prepares a client for it. It neither contacts the
// store nor loads the AWS configuration: that waits for the first request,
// so a call that needs no request (an answer from the spool) costs nothing.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	b := &Backend{cfg: cfg, threshold: cfg.MultipartThreshold, partSize: cfg.PartSize,
		tls: !strings.HasPrefix(strings.ToLower(cfg.Endpoint), "http://"), log: logx.Or(cfg.Log)}
	if cfg.Bucket == "" {
		return nil, errors.New("s3 repository: no bucket")
	}
	if cfg.Prefix != "" {
		if err := storage.CheckKey(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("s3 repository %s: prefix: %w", b, err)
		}
		b.prefix = cfg.Prefix + "/"
	}
	if b.threshold == 0 {
		b.threshold = DefaultMultipartThreshold
	}
	if b.partSize == 0 {
		b.partSize = DefaultPartSize
	}
	if b.partSize < MinPartSize {
		return nil, fmt.Errorf("s3 repository %s: part size %d is below S3's minimum of %d bytes", b, b.partSize, MinPartSize)
	}
	switch cfg.SSE {
	case "", string(types.ServerSideEncryptionAes256), string(types.ServerSideEncryptionAwsKms):
	default:
		return nil, fmt.Errorf("s3 repository %s: sse %q: want AES256 or aws:kms", b, cfg.SSE)
	}
	if cfg.SSEKMSKeyID != "" && cfg.SSE != string(types.ServerSideEncryptionAwsKms) {
		return nil, fmt.Errorf("s3 repository %s: an sse-kms-key-id needs sse aws:kms", b)
	}

	b.client = &lazyClient{load: func() (*s3.Client, error) { return newClient(b, cfg) }}
	return b, nil
}

// newClient loads the AWS configuration for cfg and makes the client.
func newClient(b *Backend, cfg Config) (*s3.Client, error) {
	ctx := context.Background()
	// Short connect and handshake timeouts make a store that is down fail
	// fast; the whole call is bounded by the caller's context (the retry
	// wrapper's per-call timeout).
	httpClient := awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = dialTimeout }).
		WithTransportOptions(func(t *http.Transport) { t.TLSHandshakeTimeout = dialTimeout })
	loadOpts := []func(*config.LoadOptions) error{
		config.WithHTTPClient(httpClient),
		// storage.WithRetry is the one retry layer: retries here as well
		// would multiply the attempts and outlast the caller's budget.
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		// Since early 2025 the SDK adds a CRC checksum to every upload by
		// default (over TLS as an aws-chunked body with a trailer) and
		// validates downloads that carry one. Many S3-compatible stores
		// reject such uploads. "When required" keeps requests plain;
		// upload integrity comes from the checksum header we send with
		// every PutObject (x-amz-checksum-crc32c) and UploadPart
		// (Content-MD5), which S3 and the compatible stores check before
		// they keep an object.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// The SDK's few warnings (an IMDSv1 fallback, ...) go to our log
		// as one line each, not to stderr in its own format. Request and
		// response logging stays off: it could show signed headers.
		config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			level := slog.LevelDebug
			if c == logging.Warn {
				level = slog.LevelWarn
			}
			b.log.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...))
		})),
	}
	if cfg.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(cfg.Region))
	}
	if cfg.Profile != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Credentials != nil {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(cfg.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		// The error names files and profiles, never secrets.
		return nil, fmt.Errorf("s3 repository %s: loading the AWS configuration: %w", b, err)
	}
	// Failing to find credentials is a configuration problem with a
	// message of its own; the SDK's error for it has no type to test.
	awsCfg.Credentials = credentialsProvider{awsCfg.Credentials}
	if awsCfg.Region == "" {
		// S3-compatible stores mostly ignore the region; AWS answers a
		// wrong one with an error that names the right one.
		awsCfg.Region = "us-east-1"
	}
	pathStyle := cfg.Endpoint != ""
	if cfg.PathStyle != nil {
		pathStyle = *cfg.PathStyle
	}
	endpoint := cfg.Endpoint
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		o.DisableLogOutputChecksumValidationSkipped = true
	}), nil
}

// Client is the S3 client the backend uses (nil if the AWS configuration
// cannot be loaded).
func (b *Backend) Client() *s3.Client {
	c, _ := b.client.get()
	return c
}

// String is s3://bucket/prefix.
// Place is the store named whole: the endpoint (or AWS and the region),
// the bucket and the prefix (storage.Placer).
func (b *Backend) Place() string {
	endpoint := b.cfg.Endpoint
	if endpoint == "" {
		endpoint = "aws:" + b.cfg.Region
	}
	return b.String() + "@" + strings.TrimRight(strings.ToLower(endpoint), "/")
}

func (b *Backend) String() string {
	if b.cfg.Prefix == "" {
		return "s3://" + b.cfg.Bucket
	}
	return "s3://" + b.cfg.Bucket + "/" + b.cfg.Prefix
}

// objectKey checks key and returns the S3 key it is stored under.
func (b *Backend) objectKey(key string) (string, error) {
	if err := storage.CheckKey(key); err != nil {
		return "", err
	}
	return b.prefix + key, nil
}

// Exists implements storage.Exister: the bucket must exist and be ours to
// list. A missing bucket gives an error matching fs.ErrNotExist. It lists
// (at most one key) rather than asking HeadBucket, whose answers have no
// body: a 404 there cannot tell a missing bucket from a store that says
// 404 to an unknown access key.
func (b *Backend) Exists(ctx context.Context) error {
	_, err := b.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(b.cfg.Bucket), Prefix: aws.String(b.prefix), MaxKeys: aws.Int32(1),
	})
	if err != nil && isNotFound(err) {
		return &storage.Error{Op: "stat", Key: b.String(), Err: notExist(fmt.Errorf("bucket %q does not exist", b.cfg.Bucket))}
	}
	return b.wrap("stat", b.String(), err)
}

// credentialsProvider marks the errors of finding credentials.
type credentialsProvider struct{ p aws.CredentialsProvider }

func (c credentialsProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if c.p == nil {
		return aws.Credentials{}, credentialsError{errors.New("no credential provider")}
	}
	creds, err := c.p.Retrieve(ctx)
	if err != nil {
		return creds, credentialsError{err}
	}
	return creds, nil
}

type credentialsError struct{ err error }

func (e credentialsError) Error() string { return e.err.Error() }
func (e credentialsError) Unwrap() error { return e.err }

var (
	_ storage.Backend      = (*Backend)(nil)
	_ storage.Exister      = (*Backend)(nil)
	_ storage.BatchRemover = (*Backend)(nil)
)
