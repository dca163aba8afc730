package store

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PutIfMatch is a compare-and-swap on one key, as S3 (and moto) implement
// conditional writes.
func TestS3PutIfMatchAgainstMoto(t *testing.T) {
	t.Parallel()
	client := motoS3(t)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("edp-cas")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	s := NewS3(client, "edp-cas")
	var cas ConditionalPutter = s
	const key = "artifacts/v1/latest.json"

	if err := cas.PutIfMatch(ctx, key, []byte("1"), "application/json", ""); err != nil {
		t.Fatalf("create while absent: %v", err)
	}
	if err := cas.PutIfMatch(ctx, key, []byte("x"), "application/json", ""); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("create while present: %v, want ErrPreconditionFailed", err)
	}
	first, err := s.Get(ctx, key)
	if err != nil || string(first.Body) != "1" {
		t.Fatalf("Get = %q, %v; want the first write only", first.Body, err)
	}
	if err := cas.PutIfMatch(ctx, key, []byte("2"), "application/json", first.ETag); err != nil {
		t.Fatalf("replace the version read: %v", err)
	}
	if err := cas.PutIfMatch(ctx, key, []byte("y"), "application/json", first.ETag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("replace a stale version: %v, want ErrPreconditionFailed", err)
	}
	if err := cas.PutIfMatch(ctx, "artifacts/v1/missing.json", []byte("z"), "", first.ETag); !errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("replace a missing key: %v, want ErrPreconditionFailed", err)
	}
	if got, err := s.Get(ctx, key); err != nil || string(got.Body) != "2" {
		t.Errorf("Get = %q, %v; want the one successful replacement", got.Body, err)
	}
	// Other errors stay what they are: retryable, not "read again".
	err = NewS3(client, "no-such-bucket").PutIfMatch(ctx, key, []byte("1"), "", "")
	if err == nil || errors.Is(err, ErrPreconditionFailed) {
		t.Errorf("missing bucket: %v, want an error other than ErrPreconditionFailed", err)
	}
}
