package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/internal/names"
)

// startCheckTimeout is the time limit of each call drain and serve make
// before their first receive. The SDK's HTTP client has no response timeout
// of its own, so without it an endpoint that accepts the connection and never
// answers would hold the start forever, silently.
const startCheckTimeout = 10 * time.Second

// startCheck is one call made before the first receive.
type startCheck struct {
	name     string // what is checked, for the log: "queue", "bucket"
	resource string // names the resource in errors: "queue https://…", "bucket b"
	attrs    []any  // log attributes naming the resource
	run      func(ctx context.Context) error
}

// runStartChecks runs checks in order, each under its own deadline of
// timeout, with a log line before and after each; it stops at the first
// failure. The error names the resource and the cause: "<resource>: no
// answer within <timeout>" when the deadline passed.
func runStartChecks(ctx context.Context, log *slog.Logger, timeout time.Duration, checks ...startCheck) error {
	for _, c := range checks {
		log.InfoContext(ctx, "start-up check", append([]any{"check", c.name, "timeout_ms", timeout.Milliseconds()}, c.attrs...)...)
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.run(cctx)
		timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			log.InfoContext(ctx, "start-up check passed", append([]any{"check", c.name, "duration_ms", time.Since(start).Milliseconds()}, c.attrs...)...)
		case timedOut:
			return fmt.Errorf("%s: no answer within %v: %w", c.resource, timeout, err)
		default:
			return fmt.Errorf("%s: %w", c.resource, err)
		}
	}
	return nil
}

// bucketHeader is the part of *s3.Client checkBucket uses.
type bucketHeader interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

// checkBucket proves that the pipeline bucket exists and that the consumer
// may read it, before any message is taken: with a wrong bucket every valid
// event names "another bucket" and goes to the DLQ as poison. HeadBucket
// needs s3:ListBucket on the bucket, which the task role has (it also lets S3
// answer 404 rather than 403 for a missing run record). S3 answers a HEAD
// without a body, so the HTTP status is all there is to tell causes apart.
func checkBucket(ctx context.Context, client bucketHeader, bucket string) error {
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("not found (check %s / -bucket): %w", names.EnvBucket, err)
		case http.StatusForbidden:
			return fmt.Errorf("access denied: the task role needs s3:ListBucket on the bucket (or the bucket belongs to another account; check %s / -bucket): %w", names.EnvBucket, err)
		case http.StatusMovedPermanently:
			return fmt.Errorf("in region %q, not the consumer's (check %s / -bucket and AWS_REGION): %w",
				re.Response.Header.Get("x-amz-bucket-region"), names.EnvBucket, err)
		}
	}
	return fmt.Errorf("head bucket: %w", err)
}
