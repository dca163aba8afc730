package job

import (
	"context"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/runrecord"
)

// A bucket without versions reports version id "null" for every upload of
// a key, so a re-upload must be told apart by its ETag and sequencer: it is
// a new run, trained on the new content, with a record of its own.
func TestReuploadIsANewRun(t *testing.T) {
	t.Parallel()
	first := []byte("run_config: {version: reup}\nmodel: {type: DecisionTreeClassifier, params: {max_depth: 1}}\n")
	second := []byte("run_config: {version: reup}\nmodel: {type: DecisionTreeClassifier, params: {max_depth: 3}}\n")
	tests := []struct {
		name           string
		event1, event2 Source
	}{
		{"versioned",
			Source{VersionID: "3HL4kqtJlcpXroDTDmJ", ETag: etagOf(first), Sequencer: "0055AED6DCD90281E5"},
			Source{VersionID: "Tk2n0Wmq5rB8aX1c4E", ETag: etagOf(second), Sequencer: "0055AED6DCD90281E6"}},
		{"unversioned or suspended",
			Source{VersionID: "null", ETag: etagOf(first), Sequencer: "0055AED6DCD90281E5"},
			Source{VersionID: "null", ETag: etagOf(second), Sequencer: "0055AED6DCD90281E6"}},
		{"no version id at all",
			Source{ETag: etagOf(first), Sequencer: "0055AED6DCD90281E5"},
			Source{ETag: etagOf(second), Sequencer: "0055AED6DCD90281E6"}},
		{"unchanged content uploaded again",
			Source{VersionID: "null", ETag: etagOf(first), Sequencer: "0055AED6DCD90281E5"},
			Source{VersionID: "null", ETag: etagOf(first), Sequencer: "0055AED6DCD90281F0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body2 := second
			if tt.event2.ETag == tt.event1.ETag {
				body2 = first
			}
			r, _, _ := setup(t, map[string][]byte{"c.yaml": first})
			ctx := context.Background()
			src1, src2 := tt.event1, tt.event2
			src1.Bucket, src1.Key, src2.Bucket, src2.Key = "b", "configs/c.yaml", "b", "configs/c.yaml"
			res1, err := r.Run(ctx, src1)
			if err != nil || res1.Status != runrecord.StatusSucceeded {
				t.Fatalf("first upload: %+v, %v", res1, err)
			}
			if err := r.In.Put(ctx, "configs/c.yaml", body2, ""); err != nil {
				t.Fatal(err)
			}
			res2, err := r.Run(ctx, src2)
			if err != nil || res2.Status != runrecord.StatusSucceeded || res2.Duplicate || res2.RunID == res1.RunID {
				t.Fatalf("re-upload: %+v, %v; want a new succeeded run (first run %s)", res2, err, res1.RunID)
			}
			rec := readRecord(t, r.Out, res2.RecordKey)
			if rec.ConfigSHA256 != sha256Hex(body2) || rec.Source.VersionID == "null" || rec.Source.Sequencer != src2.Sequencer {
				t.Errorf("second record %+v: want the new content's hash, no \"null\" version, the event's sequencer", rec)
			}
			// The first upload's record still stands.
			if got := readRecord(t, r.Out, res1.RecordKey); got.Status != runrecord.StatusSucceeded || got.RunID != res1.RunID {
				t.Errorf("first record %+v", got)
			}
			// A redelivery of the second event is a duplicate.
			if again, err := r.Run(ctx, src2); err != nil || !again.Duplicate || again.RunID != res2.RunID {
				t.Errorf("redelivery of the re-upload's event: %+v, %v; want a duplicate", again, err)
			}
		})
	}
}

// A key without versions overwritten between the event and the read: the
// event's upload is gone and the newer one runs on its own event, so this
// run trains nothing and records why.
func TestOverwrittenBeforeReadIsSkipped(t *testing.T) {
	t.Parallel()
	announced := []byte("run_config: {version: gone}\nmodel: {type: DecisionTreeClassifier}\n")
	now := []byte("run_config: {version: newer}\nmodel: {type: DecisionTreeClassifier}\n")
	r, rec, _ := setup(t, map[string][]byte{"c.yaml": now})
	src := Source{Bucket: "b", Key: "configs/c.yaml", VersionID: "null", ETag: strings.Trim(etagOf(announced), `"`), Sequencer: "0A"}
	res, err := r.Run(context.Background(), src)
	if err != nil || res.Status != runrecord.StatusSkipped || res.RecordKey == "" {
		t.Fatalf("Run = %+v, %v; want skipped with a record, no error", res, err)
	}
	got := readRecord(t, rec, res.RecordKey)
	if got.Status != runrecord.StatusSkipped || got.Error != "" || !strings.Contains(got.Reason, "overwritten") ||
		!strings.Contains(got.Reason, strings.Trim(etagOf(now), `"`)) || got.Version != "" {
		t.Errorf("record %+v: want skipped with the reason naming both ETags", got)
	}
	for _, k := range rec.putKeys() {
		if !strings.HasPrefix(k, "runs/") {
			t.Errorf("a skipped run wrote %s", k)
		}
	}
	// The newer upload's own event runs it.
	newer := Source{Bucket: "b", Key: "configs/c.yaml", VersionID: "null", ETag: strings.Trim(etagOf(now), `"`), Sequencer: "0B"}
	if res, err := r.Run(context.Background(), newer); err != nil || res.Status != runrecord.StatusSucceeded || res.Version != "newer" {
		t.Errorf("newer upload: %+v, %v", res, err)
	}
}
