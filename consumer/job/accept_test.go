package job

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

const acceptBucket = "edp-pipelines-123456789012"

// submit is a manual submit's body for key in bucket.
func submit(bucket, key string) string {
	return `{"config": "s3://` + bucket + `/` + key + `"}`
}

// eventFixture is a message body from consumer/event's fixtures: real
// shapes of what S3 and EventBridge send.
func eventFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "event", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Messages the consumer must not act on are permanent failures with the
// reason: they go to the dead-letter queue, and no job runs (the processor
// has no Runner here: running one would panic).
func TestQueueProcessorRefuses(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body, prefix, want string
	}{
		"garbage":           {body: "hello, queue", want: "not a JSON object"},
		"unknown JSON":      {body: eventFixture(t, "unknown_json.json"), want: "poison"},
		"deleted object":    {body: eventFixture(t, "eventbridge_object_deleted.json"), want: "poison"},
		"another bucket":    {body: submit("someone-else", "configs/ok.yaml"), want: `bucket "someone-else" is not the pipeline bucket "` + acceptBucket + `"`},
		"outside prefix":    {body: submit(acceptBucket, "artifacts/v1/model.json"), want: `key "artifacts/v1/model.json" is not a config (configs/*{.yaml,.yml,.json})`},
		"wrong suffix":      {body: submit(acceptBucket, "configs/notes.txt"), want: "is not a config"},
		"suffix not at end": {body: submit(acceptBucket, "configs/a.yaml.txt"), want: "is not a config"},
		"its own prefix":    {body: submit(acceptBucket, "configs/a.yaml"), prefix: "team-a/", want: "(team-a/*{.yaml,.yml,.json})"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			q := &QueueProcessor{Bucket: acceptBucket, ConfigPrefix: tt.prefix}
			_, err := q.Process(context.Background(), &worker.Message{ID: "m", Body: tt.body})
			if !errors.Is(err, failure.ErrPermanent) || !strings.HasPrefix(err.Error(), "poison message: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Process() = %v, want a permanent poison error mentioning %q", err, tt.want)
			}
		})
	}
}

// S3's test event asks for nothing: it is skipped, with no job.
func TestQueueProcessorSkipsTestEvents(t *testing.T) {
	t.Parallel()
	q := &QueueProcessor{Bucket: acceptBucket}
	res, err := q.Process(context.Background(), &worker.Message{ID: "m", Body: eventFixture(t, "s3_test_event.json")})
	if err != nil || !strings.Contains(res.Skip, "S3 test event") {
		t.Errorf("Process() = %+v, %v: want a skip naming the S3 test event", res, err)
	}
}

// An accepted config runs: its record names the object, and a manual
// submit, which has no event time, is timed by the message's send time. A
// config that cannot run is a permanent failure for the worker too.
func TestQueueProcessorRunsAcceptedConfigs(t *testing.T) {
	t.Parallel()
	dir := store.NewDir(t.TempDir())
	ctx := context.Background()
	configs := map[string]string{
		"configs/team-a/tree.yml": "run_config:\n  version: tree\nmodel:\n  type: DecisionTreeClassifier\n  params:\n    max_depth: 2\n",
		"configs/bad.yaml":        "model:\n  type: SupportVectorMachine\n",
	}
	for key, body := range configs {
		if err := dir.Put(ctx, key, []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	q := &QueueProcessor{Runner: &Runner{In: dir, Version: "test"}, Bucket: acceptBucket}
	sent := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

	res, err := q.Process(ctx, &worker.Message{ID: "m1", Body: submit(acceptBucket, "configs/team-a/tree.yml"), SentAt: sent})
	if err != nil || res.RunID == "" || res.Duplicate {
		t.Fatalf("Process() = %+v, %v: want a fresh run", res, err)
	}
	obj, err := dir.Get(ctx, "runs/"+res.RunID+".json")
	if err != nil {
		t.Fatal(err)
	}
	var rec runrecord.Record
	if err := json.Unmarshal(obj.Body, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Status != runrecord.StatusSucceeded || rec.Source.Bucket != acceptBucket || rec.Source.Key != "configs/team-a/tree.yml" || !rec.Source.Time.Equal(sent) {
		t.Errorf("record %+v: want a success for the submitted key, timed by the message's send time", rec)
	}

	_, err = q.Process(ctx, &worker.Message{ID: "m2", Body: submit(acceptBucket, "configs/bad.yaml"), SentAt: sent})
	if !errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), "SupportVectorMachine") {
		t.Errorf("Process() = %v, want a permanent failure naming the model", err)
	}
}

// Every route that must not be retried reaches the worker as the one
// sentinel it reads, failure.ErrPermanent, with nothing translated on the
// way; transient failures do not.
func TestEveryPermanentRouteIsTheOneSentinel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := store.NewDir(t.TempDir())
	for key, body := range map[string]string{
		"configs/bad.yaml": "model:\n  type: SupportVectorMachine\n",
		"configs/big.yaml": "run_config:\n  version: big\n" + strings.Repeat("# padding\n", 1<<14),
	} {
		if err := dir.Put(ctx, key, []byte(body), ""); err != nil {
			t.Fatal(err)
		}
	}
	q := &QueueProcessor{Runner: &Runner{In: dir, Version: "test"}, Bucket: acceptBucket}
	for name, body := range map[string]string{
		"not JSON":           "hello, queue",
		"unknown event":      eventFixture(t, "unknown_json.json"),
		"wrong event kind":   eventFixture(t, "eventbridge_object_deleted.json"),
		"wrong bucket":       submit("someone-else", "configs/ok.yaml"),
		"key not a config":   submit(acceptBucket, "configs/notes.txt"),
		"key outside prefix": submit(acceptBucket, "artifacts/v1/model.json"),
		"bad config":         submit(acceptBucket, "configs/bad.yaml"),
		"oversized config":   submit(acceptBucket, "configs/big.yaml"),
		"missing config":     submit(acceptBucket, "configs/gone.yaml"),
	} {
		_, err := q.Process(ctx, &worker.Message{ID: "m", Body: body})
		if !errors.Is(err, failure.ErrPermanent) {
			t.Errorf("%s: Process() = %v, want an error matching failure.ErrPermanent", name, err)
		}
	}

	// A store that fails for a moment is not permanent.
	flaky := &QueueProcessor{Runner: &Runner{In: failingStore{errors.New("throttled")}, Version: "test"}, Bucket: acceptBucket}
	if _, err := flaky.Process(ctx, &worker.Message{ID: "m", Body: submit(acceptBucket, "configs/ok.yaml")}); err == nil || errors.Is(err, failure.ErrPermanent) {
		t.Errorf("Process() with a throttled store = %v, want a transient error", err)
	}
}

// failingStore fails every call with err.
type failingStore struct{ err error }

func (f failingStore) Get(context.Context, string) (store.Object, error) {
	return store.Object{}, f.err
}
func (f failingStore) Put(context.Context, string, []byte, string) error { return f.err }
