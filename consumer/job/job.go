// Package job runs one pipeline job end to end: read a config object, parse
// and validate it, split the embedded Iris dataset, train, evaluate, write
// the artifacts into the run's own folder, publish them as the version's
// current run and, last, write the run record.
//
// A version folder is always coherent: each run writes its files under
// <ArtifactPrefix><version>/runs/<run-id>/, which no other run touches, and
// then replaces the folder's pointer, latest.json, which names the run
// readers use (ReadPointer). The pointer write is the run's commit point;
// a run in progress, or one that failed half way, is invisible to readers.
// Runs of the same version are ordered by their uploads
// (runrecord.Upload.After), so a run of an older upload that finishes last
// does not replace the pointer to a newer one. The record and pointer
// formats are internal/runrecord's, which their readers import too.
//
// Runs are idempotent. The run id is derived from the source object's
// identity (bucket, key and version id, else ETag and sequencer, else
// content hash; the version id "null" of unversioned buckets is none), every
// random choice not fixed by the config is seeded from the run id, and a run
// whose succeeded record already exists is not repeated: re-delivering the
// same message yields the same artifacts and one record. Failures are
// recorded too (status "failed") and classified: errors.Is(err,
// failure.ErrPermanent) marks those that retrying cannot fix: a bad or
// oversized config, an unknown model, a missing object, an invalid
// version, a panic. Every other error from Run is transient. A panic
// during a run, including one on a goroutine the training started, is such
// a failure ("panic: ..."), with the stack in the log.
package job

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
)

// Source identifies the config object that triggered a run.
type Source struct {
	// Bucket is informational (S3 bucket, or "" for local runs); it is part
	// of the run id.
	Bucket string
	// Key is the key of the config within Runner.In.
	Key string
	// VersionID is optional, from the event. When set, it is the object's
	// identity: the run id is derived from it and exactly that version is
	// read. "" and "null" (what S3 reports for objects in unversioned and
	// versioning-suspended buckets, the same for every upload of a key)
	// mean the object has no version of its own.
	VersionID string
	// ETag is optional, from the event. Without a version id, the ETag and
	// the Sequencer are the object's identity, and the object read must
	// still have this ETag: if the key was overwritten since the event, the
	// run is skipped (runrecord.StatusSkipped), as the newer upload has
	// its own event.
	ETag string
	// Sequencer is optional, from the event (S3's detail.object.sequencer):
	// with the ETag, it tells apart two uploads of the same content to a
	// key without versions, so re-uploading a config runs it again. It also
	// orders uploads of the same key (runrecord.Upload.After).
	Sequencer string
	// EventTime is optional: when the upload happened, from the event. It
	// orders the runs of one version (runrecord.Upload.After). Zero: the
	// time the run started stands for it.
	EventTime time.Time
	// Attempt is optional: which delivery of the work this run is (the
	// message's receive count, from 1). A command job gets it as
	// EDP_ATTEMPT; it plays no part in the run id.
	Attempt int
}

// Runner runs jobs. The zero value is not usable: In must be set. It is safe
// for concurrent use by multiple goroutines.
type Runner struct {
	// In is where configs are read. Required.
	In store.Store
	// Out is where artifacts and records are written. Default: In.
	Out store.Store
	// ArtifactPrefix prefixes artifact keys. Default names.ArtifactPrefix
	// ("artifacts/"); a missing trailing slash is added.
	ArtifactPrefix string
	// RecordPrefix prefixes run record keys. Default names.RecordPrefix
	// ("runs/"); a missing trailing slash is added.
	RecordPrefix string
	// Logger receives one line per run outcome. Default: discard.
	Logger *slog.Logger
	// Version is the tool version written into records. Default "dev".
	Version string
	// Now is the clock for records' timings. Default time.Now.
	Now func() time.Time
	// Task names where runs run, for the recent-runs index (the ECS task
	// ARN). Default: host name and process id.
	Task string
	// Command, when set, makes every run a command job (docs/jobs.md):
	// the config is handed to the stack's command instead of the built-in
	// Iris trainer. Default nil: the built-in job.
	Command *CommandJob
}

// Result describes a finished run.
type Result struct {
	// RunID identifies the run (and names its record).
	RunID string
	// Version is the config's run_config.version ("" if unknown).
	Version string
	// Status is runrecord.StatusSucceeded, StatusFailed or StatusSkipped.
	Status string
	// ModelType is the config's model.type ("" if unknown).
	ModelType string
	// Accuracy is the test-set accuracy of a succeeded run.
	Accuracy float64
	// ArtifactPrefix is where the run's artifacts are, its own folder, e.g.
	// "artifacts/rf-v2/runs/<run-id>/".
	ArtifactPrefix string
	// PointerKey is the version folder's pointer, e.g.
	// "artifacts/rf-v2/latest.json"; it names this run unless SupersededBy
	// is set.
	PointerKey string
	// SupersededBy is set when the run succeeded but was not published:
	// the pointer already named that run, of a later upload of the version.
	SupersededBy string
	// RecordKey is the run record's key, e.g. "runs/<run-id>.json".
	RecordKey string
	// Duplicate is true when a succeeded record already existed and
	// nothing was rewritten.
	Duplicate bool
	// Duration is how long this call took.
	Duration time.Duration
	// TrainSize and TestSize are the split's row counts.
	TrainSize, TestSize int
	// Artifacts lists the keys written (or, for a duplicate, recorded).
	Artifacts []string
}

// settings are the Runner's fields with defaults applied.
type settings struct {
	in, out                      store.Store
	artifactPrefix, recordPrefix string
	log                          *slog.Logger
	version                      string
	now                          func() time.Time
	command                      *CommandJob
	task                         string
}

func (r *Runner) settings() (settings, error) {
	if r.In == nil {
		return settings{}, errors.New("job: Runner.In is nil")
	}
	s := settings{
		in: r.In, out: r.Out,
		artifactPrefix: withSlash(r.ArtifactPrefix, names.ArtifactPrefix),
		recordPrefix:   withSlash(r.RecordPrefix, names.RecordPrefix),
		log:            r.Logger, version: r.Version, now: r.Now, command: r.Command, task: r.Task,
	}
	if s.task == "" {
		host, _ := os.Hostname()
		s.task = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	if s.out == nil {
		s.out = s.in
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.version == "" {
		s.version = "dev"
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

func withSlash(p, def string) string {
	if p == "" {
		return def
	}
	if p[len(p)-1] != '/' {
		return p + "/"
	}
	return p
}
