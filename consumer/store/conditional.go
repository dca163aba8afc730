package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ErrPreconditionFailed is matched (errors.Is) by PutIfMatch's error when
// the object is not in the state the write was conditioned on: it changed
// since it was read, or it exists where it was expected absent, or the
// other way round. Nothing was written; the caller reads again and decides
// again.
var ErrPreconditionFailed = errors.New("precondition failed")

// ConditionalPutter is implemented by stores that can write an object only
// if it is unchanged since it was read (S3's conditional writes): a
// compare-and-swap on one key, which lets concurrent writers of the same
// key agree on who wins.
type ConditionalPutter interface {
	// PutIfMatch writes key only if its current ETag is etag (as Get
	// returned it) or, when etag is "", only if key does not exist.
	// Otherwise it writes nothing and returns an error matching
	// ErrPreconditionFailed.
	PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error
}

// PutIfMatch implements ConditionalPutter with PutObject's If-Match and
// If-None-Match headers. S3 answers a failed condition with 412
// PreconditionFailed, a conditional write racing another with 409
// ConditionalRequestConflict, and If-Match on a key that no longer exists
// with 404: all three mean "read again".
func (s *S3) PutIfMatch(ctx context.Context, key string, body []byte, contentType, etag string) error {
	in := s.putInput(key, body, contentType)
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	_, err := s.client.PutObject(ctx, in)
	switch {
	case err == nil:
		return nil
	case hasCode(err, "PreconditionFailed"), hasCode(err, "ConditionalRequestConflict"), etag != "" && isNotFound(err):
		return fmt.Errorf("put s3://%s/%s: %w: %w", s.bucket, key, ErrPreconditionFailed, err)
	default:
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
}
