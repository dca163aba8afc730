package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// loadAWS loads the SDK's default configuration (region, credentials and the
// standard AWS_ENDPOINT_URL, which points every client at an emulator).
func loadAWS(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS config: %w", err)
	}
	return cfg, nil
}

// newS3 builds an S3 client. With a custom endpoint (an emulator) it uses
// path-style addressing, which emulators need and AWS itself does not.
func newS3(cfg aws.Config) *s3.Client {
	custom := os.Getenv("AWS_ENDPOINT_URL") != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != ""
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = custom
		// Objects uploaded without checksums are normal here; without this
		// the SDK prints a plain-text line into the JSON log for each read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}
