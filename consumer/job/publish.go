package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// maxPublishAttempts bounds how often a run re-reads the pointer after a
// conditional write lost a race. Each loss means another run of the same
// version published in between, so a handful is plenty; running out is a
// transient failure, and the redelivery publishes.
const maxPublishAttempts = 5

// ReadPointer returns the pointer of versionFolder (a key prefix ending in
// "/", such as "artifacts/rf-v2/"; "" when st is rooted at the folder).
// Before any run of the version has published, the error matches
// store.ErrNotFound: the version has no artifacts yet, whatever files runs
// in progress have written.
func ReadPointer(ctx context.Context, st store.Store, versionFolder string) (runrecord.Pointer, error) {
	p, _, err := readPointer(ctx, st, versionFolder)
	return p, err
}

// errBadPointer marks a pointer that exists but cannot be used.
var errBadPointer = errors.New("invalid pointer")

// readPointer is ReadPointer that also returns the pointer object's ETag,
// which a conditional write replacing it needs. An unusable pointer is an
// error matching errBadPointer, still with the ETag.
func readPointer(ctx context.Context, st store.Store, versionFolder string) (runrecord.Pointer, string, error) {
	key := names.PointerKey(versionFolder)
	obj, err := st.Get(ctx, key)
	if err != nil {
		return runrecord.Pointer{}, "", fmt.Errorf("read pointer %s: %w", key, err)
	}
	var p runrecord.Pointer
	if err := json.Unmarshal(obj.Body, &p); err != nil {
		return runrecord.Pointer{}, obj.ETag, fmt.Errorf("read pointer %s: %w: %w", key, errBadPointer, err)
	}
	// The run id becomes part of keys: refuse anything but what RunID makes.
	if p.Format != runrecord.PointerFormat || !runrecord.IsRunID(p.RunID) {
		return runrecord.Pointer{}, obj.ETag, fmt.Errorf("read pointer %s: %w: format %q, run id %q", key, errBadPointer, p.Format, p.RunID)
	}
	return p, obj.ETag, nil
}

// publish is the built-in job's publish step: publishFiles with the
// model's accuracy in the record.
func (j *run) publish(ctx context.Context, cfg *config.Config, t trained, sw *stopwatch) (Result, error) {
	acc := t.metrics.Accuracy
	j.rec.Accuracy = &acc
	pub, err := j.publishFiles(ctx, cfg.Run.Version, t.files, sw)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		RunID: j.rec.RunID, Version: cfg.Run.Version, Status: runrecord.StatusSucceeded, ModelType: cfg.Model.Type,
		Accuracy: acc, ArtifactPrefix: pub.prefix, PointerKey: pub.pointerKey, SupersededBy: pub.supersededBy,
		RecordKey: j.recordKey(), TrainSize: t.metrics.TrainSize, TestSize: t.metrics.TestSize, Artifacts: j.rec.Artifacts,
	}
	j.logSuccess(res)
	return res, nil
}

// published is where publishFiles put a run.
type published struct {
	prefix, pointerKey, supersededBy string
}

// publishFiles writes files into the run's own folder of version, run.json
// last; only then may the pointer name the run, and only once the pointer
// is decided does the record say the run succeeded, so that a redelivery
// finding that record has nothing left to do.
func (j *run) publishFiles(ctx context.Context, version string, files []file, sw *stopwatch) (published, error) {
	folder := names.VersionFolder(j.s.artifactPrefix, version)
	prefix := names.RunFolder(folder, j.rec.RunID)
	ptr := runrecord.Pointer{Format: runrecord.PointerFormat, Version: version, RunID: j.rec.RunID, Upload: j.upload()}
	if err := j.writeFiles(ctx, prefix, files, &ptr); err != nil {
		return published{}, err
	}
	sw.lap("write")
	j.rec.Status = runrecord.StatusSucceeded
	j.finish()
	if err := j.s.out.Put(ctx, prefix+runrecord.RunFile, j.recordJSON(), "application/json"); err != nil {
		return published{}, fmt.Errorf("write run record: %w", err)
	}
	ptr.PublishedAt = j.s.now().UTC()
	supersededBy, err := j.publishPointer(ctx, folder, ptr)
	if err != nil {
		return published{}, err
	}
	j.rec.SupersededBy = supersededBy
	if err := j.s.out.Put(ctx, j.recordKey(), j.recordJSON(), "application/json"); err != nil {
		return published{}, fmt.Errorf("write run record: %w", err)
	}
	return published{prefix: prefix, pointerKey: names.PointerKey(folder), supersededBy: supersededBy}, nil
}

// writeFiles writes files into the run's folder prefix, recording each key
// and adding each name, and run.json's, to ptr.Files. run.json itself is
// written after, when the record is complete.
func (j *run) writeFiles(ctx context.Context, prefix string, files []file, ptr *runrecord.Pointer) error {
	for _, f := range files {
		key := prefix + f.name
		if err := j.put(ctx, key, f); err != nil {
			return fmt.Errorf("write artifact: %w", err)
		}
		j.rec.Artifacts = append(j.rec.Artifacts, key)
		ptr.Files = append(ptr.Files, f.name)
	}
	j.rec.Artifacts = append(j.rec.Artifacts, prefix+runrecord.RunFile)
	ptr.Files = append(ptr.Files, runrecord.RunFile)
	return nil
}

// put writes one file: its body, or the output file it names, streamed.
func (j *run) put(ctx context.Context, key string, f file) error {
	if f.disk == nil {
		return j.s.out.Put(ctx, key, f.body, f.contentType)
	}
	h, err := f.disk.Open()
	if err != nil {
		return err
	}
	defer h.Close()
	return store.PutFileOf(ctx, j.s.out, key, h, f.disk.Size, f.contentType)
}

// logSuccess logs a succeeded run, published or superseded.
func (j *run) logSuccess(res Result) {
	if res.SupersededBy != "" {
		j.log.Info("run succeeded; not published: the version serves a run of a later upload", "model_type", res.ModelType,
			"accuracy", res.Accuracy, "duration_ms", j.rec.DurationMS, "artifact_prefix", res.ArtifactPrefix, "superseded_by", res.SupersededBy)
		return
	}
	j.log.Info("run succeeded", "model_type", res.ModelType, "accuracy", res.Accuracy,
		"duration_ms", j.rec.DurationMS, "artifact_prefix", res.ArtifactPrefix, "pointer_key", res.PointerKey)
}

// publishPointer makes p's run the one its version folder serves, unless the
// pointer already names a run of a later upload; then it returns that
// run's id and writes nothing. It is the run's commit point: before it, the
// run's files are invisible to readers; after it, they are the version's.
//
// With a store that has conditional writes (S3), the pointer is replaced
// only if it is still the one read, so two runs publishing at once cannot
// both win, nor can a run of an older upload replace a newer one's pointer;
// a lost race reads again and decides again. Other stores (a local
// directory) check the order the same way, but a run publishing between the
// read and the write is not detected.
func (j *run) publishPointer(ctx context.Context, versionFolder string, p runrecord.Pointer) (supersededBy string, err error) {
	key := names.PointerKey(versionFolder)
	body, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return "", fmt.Errorf("marshal pointer: %w", err)
	}
	body = append(body, '\n')
	cas, conditional := j.s.out.(store.ConditionalPutter)
	for attempt := 1; ; attempt++ {
		cur, etag, err := readPointer(ctx, j.s.out, versionFolder)
		switch {
		case errors.Is(err, store.ErrNotFound):
			etag = "" // create: only if still absent
		case errors.Is(err, errBadPointer):
			// Unusable: replace it (only if it is still that object).
			j.log.WarnContext(ctx, "replacing an invalid pointer", "pointer_key", key, "error", err.Error())
		case err != nil:
			return "", err
		case cur.RunID == p.RunID:
			return "", nil // published before (this is a retry)
		case cur.Upload.After(p.Upload):
			return cur.RunID, nil
		}
		if !conditional {
			if err := j.s.out.Put(ctx, key, body, "application/json"); err != nil {
				return "", fmt.Errorf("publish %s: %w", key, err)
			}
			return "", nil
		}
		err = cas.PutIfMatch(ctx, key, body, "application/json", etag)
		if err == nil {
			return "", nil
		}
		if !errors.Is(err, store.ErrPreconditionFailed) || attempt == maxPublishAttempts {
			return "", fmt.Errorf("publish %s: %w", key, err)
		}
		j.log.InfoContext(ctx, "pointer changed while publishing; reading it again", "pointer_key", key, "attempt", attempt)
	}
}
