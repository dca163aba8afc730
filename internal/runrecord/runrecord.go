// Package runrecord is the contract between the consumer, which writes a
// run's record and its version folder's pointer, and every program that
// reads them (the smoke test, the local cloud's report, operator verbs):
// their types and JSON names, their format identifiers, the file names of a
// run's folder, and how a run id is derived from the config object it ran.
// docs/pipeline.md documents both formats. The keys they live under are
// internal/names' (RecordPrefix, RunFolder, PointerKey).
//
// Standard library only, so a reader can import it without importing the
// consumer.
package runrecord

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Format identifies the run record layout.
const Format = "edp.run/v1"

// Run statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	// StatusSkipped: the source object had been overwritten before the run
	// could read the upload that its event announced (a bucket without
	// versions keeps only the newest upload, which runs on its own event).
	// Nothing was trained; the record's Reason says why.
	StatusSkipped = "skipped"
)

// Artifact file names inside a run's folder,
// <ArtifactPrefix><version>/runs/<run-id>/ (names.RunFolder).
const (
	ModelFile          = "model.json"
	MetricsFile        = "metrics.json"
	DatasetFile        = "dataset.csv"
	ResolvedConfigFile = "config.resolved.json"
	RunFile            = "run.json"
)

// Record is the run record, written as JSON to <RecordPrefix><run-id>.json
// for every run (last of all) and, for a succeeded run, also into the run's
// folder as RunFile, its last file before the pointer is published (that
// copy lacks SupersededBy, which is known only after).
type Record struct {
	// Format is Format.
	Format string `json:"format"`
	// RunID identifies the run.
	RunID string `json:"run_id"`
	// Status is StatusSucceeded, StatusFailed or StatusSkipped.
	Status string `json:"status"`
	// Source is the config object that triggered the run.
	Source Source `json:"source"`
	// Version is the version folder the run publishes to: run_config.version
	// of an iris config once it parsed; for a command job, the config's
	// file name without its extension.
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

	// Job is the kind of job that ran: "iris" (the built-in trainer) or
	// "command" (the stack's command; docs/jobs.md).
	Job string `json:"job,omitempty"`
	// Command is the argv a command job ran.
	Command []string `json:"command,omitempty"`
	// ExitCode is a command job's exit status, absent when it did not
	// exit by itself (a signal ended it) or never started.
	ExitCode *int `json:"exit_code,omitempty"`
	// Signal names the signal that ended a command job ("killed").
	Signal string `json:"signal,omitempty"`
	// OutputTail is the end of a command job's stdout and stderr, at most
	// 4 KiB of UTF-8, cut at a character.
	OutputTail string `json:"output_tail,omitempty"`
	// Attempt is the delivery the run was (the message's receive count),
	// when known.
	Attempt int `json:"attempt,omitempty"`
}

// Source is Record.Source: the config object a run was asked to run.
type Source struct {
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

// RunID returns the run id of src (its Bucket, Key, VersionID, ETag and
// Sequencer; Time plays no part) whose content is body (used only when src
// has neither a version id nor an ETag): 32 hex digits of a SHA-256 over
// the bucket, key and object identity. The identity is the version id if
// the object has one of its own (OwnVersion), else the ETag with the
// sequencer (so that every upload to a key without versions, even of
// unchanged content, is a run of its own), else the content.
func RunID(src Source, body []byte) string {
	sum := sha256.Sum256(body)
	ident := "sha256:" + hex.EncodeToString(sum[:])
	switch v := OwnVersion(src.VersionID); {
	case v != "":
		ident = "version:" + v
	case src.ETag != "":
		ident = "etag:" + src.ETag
		if src.Sequencer != "" {
			ident += "\x00sequencer:" + src.Sequencer
		}
	}
	sum = sha256.Sum256([]byte(src.Bucket + "\x00" + src.Key + "\x00" + ident))
	return hex.EncodeToString(sum[:16])
}

// IsRunID reports whether s has the form RunID gives: 32 lowercase hex
// digits. A run id becomes part of keys; a reader refuses anything else.
func IsRunID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// nullVersion is the version id S3 reports for an object written while its
// bucket was unversioned or had versioning suspended: every such upload of
// a key has it, so it identifies nothing.
const nullVersion = "null"

// OwnVersion is versionID, or "" when it names no version of its own (S3's
// "null").
func OwnVersion(versionID string) string {
	if versionID == nullVersion {
		return ""
	}
	return versionID
}
