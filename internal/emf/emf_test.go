package emf

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEmit(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &Writer{
		W: &buf, Namespace: "EDP", Dimensions: map[string]string{"Mode": "serve"},
		Now: func() time.Time { return time.UnixMilli(1795000000123) },
	}
	err := w.Emit([]Metric{
		{Name: "JobsSucceeded", Unit: Count, Value: 1},
		{Name: "JobDuration", Unit: Milliseconds, Value: 1234.5},
	}, map[string]any{"run_id": "r1", "JobsSucceeded": "shadowed"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), "}\n") || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("want exactly one line, got %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"_aws": map[string]any{
			"Timestamp": float64(1795000000123),
			"CloudWatchMetrics": []any{map[string]any{
				"Namespace":  "EDP",
				"Dimensions": []any{[]any{"Mode"}},
				"Metrics": []any{
					map[string]any{"Name": "JobsSucceeded", "Unit": "Count"},
					map[string]any{"Name": "JobDuration", "Unit": "Milliseconds"},
				},
			}},
		},
		"Mode":          "serve",
		"JobsSucceeded": float64(1),
		"JobDuration":   1234.5,
		"run_id":        "r1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("EMF line mismatch (-want +got):\n%s", diff)
	}
}

func TestEmitWithoutDimensions(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &Writer{W: &buf, Namespace: "EDP", Now: func() time.Time { return time.UnixMilli(1795000000123) }}
	if err := w.Emit([]Metric{{Name: "Dispatched", Unit: Count, Value: 2}}, nil); err != nil {
		t.Fatal(err)
	}
	want := `{"Dispatched":2,"_aws":{"CloudWatchMetrics":[{"Namespace":"EDP","Dimensions":[[]],"Metrics":[{"Name":"Dispatched","Unit":"Count"}]}],"Timestamp":1795000000123}}` + "\n"
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("EMF line (-want +got):\n%s", diff)
	}
}

func TestEmitNilAndConcurrent(t *testing.T) {
	t.Parallel()
	var nilW *Writer
	if err := nilW.Emit([]Metric{{Name: "X", Value: 1}}, nil); err != nil {
		t.Fatalf("nil writer: %v", err)
	}
	var buf bytes.Buffer
	w := &Writer{W: &buf, Namespace: "EDP"}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { _ = w.Emit([]Metric{{Name: "JobsFailed", Unit: Count, Value: 1}}, nil) })
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 50 {
		t.Fatalf("got %d lines, want 50", len(lines))
	}
	for _, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Fatalf("interleaved or invalid line %q", l)
		}
	}
}

func TestDecodeReadsWhatEmitWrote(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &Writer{W: &buf, Namespace: "EDP", Dimensions: map[string]string{"Mode": "drain", "Cluster": "c1"}}
	err := w.Emit([]Metric{{Name: "JobsSucceeded", Unit: Count, Value: 1}, {Name: "JobDuration", Unit: Milliseconds, Value: 12.5}},
		map[string]any{"run_id": "r1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := Line{
		Namespace:  "EDP",
		Dimensions: map[string]string{"Mode": "drain", "Cluster": "c1"},
		Metrics:    map[string]float64{"JobsSucceeded": 1, "JobDuration": 12.5},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded line (-want +got):\n%s", diff)
	}
}

func TestDecodeRejectsLinesCloudWatchWouldNotRead(t *testing.T) {
	t.Parallel()
	for name, line := range map[string]string{
		"not JSON":          `{"_aws":`,
		"no directive":      `{"X":1,"_aws":{"CloudWatchMetrics":[]}}`,
		"two directives":    `{"X":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[[]],"Metrics":[{"Name":"X"}]},{"Namespace":"B","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]}}`,
		"missing metric":    `{"_aws":{"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]}}`,
		"string metric":     `{"X":"1","_aws":{"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]}}`,
		"missing dimension": `{"X":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[["Mode"]],"Metrics":[{"Name":"X"}]}]}}`,
		"no dimension set":  `{"X":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[],"Metrics":[{"Name":"X"}]}]}}`,
	} {
		if _, err := Decode([]byte(line)); err == nil {
			t.Errorf("%s: Decode(%s) succeeded, want an error", name, line)
		}
	}
}
