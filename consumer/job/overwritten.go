package job

import (
	"context"
	"fmt"

	"github.com/edp-pipelines/edp/internal/runrecord"
)

// skipOverwritten ends a run whose source, a key without versions, no longer
// holds the upload its event announced: the key was overwritten before the
// config was read (objectETag is what it holds now). That upload's content
// is gone, and the upload that replaced it has an event of its own, which
// runs it under its own run id; training the new content here too would
// run it twice. So nothing is trained: the run is recorded as skipped with
// the reason, and the message is settled.
func (j *run) skipOverwritten(ctx context.Context, objectETag string) (Result, error) {
	j.rec.Status = runrecord.StatusSkipped
	j.rec.Reason = fmt.Sprintf("config overwritten before it was read: the event announced ETag %s, the key now holds ETag %s; the newer upload runs on its own event",
		j.src.ETag, objectETag)
	j.log.InfoContext(ctx, "config overwritten since its event; run skipped",
		"event_etag", j.src.ETag, "object_etag", objectETag)
	if _, err := j.putRecordUnlessSucceeded(ctx); err != nil {
		return Result{}, fmt.Errorf("record skipped run: %w", err)
	}
	return Result{RunID: j.rec.RunID, Status: runrecord.StatusSkipped, RecordKey: j.recordKey()}, nil
}
