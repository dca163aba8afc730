package job

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"
)

// Record is the run record, written as JSON to <RecordPrefix><run-id>.json
// for every run (last of all) and, for a succeeded run, also into the run's
// folder as run.json, its last file before the pointer is published (that
// copy lacks SupersededBy, which is known only after). docs/pipeline.md
// documents it.
type Record struct {
	// Format is RecordFormat.
	Format string `json:"format"`
	// RunID identifies the run.
	RunID string `json:"run_id"`
	// Status is StatusSucceeded, StatusFailed or StatusSkipped.
	Status string `json:"status"`
	// Source is the config object that triggered the run.
	Source RecordSource `json:"source"`
	// Version is run_config.version, once the config parsed.
	Version string `json:"version,omitempty"`
	// ModelType is model.type, once the config parsed.
	ModelType string `json:"model_type,omitempty"`
	// Accuracy is the test accuracy of a succeeded run.
	Accuracy *float64 `json:"accuracy,omitempty"`
	// TrainSize and TestSize are the split's row counts.
	TrainSize int `json:"train_size,omitempty"`
	TestSize  int `json:"test_size,omitempty"`
	// Seeds are the random states used; Derived says which were absent
	// from the config and derived from the run id.
	Seeds *Seeds `json:"seeds,omitempty"`
	// ConfigSHA256 is the hex SHA-256 of the config bytes as read.
	ConfigSHA256 string `json:"config_sha256,omitempty"`
	// StartedAt and FinishedAt bound the run (UTC).
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	// DurationMS is FinishedAt - StartedAt in milliseconds.
	DurationMS int64 `json:"duration_ms"`
	// TimingsMS breaks the run down by step (parse, split, fit, evaluate,
	// write), in milliseconds.
	TimingsMS map[string]float64 `json:"timings_ms,omitempty"`
	// ToolVersion is the consumer version that ran the job.
	ToolVersion string `json:"tool_version"`
	// Error is the failure, for status "failed".
	Error string `json:"error,omitempty"`
	// Permanent tells whether a failure is permanent (retrying cannot fix
	// it) or transient.
	Permanent bool `json:"permanent,omitempty"`
	// Reason says why a run was skipped, for status "skipped".
	Reason string `json:"reason,omitempty"`
	// Artifacts lists the artifact keys of a succeeded run, run.json last.
	Artifacts []string `json:"artifacts,omitempty"`
	// SupersededBy is set when a succeeded run was not published because
	// the version's pointer already named that run, of a later upload.
	SupersededBy string `json:"superseded_by,omitempty"`
}

// RecordSource is Record.Source.
type RecordSource struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"version_id"`
	ETag      string `json:"etag"`
	Sequencer string `json:"sequencer,omitempty"`
	// Time is the upload's time, from the event (absent when unknown).
	Time time.Time `json:"time,omitzero"`
}

// Seeds are the random states a run used.
type Seeds struct {
	// Split seeds train_test_split.
	Split int64 `json:"split_random_state"`
	// Model seeds the estimator.
	Model int64 `json:"model_random_state"`
	// Derived lists which of "split" and "model" were absent from the
	// config and derived from the run id.
	Derived []string `json:"derived,omitempty"`
}

// RunID returns the run id for src whose content is body (used only when
// src has neither a version id nor an ETag): 32 hex digits of a SHA-256 over
// the bucket, key and object identity. The identity is the version id if
// the object has one of its own, else the ETag with the sequencer (so that
// every upload to a key without versions, even of unchanged content, is a
// run of its own), else the content.
func RunID(src Source, body []byte) string {
	ident := "sha256:" + sha256Hex(body)
	switch v := ownVersion(src.VersionID); {
	case v != "":
		ident = "version:" + v
	case src.ETag != "":
		ident = "etag:" + src.ETag
		if src.Sequencer != "" {
			ident += "\x00sequencer:" + src.Sequencer
		}
	}
	sum := sha256.Sum256([]byte(src.Bucket + "\x00" + src.Key + "\x00" + ident))
	return hex.EncodeToString(sum[:16])
}

// nullVersion is the version id S3 reports for an object written while its
// bucket was unversioned or had versioning suspended: every such upload of
// a key has it, so it identifies nothing.
const nullVersion = "null"

// ownVersion is versionID, or "" when it names no version of its own.
func ownVersion(versionID string) string {
	if versionID == nullVersion {
		return ""
	}
	return versionID
}

// sameETag reports whether two ETags are equal; S3 quotes them in HTTP
// headers but not in events.
func sameETag(a, b string) bool {
	return strings.Trim(a, `"`) == strings.Trim(b, `"`)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// derivedSeed is the random state used when the config has none: a hash of
// the run id and purpose, in scikit-learn's random_state range so the
// resolved config can carry it.
func derivedSeed(runID, purpose string) int64 {
	sum := sha256.Sum256([]byte(runID + "/" + purpose))
	return int64(binary.BigEndian.Uint32(sum[:4]))
}
