package event

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/failure"
)

func TestParseFixtures(t *testing.T) {
	t.Parallel()
	const bucket = "edp-pipelines-123456789012"
	tests := []struct {
		file    string
		want    Message
		wantErr bool
	}{
		{file: "eventbridge_object_created.json", want: Message{
			Kind: KindConfig, Format: FormatEventBridge, Bucket: bucket,
			Key:       "configs/team a/iris rf+v2.yaml",
			VersionID: "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", ETag: "b1946ac92492d2347c6235b4d2611184",
			Sequencer: "00617F08299329D189",
			Time:      time.Date(2026, 11, 23, 17, 12, 45, 0, time.UTC),
		}},
		// Unversioned and versioning-suspended buckets send version id
		// "null" for every upload: no version of its own.
		{file: "eventbridge_object_created_unversioned.json", want: Message{
			Kind: KindConfig, Format: FormatEventBridge, Bucket: bucket, Key: "configs/iris-tree.yaml",
			ETag: "92eb5ffee6ae2fec3ad71c777531578f", Sequencer: "00617F0A4C1E2B3D44",
			Time: time.Date(2026, 11, 23, 17, 14, 2, 0, time.UTC),
		}},
		{file: "s3_notification_suspended.json", want: Message{
			Kind: KindConfig, Format: FormatS3, Bucket: bucket, Key: "configs/iris-tree.yaml",
			ETag: "92eb5ffee6ae2fec3ad71c777531578f", Sequencer: "00617F0A4C1E2B3D44",
			Time: time.Date(2026, 11, 23, 17, 14, 2, 517e6, time.UTC),
		}},
		{file: "s3_notification.json", want: Message{
			Kind: KindConfig, Format: FormatS3, Bucket: bucket,
			// The same object as the EventBridge fixture: '+' decodes to a
			// space and %2B to a plus.
			Key:       "configs/team a/iris rf+v2.yaml",
			VersionID: "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", ETag: "b1946ac92492d2347c6235b4d2611184",
			Sequencer: "00617F08299329D189",
			Time:      time.Date(2026, 11, 23, 17, 12, 45, 123e6, time.UTC),
		}},
		{file: "s3_test_event.json", want: Message{
			Kind: KindTestEvent, Format: FormatS3Test, Bucket: bucket,
			Time: time.Date(2026, 11, 23, 17, 0, 1, 84e6, time.UTC),
		}},
		{file: "manual.json", want: Message{
			Kind: KindConfig, Format: FormatManual, Bucket: bucket, Key: "configs/iris-tree.yaml",
		}},
		{file: "garbage.txt", wantErr: true},
		{file: "unknown_json.json", wantErr: true},
		{file: "manual_not_s3.json", wantErr: true},
		{file: "eventbridge_object_deleted.json", wantErr: true},
		{file: "s3_notification_removed.json", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(body)
			if tt.wantErr {
				if !errors.Is(err, failure.ErrPermanent) {
					t.Fatalf("Parse() error = %v, want failure.ErrPermanent", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"empty":                  "",
		"json array":             `[1,2]`,
		"truncated":              `{"config": "s3://b/k"`,
		"manual without key":     `{"config": "s3://bucket"}`,
		"manual without bucket":  `{"config": "s3:///configs/a.yaml"}`,
		"two records":            `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}},{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k2"}}}]}`,
		"no records":             `{"Records":[]}`,
		"bad key escape":         `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"a%zz"}}}]}`,
		"eventbridge not s3":     `{"detail-type":"Object Created","source":"aws.ec2","detail":{}}`,
		"eventbridge no key":     `{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{}}}`,
		"eventbridge bad detail": `{"detail-type":"Object Created","source":"aws.s3","detail":[1]}`,
		"other S3 event":         `{"Service":"Amazon S3","Event":"s3:Other"}`,
		"config not a string":    `{"config": 42}`,
	}
	for name, body := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if m, err := Parse([]byte(body)); !errors.Is(err, failure.ErrPermanent) {
				t.Fatalf("Parse(%q) = %+v, %v; want failure.ErrPermanent", body, m, err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Parse(body)
		if err != nil {
			if !errors.Is(err, failure.ErrPermanent) {
				t.Fatalf("error %v does not wrap failure.ErrPermanent", err)
			}
			return
		}
		if m.Kind == KindConfig && (m.Bucket == "" || m.Key == "") {
			t.Fatalf("config message without object: %+v", m)
		}
	})
}
