package job

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// parsed parses a fixture and seeds it as a run with runID would.
func parsed(t *testing.T, name, runID string) (*config.Config, *runrecord.Seeds) {
	t.Helper()
	cfg, err := config.Parse(fixture(t, name))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return cfg, seed(cfg, runID)
}

// trainFixture runs the pure split and train steps on a fixture.
func trainFixture(t *testing.T, name, runID string, lap func(string)) trained {
	t.Helper()
	cfg, _ := parsed(t, name, runID)
	s, err := split(cfg)
	if err != nil {
		t.Fatalf("split: %v", err)
	}
	out, err := train(cfg, s, configFile("configs/"+name, fixture(t, name)), lap)
	if err != nil {
		t.Fatalf("train: %v", err)
	}
	return out
}

func fileNames(files []file) []string {
	var names []string
	for _, f := range files {
		names = append(names, f.name)
	}
	return names
}

// The train step needs nothing but the config: it gives a working model,
// its metrics and every artifact but run.json, in the order they are
// written, and reports each step it timed.
func TestTrainGivesModelMetricsAndFiles(t *testing.T) {
	t.Parallel()
	var laps []string
	out := trainFixture(t, "rf.yaml", "run-1", func(step string) { laps = append(laps, step) })
	if diff := cmp.Diff([]string{"fit", "evaluate"}, laps); diff != "" {
		t.Errorf("laps (-want +got):\n%s", diff)
	}
	if got := out.model.ClassNames[out.model.Predict([]float64{6.7, 3.0, 5.2, 2.3})]; got != "virginica" {
		t.Errorf("model predicts %s for a virginica", got)
	}
	m := out.metrics
	if got, want := [3]any{m.ModelType, m.TrainSize, m.TestSize}, [3]any{config.RandomForest, 105, 45}; got != want {
		t.Errorf("metrics model type and sizes = %v, want %v", got, want)
	}
	if m.Accuracy < 0.9 {
		t.Errorf("accuracy %v, want >= 0.9", m.Accuracy)
	}
	want := []string{runrecord.ModelFile, runrecord.MetricsFile, runrecord.DatasetFile, "config.yaml", runrecord.ResolvedConfigFile}
	if diff := cmp.Diff(want, fileNames(out.files)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if !bytes.Equal(out.files[3].body, fixture(t, "rf.yaml")) {
		t.Error("config.yaml is not the config as uploaded")
	}
	if n := strings.Count(string(out.files[2].body), ",test\n"); n != 45 {
		t.Errorf("dataset.csv marks %d test rows, want 45", n)
	}
}

// Equal inputs give byte-equal files; other derived seeds give another
// model.
func TestTrainIsDeterministic(t *testing.T) {
	t.Parallel()
	a := trainFixture(t, "unseeded.json", "run-1", nil)
	b := trainFixture(t, "unseeded.json", "run-1", nil)
	for i := range a.files {
		if !bytes.Equal(a.files[i].body, b.files[i].body) {
			t.Errorf("%s differs between two trainings of the same input", a.files[i].name)
		}
	}
	c := trainFixture(t, "unseeded.json", "run-2", nil)
	if bytes.Equal(a.files[0].body, c.files[0].body) {
		t.Error("another run id's derived seeds gave the same model")
	}
}

func TestSeedFillsOnlyAbsentRandomStates(t *testing.T) {
	t.Parallel()
	_, fixed := parsed(t, "rf.yaml", "run-1")
	if diff := cmp.Diff(&runrecord.Seeds{Split: 42, Model: 42}, fixed); diff != "" {
		t.Errorf("seeds of a seeded config (-want +got):\n%s", diff)
	}
	cfg, derived := parsed(t, "unseeded.json", "run-1")
	want := &runrecord.Seeds{Split: derivedSeed("run-1", "split"), Model: derivedSeed("run-1", "model"), Derived: []string{"split", "model"}}
	if diff := cmp.Diff(want, derived); diff != "" {
		t.Errorf("seeds of an unseeded config (-want +got):\n%s", diff)
	}
	if *cfg.Split.RandomState != want.Split || *cfg.Model.Params.RandomState != want.Model {
		t.Errorf("config holds random states %d/%d, want the derived %d/%d",
			*cfg.Split.RandomState, *cfg.Model.Params.RandomState, want.Split, want.Model)
	}
}

func TestSplitRefusesWhatResolveRefuses(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte("train_test_split: {test_size: 150, random_state: 1}\nmodel: {type: DecisionTreeClassifier, params: {random_state: 1}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := split(cfg); err == nil || !strings.Contains(err.Error(), "leaves no training rows") {
		t.Errorf("split error = %v, want no training rows", err)
	}
}

func TestConfigFileKeepsTheUploadsExtension(t *testing.T) {
	t.Parallel()
	tests := []struct{ key, name, contentType string }{
		{"configs/a.yaml", "config.yaml", "application/yaml"},
		{"configs/a.yml", "config.yml", "application/yaml"},
		{"configs/a.JSON", "config.json", "application/json"},
		{"configs/a", "config.yaml", "application/yaml"},
		{"configs/a.txt", "config.yaml", "application/yaml"},
	}
	for _, tt := range tests {
		f := configFile(tt.key, []byte("x"))
		if f.name != tt.name || f.contentType != tt.contentType || string(f.body) != "x" {
			t.Errorf("configFile(%q) = %s (%s), %q; want %s (%s)", tt.key, f.name, f.contentType, f.body, tt.name, tt.contentType)
		}
	}
}
