package stackview

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edp-pipelines/edp/internal/runrecord"
)

func TestDepthOf(t *testing.T) {
	got := DepthOf(map[string]string{"ApproximateNumberOfMessages": "7", "ApproximateNumberOfMessagesNotVisible": "2"})
	if got != (QueueDepth{Visible: 7, InFlight: 2}) {
		t.Errorf("DepthOf = %+v, want 7 visible, 2 in flight", got)
	}
	if got := DepthOf(nil); got != (QueueDepth{}) {
		t.Errorf("DepthOf(nil) = %+v, want zero", got)
	}
}

// The run table shows each run's artifacts as one folder, the upload →
// start and → done times, and what waits in the DLQ with its reason.
func TestWriteTable(t *testing.T) {
	up := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	acc := 0.9667
	runs := []runrecord.Record{{
		Status: "succeeded", ModelType: "RandomForestClassifier", Accuracy: &acc,
		StartedAt: up.Add(1500 * time.Millisecond), FinishedAt: up.Add(2 * time.Second),
		Artifacts: []string{"artifacts/rf-v1/r1/model.json", "artifacts/rf-v1/r1/metrics.json"},
	}}
	runs[0].Source.Key = "configs/rf.yaml"
	var b bytes.Buffer
	WriteTable(&b, runs, map[string]time.Time{"configs/rf.yaml": up}, []DeadLetter{{Key: "configs/bad.yaml", Reason: "not valid YAML"}})
	for _, want := range []string{"configs/rf.yaml", "succeeded", "0.967", "1.5s", "2s", "artifacts/rf-v1/r1/{model.json,metrics.json}",
		"dead-letter queue: 1 message(s)", "configs/bad.yaml: not valid YAML"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// A DLQ message that is not an S3 event is shown by its (cut) body.
func TestObjectKeyOf(t *testing.T) {
	if got := objectKeyOf(`{"detail":{"object":{"key":"configs/a b.yaml"}}}`); got != "configs/a b.yaml" {
		t.Errorf("objectKeyOf(event) = %q", got)
	}
	if got := objectKeyOf(strings.Repeat("x", 100)); len([]rune(got)) != 61 || !strings.HasSuffix(got, "…") {
		t.Errorf("objectKeyOf(long body) = %q, want 60 characters and an ellipsis", got)
	}
	// A cut never splits a character (a byte cut at 60 turned "ü" into an
	// invalid half).
	if got := objectKeyOf("x" + strings.Repeat("ü", 50)); !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
		t.Errorf("objectKeyOf(multibyte body) = %q, want valid UTF-8 ending in an ellipsis", got)
	}
}
