package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// Two configs of one version, uploaded a minute apart, whose events reach
// the consumer in the opposite order (a delayed delivery, a retry): the
// version folder must end up serving the later upload's run, through the
// real binary, so the event's time has to reach the job.
func TestLaterUploadWinsWhateverTheOrderOfRuns(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	ctx := context.Background()
	// No events from S3 itself: this test delivers them, in its own order.
	if _, err := p.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(p.bucket), NotificationConfiguration: &s3types.NotificationConfiguration{},
	}); err != nil {
		t.Fatal(err)
	}
	const version = "order-v1"
	earlier := p.upload(t, "configs/earlier.yaml", strings.Replace(treeConfig(version), "max_depth: 3", "max_depth: 1", 1))
	later := p.upload(t, "configs/later.yaml", treeConfig(version))
	t0 := time.Date(2026, 5, 6, 7, 8, 0, 0, time.UTC)

	p.sendEvent(t, later, t0.Add(time.Minute))
	p.drainOnce(t)
	p.sendEvent(t, earlier, t0)
	p.drainOnce(t)

	runs := map[string]runRecord{}
	for _, key := range []string{earlier.key, later.key} {
		rs := p.runRecords(t, key)
		if len(rs) != 1 || rs[0].Status != runrecord.StatusSucceeded {
			t.Fatalf("%s: records %+v, want one succeeded", key, rs)
		}
		runs[key] = rs[0]
	}
	folder := names.VersionFolder(names.ArtifactPrefix, version)
	ptr, err := job.ReadPointer(ctx, store.NewS3(p.s3, p.bucket), folder)
	if err != nil || ptr.RunID != runs[later.key].RunID {
		t.Fatalf("pointer %+v, %v: want the later upload's run %s, not the earlier's %s (which ran last)",
			ptr, err, runs[later.key].RunID, runs[earlier.key].RunID)
	}
	if !ptr.Upload.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("pointer upload time %v, want the event's %v", ptr.Upload.Time, t0.Add(time.Minute))
	}
	var rec struct {
		SupersededBy string `json:"superseded_by"`
	}
	b, _ := p.get(t, names.RecordPrefix+runs[earlier.key].RunID+".json")
	if err := json.Unmarshal(b, &rec); err != nil || rec.SupersededBy != runs[later.key].RunID {
		t.Errorf("the earlier upload's record: superseded_by %q, %v; want the later run", rec.SupersededBy, err)
	}
	p.assertQueueEmpty(t)
	p.assertDLQEmpty(t)
}

// uploaded is what an S3 event says about an upload.
type uploaded struct {
	key, etag, versionID string
	size                 int
}

// upload puts body at key and returns what its event would carry.
func (p *pipeline) upload(t testing.TB, key, body string) uploaded {
	t.Helper()
	out, err := p.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(p.bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return uploaded{key: key, etag: strings.Trim(aws.ToString(out.ETag), `"`), versionID: aws.ToString(out.VersionId), size: len(body)}
}

// sendEvent queues the EventBridge "Object Created" event of u as it
// happened at when.
func (p *pipeline) sendEvent(t testing.TB, u uploaded, when time.Time) {
	t.Helper()
	ev := map[string]any{
		"version": "0", "id": "e2e-" + u.versionID, "detail-type": "Object Created", "source": "aws.s3",
		"account": "123456789012", "time": when.Format(time.RFC3339), "region": "us-east-1",
		"resources": []string{"arn:aws:s3:::" + p.bucket},
		"detail": map[string]any{
			"version": "0",
			"bucket":  map[string]string{"name": p.bucket},
			"object":  map[string]any{"key": u.key, "size": u.size, "etag": u.etag, "version-id": u.versionID, "sequencer": "0062E99A88DC407460"},
			"reason":  "PutObject",
		},
	}
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(p.queueURL), MessageBody: aws.String(string(body))}); err != nil {
		t.Fatalf("send event: %v", err)
	}
}
