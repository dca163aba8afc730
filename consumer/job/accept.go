package job

import (
	"context"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/edp-pipelines/edp/consumer/event"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/names"
)

// QueueProcessor runs the jobs the work queue asks for: it is the
// worker.Processor of the consumer's drain and serve modes. For each
// message it decodes the body (consumer/event), accepts only configs of
// its bucket under its prefix with a names.ConfigSuffixes ending, and runs
// them with Runner. A message it must not act on — not an event it knows,
// another bucket, a key that is not a config — is a poison message
// (event.Poison), a permanent failure, so the message goes to the
// dead-letter queue with the reason; so is a run that failed permanently.
// Both wrap the one sentinel, failure.ErrPermanent, which the worker reads:
// nothing is translated on the way. S3's test event asks for nothing: it
// is skipped.
type QueueProcessor struct {
	// Runner runs the jobs (required).
	Runner *Runner
	// Bucket is the pipeline bucket (required): messages naming another
	// bucket are refused.
	Bucket string
	// ConfigPrefix is the only key prefix run; default names.ConfigPrefix.
	ConfigPrefix string
}

// Process implements worker.Processor.
func (q *QueueProcessor) Process(ctx context.Context, m *worker.Message) (worker.Result, error) {
	ev, err := q.accept([]byte(m.Body))
	if err != nil {
		return worker.Result{}, err
	}
	if ev.Kind == event.KindTestEvent {
		return worker.Result{Skip: fmt.Sprintf("S3 test event for bucket %q", ev.Bucket)}, nil
	}
	eventTime := ev.Time
	if eventTime.IsZero() {
		eventTime = m.SentAt // a manual submit has no event time
	}
	m.Begin(ctx, eventTime, slog.String("s3_key", ev.Key), slog.String("format", string(ev.Format)))
	res, err := q.Runner.Run(ctx, Source{
		Bucket: ev.Bucket, Key: ev.Key, VersionID: ev.VersionID, ETag: ev.ETag, Sequencer: ev.Sequencer,
		EventTime: eventTime, Attempt: m.ReceiveCount,
	})
	return worker.Result{RunID: res.RunID, Duplicate: res.Duplicate}, err
}

// accept decodes a work-queue message body and refuses a config event
// that names another bucket, or a key outside the prefix or without a
// config suffix. Every error it returns is an event.Poison.
func (q *QueueProcessor) accept(body []byte) (event.Message, error) {
	ev, err := event.Parse(body)
	if err != nil || ev.Kind != event.KindConfig {
		return ev, err
	}
	if ev.Bucket != q.Bucket {
		return ev, event.Poison("bucket %q is not the pipeline bucket %q", ev.Bucket, q.Bucket)
	}
	prefix := q.ConfigPrefix
	if prefix == "" {
		prefix = names.ConfigPrefix
	}
	if !strings.HasPrefix(ev.Key, prefix) || !slices.Contains(names.ConfigSuffixes, path.Ext(ev.Key)) {
		return ev, event.Poison("key %q is not a config (%s*{%s})", ev.Key, prefix, strings.Join(names.ConfigSuffixes, ","))
	}
	return ev, nil
}
