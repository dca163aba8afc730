package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3API is the part of *s3.Client that S3 uses.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3 is a Store over one S3 bucket. Errors from the SDK are wrapped, so
// callers can still inspect them (throttling, 5xx) with errors.As.
type S3 struct {
	client S3API
	bucket string
}

// NewS3 returns a Store over bucket.
func NewS3(client S3API, bucket string) *S3 { return &S3{client: client, bucket: bucket} }

// Bucket returns the bucket name.
func (s *S3) Bucket() string { return s.bucket }

// Get implements Store. NoSuchKey (and a bare 404) map to ErrNotFound.
func (s *S3) Get(ctx context.Context, key string) (Object, error) {
	return s.get(ctx, key, "")
}

// GetVersion implements VersionGetter. NoSuchVersion also maps to
// ErrNotFound.
func (s *S3) GetVersion(ctx context.Context, key, versionID string) (Object, error) {
	return s.get(ctx, key, versionID)
}

// open starts reading an object (one version of it when versionID is set);
// the caller closes the body.
func (s *S3) open(ctx context.Context, key, versionID string) (*s3.GetObjectOutput, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		// A malformed version id is answered with InvalidArgument: that
		// version can never be read, like a missing one.
		if isNotFound(err) || (versionID != "" && hasCode(err, "InvalidArgument")) {
			return nil, fmt.Errorf("get s3://%s/%s: %w: %w", s.bucket, key, ErrNotFound, err)
		}
		return nil, fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	return out, nil
}

// getConfig implements configGetter: an object whose Content-Length is over
// limit is refused before its body is read, and no more than limit+1 bytes
// of any body are read. Closing the body unread makes the HTTP client drop
// the connection rather than download the rest.
func (s *S3) getConfig(ctx context.Context, key, versionID string, limit int64) (Object, error) {
	out, err := s.open(ctx, key, versionID)
	if err != nil {
		return Object{}, err
	}
	defer out.Body.Close()
	size := int64(-1)
	if out.ContentLength != nil {
		size = *out.ContentLength
	}
	obj := Object{VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag)}
	obj.Body, err = readConfig(out.Body, size, limit)
	if big := (*ConfigTooLargeError)(nil); errors.As(err, &big) {
		big.VersionID, big.ETag = obj.VersionID, obj.ETag
	}
	if err != nil {
		return Object{}, fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	return obj, nil
}

func (s *S3) get(ctx context.Context, key, versionID string) (Object, error) {
	out, err := s.open(ctx, key, versionID)
	if err != nil {
		return Object{}, err
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength > MaxObjectBytes {
		return Object{}, fmt.Errorf("get s3://%s/%s: %w (%d bytes, limit %d)", s.bucket, key, ErrTooLarge, *out.ContentLength, MaxObjectBytes)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, MaxObjectBytes+1))
	if err != nil {
		return Object{}, fmt.Errorf("get s3://%s/%s: read body: %w", s.bucket, key, err)
	}
	if len(body) > MaxObjectBytes {
		return Object{}, fmt.Errorf("get s3://%s/%s: %w (limit %d bytes)", s.bucket, key, ErrTooLarge, MaxObjectBytes)
	}
	return Object{Body: body, VersionID: aws.ToString(out.VersionId), ETag: aws.ToString(out.ETag)}, nil
}

// putInput is the PutObject request of body at key.
func (s *S3) putInput(key string, body []byte, contentType string) *s3.PutObjectInput {
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
	}
	return in
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, body []byte, contentType string) error {
	in := s.putInput(key, body, contentType)
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

// PutFile implements FilePutter: the file's first size bytes in one
// PutObject (S3 takes up to 5 GiB so), read as the request is sent, not
// into memory.
func (s *S3) PutFile(ctx context.Context, key string, f *os.File, size int64, contentType string) error {
	in := s.putInput(key, nil, contentType)
	in.Body, in.ContentLength = io.NewSectionReader(f, 0, size), aws.Int64(size)
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", s.bucket, key, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "NoSuchKey", "NotFound", "NoSuchVersion":
		return true
	case "MethodNotAllowed": // the requested version is a delete marker
		return true
	}
	return false
}

func hasCode(err error, code string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == code
}
