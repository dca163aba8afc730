package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// Uploading a config, letting it run, then uploading new content to the
// same key must run again, whatever the bucket's versioning: S3 (and the
// emulator) report the version id "null" for every upload to an
// unversioned or versioning-suspended bucket, which must not make the
// second upload a "duplicate" of the first.
func TestReuploadRunsAgain(t *testing.T) {
	t.Parallel()
	for _, versioning := range []string{"enabled", "unversioned", "suspended"} {
		t.Run(versioning, func(t *testing.T) {
			t.Parallel()
			p := newPipeline(t, 30, 3)
			p.setVersioning(t, versioning)
			const key = "configs/reupload.yaml"
			version := "reupload-" + versioning
			first := fmt.Sprintf("run_config:\n  version: %s\nmodel:\n  type: DecisionTreeClassifier\n  params:\n    max_depth: 1\n", version)
			second := fmt.Sprintf("run_config:\n  version: %s\nmodel:\n  type: DecisionTreeClassifier\n  params:\n    max_depth: 3\n", version)

			p.put(t, key, first)
			p.drainOnce(t)
			runs := p.runRecords(t, key)
			if len(runs) != 1 || runs[0].Status != runrecord.StatusSucceeded || runs[0].ConfigSHA256 != sha256Of(first) {
				t.Fatalf("after the first upload: records %+v, want one succeeded run of its content", runs)
			}

			p.put(t, key, second)
			p.drainOnce(t)
			runs = p.runRecords(t, key)
			if len(runs) != 2 {
				t.Fatalf("after the re-upload: %d records %+v, want 2 (the new content was not run)", len(runs), runs)
			}
			var newer *runRecord
			for i := range runs {
				if runs[i].ConfigSHA256 == sha256Of(second) {
					newer = &runs[i]
				}
			}
			if newer == nil || newer.Status != runrecord.StatusSucceeded || newer.Source.VersionID == "null" {
				t.Fatalf("records %+v: want a succeeded run of the new content, without the version id \"null\"", runs)
			}
			// Both uploads share a version: its folder now serves the
			// re-upload's run.
			folder := names.VersionFolder(names.ArtifactPrefix, version)
			ptr, err := job.ReadPointer(context.Background(), store.NewS3(p.s3, p.bucket), folder)
			if err != nil || ptr.RunID != newer.RunID {
				t.Errorf("pointer %+v, %v: want it to name the re-upload's run %s", ptr, err, newer.RunID)
			}
			if cfg, _ := p.get(t, ptr.FileKey(folder, "config.yaml")); string(cfg) != second {
				t.Errorf("the folder's config.yaml is %q, want the re-uploaded content", cfg)
			}
			p.assertQueueEmpty(t)
			p.assertDLQEmpty(t)
		})
	}
}

// setVersioning puts p's bucket (versioned, as newPipeline makes it) into
// the given state: "enabled" leaves it, "suspended" suspends versioning,
// "unversioned" makes the bucket again without ever versioning it.
func (p *pipeline) setVersioning(t testing.TB, state string) {
	t.Helper()
	ctx := context.Background()
	bucket := aws.String(p.bucket)
	var err error
	switch state {
	case "enabled":
	case "suspended":
		_, err = p.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket: bucket, VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusSuspended},
		})
	case "unversioned":
		if _, err = p.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: bucket}); err != nil {
			break
		}
		if _, err = p.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket}); err != nil {
			break
		}
		_, err = p.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
			Bucket:                    bucket,
			NotificationConfiguration: &s3types.NotificationConfiguration{EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}},
		})
	default:
		t.Fatalf("unknown versioning state %q", state)
	}
	if err != nil {
		t.Fatalf("make bucket %s: %v", state, err)
	}
}

// drainOnce waits for the event of an upload and drains the queue with the
// real binary.
func (p *pipeline) drainOnce(t testing.TB) {
	t.Helper()
	p.waitQueued(t, 1, 30*time.Second)
	c := startChild(t, p.env(names.EnvVisibilityTimeout+"=30"), "drain")
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("drain exit code %d", code)
	}
}

// runRecord is the part of a run record these tests read.
type runRecord struct {
	RunID        string `json:"run_id"`
	Status       string `json:"status"`
	ConfigSHA256 string `json:"config_sha256"`
	Version      string `json:"version"`
	Source       struct {
		Key       string `json:"key"`
		VersionID string `json:"version_id"`
		ETag      string `json:"etag"`
	} `json:"source"`
}

// runRecords reads the run records of the config key.
func (p *pipeline) runRecords(t testing.TB, key string) []runRecord {
	t.Helper()
	var out []runRecord
	for _, k := range p.recordKeys(t) {
		b, ok := p.get(t, k)
		if !ok {
			t.Fatalf("record %s vanished", k)
		}
		var r runRecord
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("record %s: %v", k, err)
		}
		if r.Source.Key == key {
			out = append(out, r)
		}
	}
	return out
}

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
