package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"github.com/edp-pipelines/edp/consumer/command"
	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/ml"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// The pure half of a run: from a parsed config to a model, its metrics and
// the bytes of every artifact but run.json. Nothing here reads a store, a
// clock or the environment, so equal inputs give equal outputs; Run adds
// the run id's seeds before and writes the files after.

// Metrics is the content of metrics.json.
type Metrics struct {
	ModelType     string  `json:"model_type"`
	TrainSize     int     `json:"train_size"`
	TestSize      int     `json:"test_size"`
	TrainAccuracy float64 `json:"train_accuracy"`
	ml.Metrics
}

// file is one artifact of a run's folder: body, or the output file disk
// of a command job.
type file struct {
	name, contentType string
	body              []byte
	disk              *command.File
}

// seed fills in cfg's absent random states with ones derived from runID
// (random across uploads, fixed across re-deliveries of the same one) and
// returns the seeds cfg now holds.
func seed(cfg *config.Config, runID string) *runrecord.Seeds {
	seeds := &runrecord.Seeds{}
	if cfg.Split.RandomState == nil {
		v := derivedSeed(runID, "split")
		cfg.Split.RandomState = &v
		seeds.Derived = append(seeds.Derived, "split")
	}
	if cfg.Model.Params.RandomState == nil {
		v := derivedSeed(runID, "model")
		cfg.Model.Params.RandomState = &v
		seeds.Derived = append(seeds.Derived, "model")
	}
	seeds.Split, seeds.Model = *cfg.Split.RandomState, *cfg.Model.Params.RandomState
	return seeds
}

// sample is the embedded Iris dataset split as a config says, with the fit
// settings resolved against it.
type sample struct {
	iris        *ml.Dataset
	train, test *ml.Dataset
	testRows    []int
	fit         ml.Params
}

// split resolves cfg against the embedded Iris dataset and splits it.
// cfg's random states must be set (seed).
func split(cfg *config.Config) (sample, error) {
	iris := ml.Iris()
	pl, err := resolve(cfg, iris)
	if err != nil {
		return sample{}, err
	}
	pl.split.Seed, pl.fit.Seed = uint64(*cfg.Split.RandomState), uint64(*cfg.Model.Params.RandomState)
	trainRows, testRows, err := ml.TrainTestSplit(iris, pl.split)
	if err != nil {
		return sample{}, err
	}
	return sample{
		iris: iris, train: iris.Subset(trainRows), test: iris.Subset(testRows),
		testRows: testRows, fit: pl.fit,
	}, nil
}

// trained is what the train step produces.
type trained struct {
	model   *ml.Model
	metrics Metrics
	// files are every artifact but run.json, in the order they are written.
	files []file
}

// train fits cfg's model on s's training rows, evaluates it and renders the
// artifacts; uploaded is the config as uploaded (configFile). lap, if not
// nil, is called after the "fit" and "evaluate" steps, for the record's
// timings.
func train(cfg *config.Config, s sample, uploaded file, lap func(step string)) (trained, error) {
	if lap == nil {
		lap = func(string) {}
	}
	model, err := ml.Fit(s.train, s.fit)
	if err != nil {
		return trained{}, err
	}
	lap("fit")
	metrics := Metrics{
		ModelType: cfg.Model.Type, TrainSize: s.train.Rows(), TestSize: s.test.Rows(),
		TrainAccuracy: ml.Evaluate(s.train.ClassNames, s.train.Y, model.PredictAll(s.train)).Accuracy,
		Metrics:       ml.Evaluate(s.test.ClassNames, s.test.Y, model.PredictAll(s.test)),
	}
	lap("evaluate")
	files, err := render(cfg, s, model, metrics, uploaded)
	if err != nil {
		return trained{}, err
	}
	return trained{model: model, metrics: metrics, files: files}, nil
}

// render renders every artifact except run.json. All of them depend only
// on the config bytes and the seeds, so equal inputs give equal bytes.
func render(cfg *config.Config, s sample, model *ml.Model, metrics Metrics, uploaded file) ([]file, error) {
	modelJSON, err := model.Marshal()
	if err != nil {
		return nil, err
	}
	metricsJSON, err := json.MarshalIndent(metrics, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal metrics: %w", err)
	}
	csv, err := datasetCSV(s)
	if err != nil {
		return nil, err
	}
	return []file{
		{name: runrecord.ModelFile, contentType: "application/json", body: modelJSON},
		{name: runrecord.MetricsFile, contentType: "application/json", body: append(metricsJSON, '\n')},
		{name: runrecord.DatasetFile, contentType: "text/csv", body: csv},
		uploaded,
		{name: runrecord.ResolvedConfigFile, contentType: "application/json", body: cfg.JSON()},
	}, nil
}

// datasetCSV is the whole dataset with a split column saying where each
// row went.
func datasetCSV(s sample) ([]byte, error) {
	where := make([]string, s.iris.Rows())
	for i := range where {
		where[i] = "train"
	}
	for _, i := range s.testRows {
		where[i] = "test"
	}
	var csv bytes.Buffer
	if err := s.iris.WriteCSV(&csv, where); err != nil {
		return nil, fmt.Errorf("write dataset CSV: %w", err)
	}
	return csv.Bytes(), nil
}

// configFile is the artifact of the config as uploaded under key: named
// config.yaml, config.yml or config.json after the key's extension
// (config.yaml for any other), with the matching content type.
func configFile(key string, raw []byte) file {
	ext := strings.ToLower(path.Ext(key))
	ctype := "application/yaml"
	switch ext {
	case ".json":
		ctype = "application/json"
	case ".yaml", ".yml":
	default:
		ext = ".yaml"
	}
	return file{name: "config" + ext, contentType: ctype, body: raw}
}
