package job

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/ml"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return readBenchFixture(t, name)
}

func readBenchFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder wraps a store, logs Puts and can fail them.
type recorder struct {
	store.Store
	mu      sync.Mutex
	puts    []string
	failPut func(key string) error
	failGet func(key string) error
}

func (r *recorder) Get(ctx context.Context, key string) (store.Object, error) {
	r.mu.Lock()
	fail := r.failGet
	r.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return store.Object{}, err
		}
	}
	return r.Store.Get(ctx, key)
}

func (r *recorder) Put(ctx context.Context, key string, body []byte, ct string) error {
	r.mu.Lock()
	r.puts = append(r.puts, key)
	fail := r.failPut
	r.mu.Unlock()
	if fail != nil {
		if err := fail(key); err != nil {
			return err
		}
	}
	return r.Store.Put(ctx, key, body, ct)
}

func (r *recorder) putKeys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.puts)
}

// setup returns a runner over a temporary directory holding the given
// configs under configs/.
func setup(t *testing.T, configs map[string][]byte) (*Runner, *recorder, string) {
	t.Helper()
	root := t.TempDir()
	dir := store.NewDir(root)
	for name, body := range configs {
		if err := dir.Put(context.Background(), "configs/"+name, body, ""); err != nil {
			t.Fatal(err)
		}
	}
	rec := &recorder{Store: dir}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	return &Runner{
		In: dir, Out: rec, Version: "test",
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); clock = clock.Add(time.Millisecond); return clock },
	}, rec, root
}

// etagOf is S3's ETag of a single-part upload of body, as Dir reports it
// and an event carries it.
func etagOf(body []byte) string {
	sum := md5.Sum(body)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// currentFile reads the file name of the run that versionFolder's pointer
// names.
func currentFile(t *testing.T, s store.Store, versionFolder, name string) []byte {
	t.Helper()
	p, err := ReadPointer(context.Background(), s, versionFolder)
	if err != nil {
		t.Fatalf("read pointer: %v", err)
	}
	obj, err := s.Get(context.Background(), p.FileKey(versionFolder, name))
	if err != nil {
		t.Fatalf("read %s of run %s: %v", name, p.RunID, err)
	}
	return obj.Body
}

// countRecords counts the run records under root's runs/ (the recent-runs
// index, a folder there, aside).
func countRecords(t *testing.T, root string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			n++
		}
	}
	return n
}

func readRecord(t *testing.T, s store.Store, key string) runrecord.Record {
	t.Helper()
	obj, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("read record: %v", err)
	}
	var r runrecord.Record
	if err := json.Unmarshal(obj.Body, &r); err != nil {
		t.Fatalf("decode record: %v", err)
	}
	return r
}

func TestRunWritesArtifactsAndRecords(t *testing.T) {
	t.Parallel()
	r, rec, root := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	tag := etagOf(fixture(t, "rf.yaml"))
	res, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/rf.yaml", ETag: tag})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	runID := runrecord.RunID(runrecord.Source{Bucket: "b", Key: "configs/rf.yaml", ETag: tag}, nil) // derived from the ETag
	runDir := "artifacts/rf-v2/runs/" + runID + "/"
	// The run's files in its own folder, run.json last; then the pointer;
	// the record last of all.
	files := []string{runrecord.ModelFile, runrecord.MetricsFile, runrecord.DatasetFile, "config.yaml", runrecord.ResolvedConfigFile, runrecord.RunFile}
	var artifacts []string
	for _, f := range files {
		artifacts = append(artifacts, runDir+f)
	}
	wantRes := Result{
		RunID: runID, Version: "rf-v2", Status: runrecord.StatusSucceeded, ModelType: "RandomForestClassifier",
		ArtifactPrefix: runDir, PointerKey: "artifacts/rf-v2/latest.json", RecordKey: "runs/" + runID + ".json",
		TrainSize: 105, TestSize: 45, Artifacts: artifacts,
	}
	if diff := cmp.Diff(wantRes, res, cmpopts.IgnoreFields(Result{}, "Accuracy", "Duration")); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	if res.Accuracy < 0.9 {
		t.Errorf("accuracy %v, want >= 0.9", res.Accuracy)
	}
	wantPuts := append(slices.Clone(artifacts), "artifacts/rf-v2/latest.json", wantRes.RecordKey)
	puts := rec.putKeys()
	// The recent-runs index: an entry as the run starts, one as it ends.
	if len(puts) < 2 || !strings.HasSuffix(puts[0], runID+"-r.json") || !strings.HasSuffix(puts[len(puts)-1], runID+"-s.json") {
		t.Errorf("writes %v: want the running entry first and the succeeded entry last", puts)
	} else {
		puts = puts[1 : len(puts)-1]
	}
	if diff := cmp.Diff(wantPuts, puts); diff != "" {
		t.Errorf("writes (-want +got), the pointer and the run record must come last:\n%s", diff)
	}
	ptr, err := ReadPointer(context.Background(), rec, "artifacts/rf-v2/")
	if err != nil {
		t.Fatalf("read pointer: %v", err)
	}
	wantPtr := runrecord.Pointer{Format: runrecord.PointerFormat, Version: "rf-v2", RunID: runID, Files: files, Upload: runrecord.Upload{Key: "configs/rf.yaml"}}
	if diff := cmp.Diff(wantPtr, ptr, cmpopts.IgnoreFields(runrecord.Pointer{}, "Upload.Time", "PublishedAt")); diff != "" {
		t.Errorf("pointer (-want +got):\n%s", diff)
	}
	if ptr.Upload.Time.IsZero() || ptr.PublishedAt.IsZero() {
		t.Errorf("pointer upload time %v, published at %v; want both set", ptr.Upload.Time, ptr.PublishedAt)
	}

	r1 := readRecord(t, rec, res.RecordKey)
	r2 := readRecord(t, rec, runDir+"run.json")
	if diff := cmp.Diff(r1, r2); diff != "" {
		t.Errorf("the two record copies differ:\n%s", diff)
	}
	wantRec := runrecord.Record{
		Format: runrecord.Format, RunID: runID, Status: runrecord.StatusSucceeded,
		Source:  runrecord.Source{Bucket: "b", Key: "configs/rf.yaml", ETag: tag},
		Version: "rf-v2", ModelType: "RandomForestClassifier", Accuracy: &res.Accuracy, TrainSize: 105, TestSize: 45,
		Seeds: &runrecord.Seeds{Split: 42, Model: 42}, ConfigSHA256: sha256Hex(fixture(t, "rf.yaml")),
		ToolVersion: "test", Artifacts: artifacts, Job: names.JobIris,
	}
	if diff := cmp.Diff(wantRec, r1, cmpopts.IgnoreFields(runrecord.Record{}, "StartedAt", "FinishedAt", "DurationMS", "TimingsMS")); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	if r1.DurationMS <= 0 {
		t.Errorf("record duration %d ms, want > 0", r1.DurationMS)
	}
	for _, step := range []string{"parse", "split", "fit", "evaluate", "write"} {
		if _, ok := r1.TimingsMS[step]; !ok {
			t.Errorf("record lacks timing %q", step)
		}
	}

	// The artifacts are usable: the model predicts, the config is the
	// uploaded bytes, the dataset marks 45 test rows.
	dir := filepath.Join(root, filepath.FromSlash(runDir))
	modelJSON, _ := os.ReadFile(filepath.Join(dir, "model.json"))
	m, err := ml.Load(modelJSON)
	if err != nil {
		t.Fatalf("load model artifact: %v", err)
	}
	if got := m.ClassNames[m.Predict([]float64{6.7, 3.0, 5.2, 2.3})]; got != "virginica" {
		t.Errorf("model predicts %s for a virginica", got)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if !bytes.Equal(cfg, fixture(t, "rf.yaml")) {
		t.Error("config.yaml is not the uploaded config")
	}
	csv, _ := os.ReadFile(filepath.Join(dir, "dataset.csv"))
	if n := strings.Count(string(csv), ",test\n"); n != 45 {
		t.Errorf("dataset.csv marks %d test rows, want 45", n)
	}
	var metrics Metrics
	b, _ := os.ReadFile(filepath.Join(dir, "metrics.json"))
	if err := json.Unmarshal(b, &metrics); err != nil || metrics.Accuracy != res.Accuracy || len(metrics.ConfusionMatrix) != 3 {
		t.Errorf("metrics.json = %+v, %v", metrics, err)
	}
}

func TestRunIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, src := range []Source{
		{Bucket: "b", Key: "configs/rf.yaml", VersionID: "v1"},
		{Bucket: "b", Key: "configs/rf.yaml", ETag: etagOf(fixture(t, "rf.yaml"))},
		{Bucket: "b", Key: "configs/rf.yaml"}, // content hash
	} {
		r, rec, root := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
		first, err := r.Run(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, root)
		nPuts := len(rec.putKeys())
		second, err := r.Run(context.Background(), src)
		if err != nil {
			t.Fatal(err)
		}
		if !second.Duplicate || second.RunID != first.RunID || second.Accuracy != first.Accuracy ||
			second.Status != runrecord.StatusSucceeded || second.ArtifactPrefix != first.ArtifactPrefix {
			t.Errorf("%+v: second run = %+v, want a duplicate of %+v", src, second, first)
		}
		if got := rec.putKeys()[nPuts:]; len(got) != 0 {
			t.Errorf("%+v: duplicate run wrote %v", src, got)
		}
		if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
			t.Errorf("%+v: files changed on re-run:\n%s", src, diff)
		}
		if n := countRecords(t, root); n != 1 {
			t.Errorf("%+v: %d records, want 1", src, n)
		}
	}
}

// snapshot maps every file under root to its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, root)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDeterminism: the same config from two different objects gives
// byte-identical artifacts (all but run.json, which holds timings).
func TestDeterminism(t *testing.T) {
	t.Parallel()
	body := fixture(t, "rf.yaml")
	r, _, root := setup(t, map[string][]byte{"a.yaml": body, "b.yaml": body})
	r2 := *r
	r2.ArtifactPrefix = "other/"
	resA, err := r.Run(context.Background(), Source{Key: "configs/a.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	resB, err := r2.Run(context.Background(), Source{Key: "configs/b.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if resA.RunID == resB.RunID {
		t.Fatal("different keys gave the same run id")
	}
	for _, f := range []string{runrecord.ModelFile, runrecord.MetricsFile, runrecord.DatasetFile, "config.yaml", runrecord.ResolvedConfigFile} {
		a, _ := os.ReadFile(filepath.Join(root, filepath.FromSlash(resA.ArtifactPrefix), f))
		b, _ := os.ReadFile(filepath.Join(root, filepath.FromSlash(resB.ArtifactPrefix), f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s differs between runs of the same config (%d vs %d bytes)", f, len(a), len(b))
		}
	}
}

// TestDerivedSeedsReproduce: without random states the seeds come from the
// run id, are recorded, and the resolved config reproduces the run exactly.
func TestDerivedSeedsReproduce(t *testing.T) {
	t.Parallel()
	r, _, _ := setup(t, map[string][]byte{"u1.json": fixture(t, "unseeded.json"), "u2.json": fixture(t, "unseeded.json")})
	res, err := r.Run(context.Background(), Source{Key: "configs/u1.json"})
	if err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t, r.In, res.RecordKey)
	if rec.Seeds == nil || !slices.Equal(rec.Seeds.Derived, []string{"split", "model"}) {
		t.Fatalf("record seeds = %+v, want both derived", rec.Seeds)
	}
	// Each run below is of a later upload, so it becomes the version's
	// current run.
	current := func(name string) []byte {
		t.Helper()
		return currentFile(t, r.In, "artifacts/dt-unseeded/", name)
	}
	model1, resolved := current(runrecord.ModelFile), current(runrecord.ResolvedConfigFile)
	if !bytes.Contains(resolved, []byte(`"random_state": `)) {
		t.Fatalf("resolved config lacks random states:\n%s", resolved)
	}

	// Another object with the same unseeded content draws other seeds.
	if _, err := r.Run(context.Background(), Source{Key: "configs/u2.json"}); err != nil {
		t.Fatal(err)
	}
	model2 := current(runrecord.ModelFile)
	if bytes.Equal(model1, model2) {
		t.Error("two uploads without random_state trained identical models")
	}

	// The resolved config, run as a new config, reproduces run 1's model.
	if err := r.In.Put(context.Background(), "configs/replay.json", resolved, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(context.Background(), Source{Key: "configs/replay.json"}); err != nil {
		t.Fatal(err)
	}
	model3 := current(runrecord.ModelFile)
	if !bytes.Equal(model1, model3) {
		t.Error("replaying the resolved config did not reproduce the model")
	}
}

func TestRunFailures(t *testing.T) {
	t.Parallel()
	huge := append([]byte("# "), bytes.Repeat([]byte("x"), 2<<20)...)
	tests := []struct {
		name       string
		src        Source
		wantRecord bool
		wantErr    string
	}{
		{"bad config", Source{Key: "configs/bad.yaml"}, true, "model.params.max_depth: must be a positive integer or null"},
		{"oversized config", Source{Key: "configs/huge.yaml"}, true, fmt.Sprintf("limit is %d", config.MaxBytes)},
		{"missing object with etag", Source{Key: "configs/gone.yaml", ETag: `"x"`}, true, "object not found"},
		{"missing object without identity", Source{Key: "configs/gone.yaml"}, false, "object not found"},
		{"test size too large for Iris", Source{Key: "configs/big-test.yaml"}, true, "leaves no training rows"},
		{"max_features beyond the features", Source{Key: "configs/mf.yaml"}, true, "max_features: 5 is more than the 4 features"},
		{"stratified test set smaller than the classes", Source{Key: "configs/strat.yaml"}, true, "stratified split needs at least 3"},
		{"empty key", Source{}, false, "source key is empty"},
	}
	r, rec, root := setup(t, map[string][]byte{
		"bad.yaml":      fixture(t, "bad.yaml"),
		"huge.yaml":     huge,
		"big-test.yaml": []byte("train_test_split: {test_size: 150}\nmodel: {type: DecisionTreeClassifier}\n"),
		"mf.yaml":       []byte("model: {type: DecisionTreeClassifier, params: {max_features: 5}}\n"),
		"strat.yaml":    []byte("train_test_split: {test_size: 2, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n"),
	})
	for _, tt := range tests {
		res, err := r.Run(context.Background(), tt.src)
		if err == nil {
			t.Errorf("%s: Run succeeded", tt.name)
			continue
		}
		if !errors.Is(err, failure.ErrPermanent) {
			t.Errorf("%s: error %v is not permanent", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %q lacks %q", tt.name, err, tt.wantErr)
		}
		if res.Status != runrecord.StatusFailed || res.Duplicate {
			t.Errorf("%s: result %+v", tt.name, res)
		}
		if !tt.wantRecord {
			if res.RecordKey != "" {
				t.Errorf("%s: record key %q, want none", tt.name, res.RecordKey)
			}
			continue
		}
		got := readRecord(t, rec, res.RecordKey)
		if got.Status != runrecord.StatusFailed || !got.Permanent || !strings.Contains(got.Error, tt.wantErr) ||
			got.RunID != res.RunID || got.Accuracy != nil || len(got.Artifacts) != 0 {
			t.Errorf("%s: failure record %+v", tt.name, got)
		}
	}
	// Nothing but failure records was written; in particular nothing
	// escaped the root through the version.
	for _, k := range rec.putKeys() {
		if !strings.HasPrefix(k, "runs/") {
			t.Errorf("failed runs wrote %s", k)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "artifacts")); !os.IsNotExist(err) {
		t.Errorf("failed runs created artifacts/ (%v)", err)
	}
}

// Check is Run without the store: it accepts exactly the configs Run
// trains on and rejects the others with the reason Run reports.
func TestCheckAgreesWithRun(t *testing.T) {
	t.Parallel()
	configs := map[string][]byte{
		"rf.yaml":          fixture(t, "rf.yaml"),
		"unseeded.json":    fixture(t, "unseeded.json"),
		"bad.yaml":         fixture(t, "bad.yaml"),
		"all-test.yaml":    []byte("train_test_split: {test_size: 150}\nmodel: {type: DecisionTreeClassifier}\n"),
		"one-train.yaml":   []byte("train_test_split: {test_size: 149}\nmodel: {type: DecisionTreeClassifier}\n"),
		"frac.yaml":        []byte("train_test_split: {test_size: 0.999}\nmodel: {type: DecisionTreeClassifier}\n"),
		"strat-test.yaml":  []byte("train_test_split: {test_size: 2, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n"),
		"strat-train.yaml": []byte("train_test_split: {test_size: 148, stratify: true}\nmodel: {type: RandomForestClassifier, params: {n_estimators: 3}}\n"),
		"strat-ok.yaml":    []byte("train_test_split: {test_size: 3, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n"),
		"mf.yaml":          []byte("model: {type: RandomForestClassifier, params: {n_estimators: 3, max_features: 5}}\n"),
		"mf-ok.yaml":       []byte("model: {type: RandomForestClassifier, params: {n_estimators: 3, max_features: 4}}\n"),
	}
	r, _, _ := setup(t, configs)
	for name, body := range configs {
		_, runErr := r.Run(context.Background(), Source{Key: "configs/" + name})
		_, checkErr := Check(body)
		switch {
		case runErr == nil && checkErr == nil:
		case runErr == nil || checkErr == nil:
			t.Errorf("%s: Run error %v, Check error %v: want both or neither", name, runErr, checkErr)
		case !errors.Is(runErr, failure.ErrPermanent) || !strings.HasSuffix(runErr.Error(), checkErr.Error()):
			t.Errorf("%s: Run error %q does not end with Check's %q", name, runErr, checkErr)
		}
	}
}

// A panic inside a job (here: the store panics while the artifacts are
// published) ends that job as a permanent failure with a failure record and
// the stack in the log, instead of taking the process down.
func TestPanicIsAPermanentFailureWithARecord(t *testing.T) {
	t.Parallel()
	r, rec, _ := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	var logs bytes.Buffer
	r.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	rec.failPut = func(key string) error {
		if strings.HasSuffix(key, "/"+runrecord.ModelFile) {
			panic("store: torn write of " + key)
		}
		return nil
	}
	res, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/rf.yaml", ETag: etagOf(fixture(t, "rf.yaml"))})
	torn := "store: torn write of artifacts/rf-v2/runs/" + res.RunID + "/model.json"
	if err == nil || !errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), "panic: "+torn) {
		t.Fatalf("Run error %v, want a permanent failure naming the panic", err)
	}
	if res.Status != runrecord.StatusFailed || res.RecordKey == "" {
		t.Fatalf("result %+v, want failed with a record", res)
	}
	got := readRecord(t, rec, res.RecordKey)
	if got.Status != runrecord.StatusFailed || !got.Permanent || !strings.Contains(got.Error, "panic: store: torn write") || got.Version != "rf-v2" {
		t.Errorf("failure record %+v", got)
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line struct{ Level, Msg, Panic, Stack string }
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line.Level == "ERROR" && line.Msg == "job panicked" {
			found = true
			if line.Panic != torn || !strings.Contains(line.Stack, "job_test.go") {
				t.Errorf("panic log line %s: want the panic and a stack through the store call", l)
			}
		}
	}
	if !found {
		t.Errorf("no ERROR line for the panic in:\n%s", logs.String())
	}
}

func TestTransientFailureThenRetry(t *testing.T) {
	t.Parallel()
	r, rec, root := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	throttled := errors.New("SlowDown: please reduce your request rate")
	rec.failPut = func(key string) error {
		if strings.HasSuffix(key, "/metrics.json") {
			return throttled
		}
		return nil
	}
	src := Source{Bucket: "b", Key: "configs/rf.yaml", VersionID: "3"}
	res, err := r.Run(context.Background(), src)
	if err == nil || errors.Is(err, failure.ErrPermanent) || !errors.Is(err, throttled) {
		t.Fatalf("Run error = %v, want the transient store error", err)
	}
	got := readRecord(t, rec, res.RecordKey)
	if got.Status != runrecord.StatusFailed || got.Permanent || !strings.Contains(got.Error, "SlowDown") || got.Version != "rf-v2" {
		t.Errorf("failure record %+v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "artifacts", "rf-v2", "latest.json")); !os.IsNotExist(err) {
		t.Error("a failed run published its artifacts")
	}

	// The retry succeeds and replaces the failure record: still one record.
	rec.mu.Lock()
	rec.failPut = nil
	rec.mu.Unlock()
	res2, err := r.Run(context.Background(), src)
	if err != nil || res2.RunID != res.RunID || res2.Duplicate {
		t.Fatalf("retry = %+v, %v", res2, err)
	}
	if got := readRecord(t, rec, res.RecordKey); got.Status != runrecord.StatusSucceeded || got.Error != "" {
		t.Errorf("record after retry %+v", got)
	}
	if n := countRecords(t, root); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
}

// A redelivery whose record read fails (S3 throttling) must not replace the
// succeeded record with a failure record.
func TestFailureNeverOverwritesSuccessWhenTheRecordIsUnreadable(t *testing.T) {
	t.Parallel()
	r, rec, _ := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	src := Source{Bucket: "b", Key: "configs/rf.yaml", VersionID: "7"}
	res, err := r.Run(context.Background(), src)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	throttled := errors.New("SlowDown: please reduce your request rate")
	rec.mu.Lock()
	rec.failGet = func(key string) error {
		if strings.HasPrefix(key, "runs/") {
			return throttled
		}
		return nil
	}
	rec.mu.Unlock()
	if _, err := r.Run(context.Background(), src); err == nil || errors.Is(err, failure.ErrPermanent) || !errors.Is(err, throttled) {
		t.Fatalf("redelivery error = %v, want the transient read error", err)
	}
	rec.mu.Lock()
	rec.failGet = nil
	rec.mu.Unlock()
	if got := readRecord(t, rec, res.RecordKey); got.Status != runrecord.StatusSucceeded {
		t.Errorf("record after a failed redelivery: status %q (%s), want succeeded", got.Status, got.Error)
	}
}

func TestCancelledRunIsTransientAndRecorded(t *testing.T) {
	t.Parallel()
	r, rec, _ := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	ctx, cancel := context.WithCancel(context.Background())
	rec.failPut = func(key string) error {
		cancel() // the job is being shut down mid-write
		return nil
	}
	res, err := r.Run(ctx, Source{Key: "configs/rf.yaml", ETag: etagOf(fixture(t, "rf.yaml"))})
	if err == nil || errors.Is(err, failure.ErrPermanent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want a transient context.Canceled", err)
	}
	if got := readRecord(t, rec, res.RecordKey); got.Status != runrecord.StatusFailed || got.Permanent {
		t.Errorf("failure record %+v", got)
	}
}

// TestRecordLostAfterPublishing: a crash (here: a failed write) between
// publishing the pointer and writing the record is repaired by the next
// delivery: the run is redone into its own folder, the pointer, which
// already names it, is left alone, and the record is written.
func TestRecordLostAfterPublishing(t *testing.T) {
	t.Parallel()
	r, rec, root := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	src := Source{Key: "configs/rf.yaml", VersionID: "7"}
	var failed bool
	rec.failPut = func(key string) error {
		if strings.HasPrefix(key, "runs/") && !strings.HasPrefix(key, names.RecentPrefix) && !failed {
			failed = true
			return errors.New("connection reset")
		}
		return nil
	}
	if _, err := r.Run(context.Background(), src); err == nil || errors.Is(err, failure.ErrPermanent) {
		t.Fatalf("first run: %v, want a transient failure", err)
	}
	pointer := filepath.Join(root, "artifacts", "rf-v2", "latest.json")
	published, err := os.ReadFile(pointer)
	if err != nil {
		t.Fatalf("the pointer was not published before the record: %v", err)
	}
	n := len(rec.putKeys())
	second, err := r.Run(context.Background(), src)
	if err != nil || second.Duplicate || second.SupersededBy != "" {
		t.Fatalf("redelivery = %+v, %v", second, err)
	}
	for _, k := range rec.putKeys()[n:] {
		if strings.HasSuffix(k, "/latest.json") {
			t.Errorf("the redelivery rewrote the pointer that already named its run")
		}
	}
	if got, _ := os.ReadFile(pointer); !bytes.Equal(got, published) {
		t.Error("the pointer changed")
	}
	if got := readRecord(t, rec, second.RecordKey); got.Status != runrecord.StatusSucceeded {
		t.Errorf("record %+v", got)
	}
}

func TestRunnerNeedsInput(t *testing.T) {
	t.Parallel()
	if _, err := (&Runner{}).Run(context.Background(), Source{Key: "k"}); err == nil {
		t.Error("Run with a nil In succeeded")
	}
}

func TestRunAgainstMoto(t *testing.T) {
	t.Parallel()
	srv := motoserver.StartT(t)
	ctx := context.Background()
	client := s3.New(s3.Options{
		Region: motoserver.Region, BaseEndpoint: aws.String(srv.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("pipe")}); err != nil {
		t.Fatal(err)
	}
	put, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("pipe"), Key: aws.String("configs/rf.yaml"), Body: bytes.NewReader(fixture(t, "rf.yaml")),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := store.NewS3(client, "pipe")
	r := &Runner{In: s, Version: "test"}
	src := Source{Bucket: "pipe", Key: "configs/rf.yaml", ETag: aws.ToString(put.ETag)}
	res, err := r.Run(ctx, src)
	if err != nil || res.Accuracy < 0.9 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	for _, k := range res.Artifacts {
		if _, err := s.Get(ctx, k); err != nil {
			t.Errorf("artifact %s: %v", k, err)
		}
	}
	again, err := r.Run(ctx, src)
	if err != nil || !again.Duplicate {
		t.Errorf("second run = %+v, %v; want a duplicate", again, err)
	}
	_, err = r.Run(ctx, Source{Bucket: "pipe", Key: "configs/missing.yaml", ETag: `"x"`})
	if !errors.Is(err, failure.ErrPermanent) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing object error = %v, want permanent not-found", err)
	}
}

// versioned is a store whose GetVersion serves an older version.
type versioned struct {
	store.Store
	old map[string][]byte
}

func (v versioned) GetVersion(_ context.Context, key, id string) (store.Object, error) {
	b, ok := v.old[key+"@"+id]
	if !ok {
		return store.Object{}, store.ErrNotFound
	}
	return store.Object{Body: b, VersionID: id}, nil
}

func TestRunReadsTheAnnouncedVersion(t *testing.T) {
	t.Parallel()
	r, _, _ := setup(t, map[string][]byte{"rf.yaml": fixture(t, "rf.yaml")})
	// The key now holds the random forest; version "v1" was a decision tree.
	r.In = versioned{Store: r.In, old: map[string][]byte{
		"configs/rf.yaml@v1": []byte("run_config: {version: old}\nmodel: {type: DecisionTreeClassifier}\n"),
	}}
	res, err := r.Run(context.Background(), Source{Key: "configs/rf.yaml", VersionID: "v1"})
	if err != nil || res.ModelType != "DecisionTreeClassifier" || res.Version != "old" {
		t.Errorf("Run(v1) = %+v, %v; want the decision tree of version v1", res, err)
	}
	_, err = r.Run(context.Background(), Source{Key: "configs/rf.yaml", VersionID: "v9"})
	if !errors.Is(err, failure.ErrPermanent) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Run(unknown version) error = %v, want permanent not-found", err)
	}
}
