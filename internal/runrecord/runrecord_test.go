package runrecord

import (
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// "null" is no version: the identity is the ETag with the sequencer, exactly
// as for an event without a version id.
func TestRunIDTreatsNullAsNoVersion(t *testing.T) {
	t.Parallel()
	base := Source{Bucket: "b", Key: "configs/c.yaml", ETag: "9b2cf535f27731c974343645a3985328", Sequencer: "0055AED6DCD90281E5"}
	null := base
	null.VersionID = "null"
	if RunID(null, nil) != RunID(base, nil) {
		t.Error(`version id "null" changed the run id`)
	}
	later := base
	later.Sequencer = "0055AED6DCD90281E6"
	if RunID(later, nil) == RunID(base, nil) {
		t.Error("two uploads of the same content (different sequencers) share a run id")
	}
	versioned := base
	versioned.VersionID = "3HL4kqtJlcpXroDTDmJ"
	if RunID(versioned, nil) == RunID(base, nil) {
		t.Error("a real version id is not the identity")
	}
}

// The JSON names are the contract with every reader: a record and a pointer
// with every field set encode exactly as the fixtures in testdata, which
// docs/pipeline.md describes, and decode back to themselves.
func TestJSONNames(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 23, 16, 59, 0, 0, time.UTC)
	acc := 0.9667
	for _, tt := range []struct {
		file string
		v    any
		new  func() any
	}{
		{"record.json", &Record{
			Format: Format, RunID: "0123456789abcdef0123456789abcdef", Status: StatusFailed,
			Source:  Source{Bucket: "b", Key: "configs/rf.yaml", VersionID: "v1", ETag: "e", Sequencer: "0055", Time: at},
			Version: "rf-v2", ModelType: "RandomForestClassifier", Accuracy: &acc, TrainSize: 120, TestSize: 30,
			Seeds:        &Seeds{Split: 42, Model: 7, Derived: []string{"model"}},
			ConfigSHA256: "c0ffee", StartedAt: at, FinishedAt: at.Add(time.Second), DurationMS: 1000,
			TimingsMS: map[string]float64{"fit": 12.5}, ToolVersion: "dev", Error: "boom", Permanent: true,
			Reason: "overwritten", Artifacts: []string{"artifacts/rf-v2/runs/r/run.json"}, SupersededBy: "fedcba9876543210fedcba9876543210",
		}, func() any { return new(Record) }},
		{"pointer.json", &Pointer{
			Format: PointerFormat, Version: "rf-v2", RunID: "0123456789abcdef0123456789abcdef", Files: []string{ModelFile, RunFile},
			Upload: Upload{Key: "configs/rf.yaml", Time: at, Sequencer: "0055"}, PublishedAt: at,
		}, func() any { return new(Pointer) }},
	} {
		got, err := json.MarshalIndent(tt.v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile("testdata/" + tt.file)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)+"\n"); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.file, diff)
		}
		back := tt.new()
		if err := json.Unmarshal(want, back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.v, back); diff != "" {
			t.Errorf("%s does not decode back (-want +got):\n%s", tt.file, diff)
		}
	}
}

func TestIsRunID(t *testing.T) {
	t.Parallel()
	if id := RunID(Source{Bucket: "b", Key: "k"}, []byte("x")); !IsRunID(id) {
		t.Errorf("IsRunID(RunID(...) = %q) = false", id)
	}
	for _, s := range []string{"", "../../etc", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde"} {
		if IsRunID(s) {
			t.Errorf("IsRunID(%q) = true", s)
		}
	}
}
