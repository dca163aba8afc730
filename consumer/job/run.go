package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/ml"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// failureRecordTimeout bounds writing a failure record after the run's own
// context ended (cancellation must not stop us from recording why).
const failureRecordTimeout = 30 * time.Second

// permanent wraps err so that errors.Is(err, failure.ErrPermanent) holds;
// its message starts with the sentinel's, "permanent failure: ", as the
// record's Error says.
func permanent(err error) error { return fmt.Errorf("%w: %w", failure.ErrPermanent, err) }

// Run processes one config end to end: read -> parse/validate -> split ->
// train -> evaluate -> write artifacts into the run's own folder,
// <ArtifactPrefix><version>/runs/<run-id>/, run.json last -> publish the
// version's pointer, <ArtifactPrefix><version>/latest.json, unless it names
// a run of a later upload -> write the run record,
// <RecordPrefix><run-id>.json, last of all.
//
// If a succeeded record for the run id already exists, Run returns it with
// Result.Duplicate set and rewrites nothing. On failure it writes a failure
// record when a run id can be derived and returns an error;
// errors.Is(err, failure.ErrPermanent) tells permanent failures from transient ones.
func (r *Runner) Run(ctx context.Context, src Source) (Result, error) {
	s, err := r.settings()
	if err != nil {
		return Result{Status: runrecord.StatusFailed}, err
	}
	src.VersionID = runrecord.OwnVersion(src.VersionID)
	j := &run{s: s, src: src, start: s.now()}
	j.rec = runrecord.Record{
		Format: runrecord.Format, Status: runrecord.StatusFailed, ToolVersion: s.version,
		Source:    src.identity(),
		TimingsMS: map[string]float64{},
		Job:       names.JobIris, Attempt: src.Attempt,
	}
	if s.command != nil {
		j.rec.Job, j.rec.Command = names.JobCommand, s.command.Spec.Argv
	}
	j.log = s.log.With("s3_key", src.Key)
	res, err := j.doRecovered(ctx)
	res.Duration = s.now().Sub(j.start)
	if err != nil {
		res.Status = runrecord.StatusFailed
		j.recordFailure(ctx, err)
		res.RunID, res.RecordKey = j.rec.RunID, j.recordKey()
		res.Version, res.ModelType = j.rec.Version, j.rec.ModelType
	}
	if !res.Duplicate && res.Status != "" {
		j.putEntry(ctx, res.Status)
	}
	return res, err
}

// entryTimeout bounds writing a recent-runs index entry.
const entryTimeout = 10 * time.Second

// putEntry writes the run's entry of the recent-runs index
// (runrecord.Entry) as status. The index only helps readers find recent
// runs: a failed write is logged, and the run goes on.
func (j *run) putEntry(ctx context.Context, status string) {
	if j.rec.RunID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), entryTimeout)
	defer cancel()
	now := j.s.now()
	e := runrecord.Entry{
		Format: runrecord.EntryFormat, RunID: j.rec.RunID, Status: status, Key: j.src.Key, Job: j.rec.Job,
		Version: j.rec.Version, Attempt: j.src.Attempt, Task: j.s.task, UploadedAt: j.src.EventTime.UTC(), StartedAt: j.start.UTC(),
	}
	if status != runrecord.StatusRunning {
		e.FinishedAt, e.DurationMS = now.UTC(), now.Sub(j.start).Milliseconds()
		e.Error, e.Permanent = textlimit.Clip(j.rec.Error, runrecord.MaxEntryError), j.rec.Permanent
	}
	body, err := json.Marshal(e)
	if err != nil {
		panic("job: marshal index entry: " + err.Error())
	}
	key := runrecord.EntryKey(j.s.recordPrefix+"recent/", now, j.rec.RunID, status)
	if err := j.s.out.Put(ctx, key, append(body, '\n'), "application/json"); err != nil {
		j.log.WarnContext(ctx, "could not write the recent-runs index entry", "key", key, "error", err.Error())
	}
}

// run is the state of one Run call.
type run struct {
	s     settings
	src   Source
	start time.Time
	rec   runrecord.Record
	log   *slog.Logger
}

func (j *run) recordKey() string {
	if j.rec.RunID == "" {
		return ""
	}
	return j.s.recordPrefix + j.rec.RunID + ".json"
}

func (j *run) setRunID(id string) {
	j.rec.RunID = id
	j.log = j.log.With("run_id", id)
}

// doRecovered is do with a panic turned into a permanent failure (a bug
// that a retry would hit again): the run gets its failure record and the
// stack goes to the log, and the process, with every other job in it, lives
// on.
func (j *run) doRecovered(ctx context.Context) (res Result, err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		stack := debug.Stack()
		// A panic carried over from a goroutine the fit started: its own
		// stack says where it happened.
		var pe *ml.PanicError
		if e, ok := v.(error); ok && errors.As(e, &pe) {
			stack = pe.Stack
		}
		j.log.ErrorContext(ctx, "job panicked", "panic", fmt.Sprint(v), "stack", string(stack))
		res, err = Result{}, permanent(fmt.Errorf("panic: %v", v))
	}()
	return j.do(ctx)
}

func (j *run) do(ctx context.Context) (Result, error) {
	if j.src.Key == "" {
		return Result{}, permanent(errors.New("run: source key is empty"))
	}
	if j.src.VersionID != "" || j.src.ETag != "" {
		j.setRunID(runrecord.RunID(j.src.identity(), nil))
		if res, ok, err := j.duplicate(ctx); ok || err != nil {
			return res, err
		}
	}
	// Train on exactly the version the event announced, even if the key was
	// overwritten since, and read no more of it than a config may be.
	obj, err := store.GetConfig(ctx, j.s.in, j.src.Key, j.src.VersionID, j.maxConfigBytes())
	if big := (*store.ConfigTooLargeError)(nil); j.rec.RunID == "" && errors.As(err, &big) && big.VersionID+big.ETag != "" {
		// Refused unread, so not hashed: name the run by the identity the
		// store reported, so that its failure is still recorded.
		j.setRunID(runrecord.RunID(runrecord.Source{Bucket: j.src.Bucket, Key: j.src.Key, VersionID: big.VersionID, ETag: big.ETag}, nil))
	}
	if err != nil {
		err = fmt.Errorf("read config %s: %w", j.src.Key, err)
		if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrTooLarge) {
			err = permanent(err)
		}
		return Result{}, err
	}
	j.rec.ConfigSHA256 = sha256Hex(obj.Body)
	if j.rec.RunID == "" {
		j.setRunID(runrecord.RunID(j.src.identity(), obj.Body))
		if res, ok, err := j.duplicate(ctx); ok || err != nil {
			return res, err
		}
	}
	if j.src.VersionID == "" && j.src.ETag != "" && obj.ETag != "" && !sameETag(obj.ETag, j.src.ETag) {
		return j.skipOverwritten(ctx, obj.ETag)
	}
	j.putEntry(ctx, runrecord.StatusRunning)
	if j.s.command != nil {
		return j.executeCommand(ctx, obj.Body)
	}
	return j.execute(ctx, obj.Body)
}

// maxConfigBytes is the largest config the run reads: the command job's
// limit, or the built-in parser's own.
func (j *run) maxConfigBytes() int64 {
	if j.s.command != nil {
		return j.s.command.maxConfigBytes()
	}
	return config.MaxBytes
}

// duplicate returns the result of an earlier succeeded run with this run
// id, if there is one.
func (j *run) duplicate(ctx context.Context) (Result, bool, error) {
	prev, err := j.readRecord(ctx)
	if err != nil || prev == nil || prev.Status != runrecord.StatusSucceeded {
		return Result{}, false, err
	}
	// The record is written after the run published (or found a later
	// upload's run published), so there is nothing left to do.
	folder := names.VersionFolder(j.s.artifactPrefix, prev.Version)
	j.log.Info("run already succeeded; nothing rewritten", "artifact_version", prev.Version)
	res := Result{
		RunID: prev.RunID, Version: prev.Version, Status: runrecord.StatusSucceeded, ModelType: prev.ModelType,
		ArtifactPrefix: names.RunFolder(folder, prev.RunID), PointerKey: names.PointerKey(folder),
		SupersededBy: prev.SupersededBy, RecordKey: j.recordKey(), Duplicate: true,
		TrainSize: prev.TrainSize, TestSize: prev.TestSize, Artifacts: prev.Artifacts,
	}
	if n := len(prev.Artifacts); n > 0 {
		// Where the files really are, also for a record of the layout
		// before run folders (artifacts/<version>/run.json).
		res.ArtifactPrefix = strings.TrimSuffix(prev.Artifacts[n-1], runrecord.RunFile)
	}
	if prev.Accuracy != nil {
		res.Accuracy = *prev.Accuracy
	}
	return res, true, nil
}

// readRecord returns the stored record for this run id, nil if there is
// none or it is unreadable (a later write replaces it).
func (j *run) readRecord(ctx context.Context) (*runrecord.Record, error) {
	obj, err := j.s.out.Get(ctx, j.recordKey())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run record %s: %w", j.recordKey(), err)
	}
	var prev runrecord.Record
	if json.Unmarshal(obj.Body, &prev) != nil {
		return nil, nil
	}
	return &prev, nil
}

// execute trains on the config body and publishes the result: the run's
// parse step, the pure split and train steps, then the publish step.
func (j *run) execute(ctx context.Context, body []byte) (Result, error) {
	sw := newStopwatch(j.s.now, j.rec.TimingsMS)
	cfg, err := j.parse(body)
	if err != nil {
		return Result{}, err
	}
	sw.lap("parse")
	s, err := split(cfg)
	if err != nil {
		return Result{}, permanent(err)
	}
	j.rec.TrainSize, j.rec.TestSize = s.train.Rows(), s.test.Rows()
	sw.lap("split")
	t, err := train(cfg, s, configFile(j.src.Key, body), sw.lap)
	if err != nil {
		return Result{}, permanent(err)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run: %w", err)
	}
	return j.publish(ctx, cfg, t, sw)
}

// parse parses and validates the config, records what it names and fills
// in its absent random states from the run id.
func (j *run) parse(body []byte) (*config.Config, error) {
	cfg, err := config.Parse(body)
	if err != nil {
		return nil, permanent(fmt.Errorf("parse config %s: %w", j.src.Key, err))
	}
	j.rec.Version, j.rec.ModelType = cfg.Run.Version, cfg.Model.Type
	j.log = j.log.With("artifact_version", cfg.Run.Version)
	j.rec.Seeds = seed(cfg, j.rec.RunID)
	return cfg, nil
}

// stopwatch times a run's steps into its record's timings.
type stopwatch struct {
	now     func() time.Time
	last    time.Time
	timings map[string]float64
}

func newStopwatch(now func() time.Time, timings map[string]float64) *stopwatch {
	return &stopwatch{now: now, last: now(), timings: timings}
}

// lap records the milliseconds since the previous lap (or the start) as
// step's timing.
func (w *stopwatch) lap(step string) {
	now := w.now()
	w.timings[step] = float64(now.Sub(w.last).Microseconds()) / 1000
	w.last = now
}

// upload is the upload this run trains on, as it orders the runs of a
// version.
func (j *run) upload() runrecord.Upload {
	u := runrecord.Upload{Key: j.src.Key, Time: j.src.EventTime, Sequencer: j.src.Sequencer}
	if u.Time.IsZero() {
		u.Time = j.start
	}
	u.Time = u.Time.UTC()
	return u
}

func (j *run) finish() {
	end := j.s.now()
	j.rec.StartedAt, j.rec.FinishedAt = j.start.UTC(), end.UTC()
	j.rec.DurationMS = end.Sub(j.start).Milliseconds()
}

func (j *run) recordJSON() []byte {
	b, err := json.MarshalIndent(j.rec, "", "  ")
	if err != nil {
		panic("job: marshal record: " + err.Error())
	}
	return append(b, '\n')
}

// recordFailure writes the failure record, unless no run id could be
// derived, a succeeded record exists (a concurrent delivery of the same
// message won; its record must stand), or the existing record cannot be
// read (it might be a succeeded one).
func (j *run) recordFailure(ctx context.Context, runErr error) {
	if j.rec.RunID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), failureRecordTimeout)
	defer cancel()
	j.rec.Status = runrecord.StatusFailed
	j.rec.Error = runErr.Error()
	j.rec.Permanent = errors.Is(runErr, failure.ErrPermanent)
	j.rec.Accuracy, j.rec.Artifacts, j.rec.Reason = nil, nil, ""
	written, err := j.putRecordUnlessSucceeded(ctx)
	switch {
	case errors.Is(err, errRecordUnreadable):
		// Unknown whether a succeeded record exists: writing could replace
		// it. The run error still reaches the caller (and, for permanent
		// failures, the DLQ message carries the reason).
		j.log.Warn("failure record not written: existing record unreadable", "error", err.Error())
	case err != nil:
		j.log.Warn("could not write failure record", "error", err.Error())
	case written:
		j.log.Info("failure recorded", "record_key", j.recordKey(), "permanent", j.rec.Permanent)
	}
}

// errRecordUnreadable marks putRecordUnlessSucceeded's error when the
// existing record could not be read.
var errRecordUnreadable = errors.New("existing record unreadable")

// putRecordUnlessSucceeded writes the run's record as it stands, unless a
// succeeded record of the run exists (a concurrent delivery of the same
// upload won; its record must stand). It reports whether it wrote; when the
// existing record cannot be read it writes nothing, as that record might
// be a succeeded one, and its error matches errRecordUnreadable.
func (j *run) putRecordUnlessSucceeded(ctx context.Context) (bool, error) {
	prev, err := j.readRecord(ctx)
	if err != nil {
		return false, fmt.Errorf("%w: %w", errRecordUnreadable, err)
	}
	if prev != nil && prev.Status == runrecord.StatusSucceeded {
		return false, nil
	}
	j.finish()
	if err := j.s.out.Put(ctx, j.recordKey(), j.recordJSON(), "application/json"); err != nil {
		return false, fmt.Errorf("write run record: %w", err)
	}
	return true, nil
}
