package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/walship/walship/storage"
)

// ErrAccessDenied is matched by errors the store gives for missing or wrong
// credentials or missing permissions. It is never retried.
var ErrAccessDenied = errors.New("access denied: check the credentials")

// ErrNoCredentials is matched when no credentials could be found at all.
var ErrNoCredentials = errors.New("no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE) or an instance role")

// ErrWrongRegion is matched when the bucket is in another region than the
// one asked.
var ErrWrongRegion = errors.New("the bucket is in another region")

// code is the S3 error code of err ("NoSuchKey", ...), or "".
func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// status is the HTTP status of the store's answer, or 0 when there was none.
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// isNotFound reports a missing object or bucket. A 404 with another error
// code is something else: versitygw, for one, answers an unknown access key
// with 404 XAdminUserNotFound. (Answers to HEAD requests have no body, so
// the SDK names every 404 there NotFound.)
func isNotFound(err error) bool {
	switch code(err) {
	case "NoSuchKey", "NotFound", "NoSuchBucket":
		return true
	case "":
		return status(err) == 404
	}
	return false
}

// isNotImplemented is the answer of stores that do not support a feature
// (conditional writes, multi-object delete).
func isNotImplemented(err error) bool {
	return code(err) == "NotImplemented" || status(err) == 501
}

// checksumRefused is a store's refusal of a checksum header it does not
// support (400 InvalidArgument, or 501, naming the checksum); a checksum
// that does not match is another answer (BadDigest).
func checksumRefused(err error) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) || !strings.Contains(strings.ToLower(ae.ErrorMessage()), "checksum") {
		return false
	}
	switch ae.ErrorCode() {
	case "InvalidArgument", "InvalidRequest", "NotImplemented":
		return true
	}
	return status(err) == 501
}

// isTaken is the answer to a conditional write whose key exists: 412, or
// 409 when another conditional write of the same key is under way.
func isTaken(err error) bool {
	switch code(err) {
	case "PreconditionFailed", "ConditionalRequestConflict":
		return true
	case "":
		s := status(err)
		return s == 412 || s == 409
	}
	return false
}

// marked is an error that also matches kind, with err's message.
type marked struct{ err, kind error }

func (m marked) Error() string   { return m.err.Error() }
func (m marked) Unwrap() []error { return []error{m.err, m.kind} }

func notExist(err error) error { return marked{err, fs.ErrNotExist} }

var retryable = retry.IsErrorRetryables(retry.DefaultRetryables)

// classify maps an SDK error to what storage callers test for:
// fs.ErrNotExist, ErrAccessDenied, ErrNoCredentials, or storage.Transient.
// The SDK's messages name the operation, status and request id; they never
// contain credentials.
func classify(err error, bucket string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The retry wrapper decides what a timeout means.
		return err
	}
	var ce credentialsError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (%v)", ErrNoCredentials, ce.err)
	}
	c, s := code(err), status(err)
	switch c {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
		"InvalidSecurity", "AccountProblem", "AllAccessDisabled", "TokenRefreshRequired",
		"XAdminUserNotFound":
		var ae smithy.APIError
		errors.As(err, &ae)
		return fmt.Errorf("%w (%s: %s)", ErrAccessDenied, c, ae.ErrorMessage())
	case "NoSuchBucket":
		return fmt.Errorf("bucket %q does not exist", bucket)
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return fmt.Errorf("%w: %w", ErrWrongRegion, err)
	case "SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted":
		return storage.Transient(err)
	}
	if s == 403 {
		return fmt.Errorf("%w (HTTP 403)", ErrAccessDenied)
	}
	if s == 429 || s >= 500 && s != 501 {
		return storage.Transient(err)
	}
	var send *smithyhttp.RequestSendError
	var ne net.Error
	switch {
	case errors.As(err, &send), errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF):
		// No answer, or an answer cut short: the store is down, restarting
		// or overloaded.
		return storage.Transient(err)
	}
	if retryable.IsErrorRetryable(err) == aws.TrueTernary {
		return storage.Transient(err)
	}
	return err
}

// wrap classifies err and adds the operation and key.
func (b *Backend) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return &storage.Error{Op: op, Key: key, Err: classify(err, b.cfg.Bucket)}
}
