package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/motoserver"
)

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Location
		wantErr bool
	}{
		{in: "s3://bucket/configs/rf.yaml", want: Location{Bucket: "bucket", Key: "configs/rf.yaml"}},
		{in: "s3://bucket", want: Location{Bucket: "bucket"}},
		{in: "s3://bucket/prefix/", want: Location{Bucket: "bucket", Key: "prefix/"}},
		{in: "examples/rf.yaml", want: Location{Path: "examples/rf.yaml"}},
		{in: "./out", want: Location{Path: "./out"}},
		{in: "dir/with://colon", want: Location{Path: "dir/with://colon"}},
		{in: "", wantErr: true},
		{in: "s3:///key", wantErr: true},
		{in: "s3:/bucket/key", wantErr: true},
		{in: "https://example.com/x.yaml", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseURL(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseURL(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// exercise runs the behaviour every Store must have.
func exercise(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.Get(ctx, "runs/missing.json"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(missing) error = %v, want ErrNotFound", err)
	}
	body := []byte(`{"status":"succeeded"}`)
	if err := s.Put(ctx, "artifacts/v1/run.json", body, "application/json"); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := s.Get(ctx, "artifacts/v1/run.json")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !bytes.Equal(got.Body, body) {
		t.Errorf("Get body = %q, want %q", got.Body, body)
	}
	sum := md5.Sum(body)
	if want := `"` + hex.EncodeToString(sum[:]) + `"`; got.ETag != want {
		t.Errorf("ETag = %s, want %s", got.ETag, want)
	}
	// Overwrite.
	if err := s.Put(ctx, "artifacts/v1/run.json", []byte("2"), "text/plain"); err != nil {
		t.Fatalf("Put again: %v", err)
	}
	if got, err := s.Get(ctx, "artifacts/v1/run.json"); err != nil || string(got.Body) != "2" {
		t.Errorf("Get after overwrite = %q, %v; want \"2\"", got.Body, err)
	}
}

func TestDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d := NewDir(root)
	exercise(t, d)
	if _, err := os.Stat(filepath.Join(root, "artifacts", "v1", "run.json")); err != nil {
		t.Errorf("artifact not at the expected path: %v", err)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Join(root, "artifacts", "v1"))
	if err != nil || len(entries) != 1 {
		t.Errorf("dir entries = %v, %v; want only run.json", entries, err)
	}
}

func TestDirRejectsEscapingKeys(t *testing.T) {
	t.Parallel()
	d := NewDir(t.TempDir())
	ctx := context.Background()
	for _, key := range []string{"", "../x", "a/../../x", "/etc/passwd", `a\b`, ".", "a/./b", "a//b"} {
		if err := d.Put(ctx, key, []byte("x"), ""); err == nil {
			t.Errorf("Put(%q) succeeded, want error", key)
		}
		if _, err := d.Get(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want an invalid-key error", key, err)
		}
	}
}

func TestDirTooLarge(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, MaxObjectBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDir(root).Get(context.Background(), "big"); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Get(big) error = %v, want ErrTooLarge", err)
	}
}

func TestDirCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := NewDir(t.TempDir())
	if err := d.Put(ctx, "k", nil, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Put error = %v, want context.Canceled", err)
	}
}

// motoS3 returns an S3 client of a fresh moto_server for this test.
func motoS3(t *testing.T) *s3.Client {
	t.Helper()
	srv := motoserver.StartT(t)
	return s3.New(s3.Options{
		Region:       motoserver.Region,
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
}

func TestS3AgainstMoto(t *testing.T) {
	t.Parallel()
	client := motoS3(t)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("edp-test")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	s := NewS3(client, "edp-test")
	exercise(t, s)

	out, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("edp-test"), Key: aws.String("artifacts/v1/run.json")})
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if got := aws.ToString(out.ContentType); got != "text/plain" {
		t.Errorf("ContentType = %q, want text/plain", got)
	}

	// A missing bucket is not a missing object: it must stay a (transient)
	// error the caller can retry or alarm on.
	if _, err := NewS3(client, "no-such-bucket").Get(ctx, "k"); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Get(no bucket) error = %v, want a non-ErrNotFound error", err)
	}
}

func TestS3GetVersionAgainstMoto(t *testing.T) {
	t.Parallel()
	client := motoS3(t)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("versioned")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String("versioned"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}); err != nil {
		t.Fatal(err)
	}
	var s VersionGetter = NewS3(client, "versioned")
	put := func(body string) string {
		out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("versioned"), Key: aws.String("configs/a.yaml"), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.VersionId)
	}
	v1, v2 := put("first"), put("second")
	if v1 == "" || v1 == v2 {
		t.Fatalf("version ids %q, %q", v1, v2)
	}
	got, err := s.GetVersion(ctx, "configs/a.yaml", v1)
	if err != nil || string(got.Body) != "first" || got.VersionID != v1 {
		t.Errorf("GetVersion(v1) = %q (version %q), %v; want \"first\"", got.Body, got.VersionID, err)
	}
	if got, err := NewS3(client, "versioned").Get(ctx, "configs/a.yaml"); err != nil || string(got.Body) != "second" {
		t.Errorf("Get = %q, %v; want the latest", got.Body, err)
	}
	if _, err := s.GetVersion(ctx, "configs/a.yaml", "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersion(unknown version) error = %v, want ErrNotFound", err)
	}
	// A delete marker is a version that can never be read.
	del, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("versioned"), Key: aws.String("configs/a.yaml")})
	if err != nil || aws.ToString(del.VersionId) == "" {
		t.Fatalf("delete: %v (marker version %q)", err, aws.ToString(del.VersionId))
	}
	if _, err := s.GetVersion(ctx, "configs/a.yaml", aws.ToString(del.VersionId)); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetVersion(delete marker) error = %v, want ErrNotFound", err)
	}
}

// failingS3 answers every GetObject with err.
type failingS3 struct{ err error }

func (f failingS3) GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return nil, f.err
}

func (f failingS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, f.err
}

// Errors that mean "this object or version can never be read" are
// ErrNotFound (a permanent failure for a job); everything else is not.
func TestS3ErrorClassification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	apiErr := func(code string) error { return &smithy.GenericAPIError{Code: code, Message: code} }
	for _, tc := range []struct {
		code     string
		version  string
		notFound bool
	}{
		{"NoSuchKey", "", true},
		{"NotFound", "", true},
		{"NoSuchVersion", "v1", true},
		{"MethodNotAllowed", "v1", true}, // version is a delete marker
		{"InvalidArgument", "not-a-version", true},
		{"InvalidArgument", "", false},
		{"SlowDown", "", false},
		{"InternalError", "v1", false},
		{"AccessDenied", "", false},
	} {
		s := NewS3(failingS3{apiErr(tc.code)}, "b")
		_, err := s.GetVersion(ctx, "configs/a.yaml", tc.version)
		if got := errors.Is(err, ErrNotFound); got != tc.notFound {
			t.Errorf("%s (version %q): errors.Is(ErrNotFound) = %v, want %v (err %v)", tc.code, tc.version, got, tc.notFound, err)
		}
	}
}
