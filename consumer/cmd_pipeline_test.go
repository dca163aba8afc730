package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// runCLI runs the consumer with args and returns exit code, stdout, stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func readRunRecord(t *testing.T, path string) runrecord.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r runrecord.Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRunExamplesLocally(t *testing.T) {
	t.Parallel()
	for _, ex := range []struct{ file, version, model string }{
		{"random-forest.yaml", "rf-v2", "RandomForestClassifier"},
		{"decision-tree.yaml", "dt-v1", "DecisionTreeClassifier"},
	} {
		t.Run(ex.file, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			code, stdout, stderr := runCLI(t, "run", "--config", filepath.Join("..", "examples", ex.file), "--out", out)
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			folder := filepath.Join(out, "artifacts", ex.version)
			for _, want := range []string{ex.model, "accuracy", filepath.Join(folder, "runs") + string(filepath.Separator), filepath.Join(folder, "latest.json")} {
				if !strings.Contains(stdout, want) {
					t.Errorf("summary lacks %q:\n%s", want, stdout)
				}
			}
			// Logs are JSON lines on stderr.
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !json.Valid([]byte(line)) {
					t.Errorf("stderr line is not JSON: %s", line)
				}
			}
			ptr, err := job.ReadPointer(context.Background(), store.NewDir(folder), "")
			if err != nil {
				t.Fatalf("the version folder's pointer: %v", err)
			}
			dir := filepath.Join(folder, "runs", ptr.RunID)
			rec := readRunRecord(t, filepath.Join(dir, "run.json"))
			if rec.Status != runrecord.StatusSucceeded || rec.Accuracy == nil || *rec.Accuracy < 0.9 {
				t.Errorf("record %+v: want succeeded with accuracy >= 0.9", rec)
			}
			for _, f := range []string{"model.json", "metrics.json", "dataset.csv", "config.yaml", "config.resolved.json"} {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("artifact %s: %v", f, err)
				}
			}
			if _, err := os.Stat(filepath.Join(out, "runs", rec.RunID+".json")); err != nil {
				t.Errorf("run record: %v", err)
			}

			// Running the same file again rewrites nothing.
			code, stdout, _ = runCLI(t, "run", "--config", filepath.Join("..", "examples", ex.file), "--out", out)
			if code != 0 || !strings.Contains(stdout, "nothing rewritten") {
				t.Errorf("second run: exit %d, stdout %q", code, stdout)
			}

			// The model predicts through the CLI, from rows and from the CSV.
			model := filepath.Join(dir, "model.json")
			code, stdout, stderr = runCLI(t, "predict", "--model", model, "5.1,3.5,1.4,0.2", "6.7,3.0,5.2,2.3")
			if code != 0 || stdout != "setosa\nvirginica\n" {
				t.Errorf("predict: exit %d, stdout %q, stderr %s", code, stdout, stderr)
			}
			code, stdout, _ = runCLI(t, "predict", "--model", model, "--csv", filepath.Join(dir, "dataset.csv"))
			if lines := strings.Split(strings.TrimSpace(stdout), "\n"); code != 0 || len(lines) != 150 {
				t.Errorf("predict --csv: exit %d, %d lines, want 150", code, len(lines))
			}
			// The version folder stands for its current run's files.
			code, stdout, stderr = runCLI(t, "predict", "--model", folder, "--csv", folder+string(filepath.Separator))
			if lines := strings.Split(strings.TrimSpace(stdout), "\n"); code != 0 || len(lines) != 150 {
				t.Errorf("predict --model FOLDER --csv FOLDER: exit %d, %d lines, want 150; stderr %s", code, len(lines), stderr)
			}
		})
	}
}

func TestRunFailureIsRecorded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(cfg, []byte("model:\n  type: RandomForestClassifier\n  params: {max_depth: deep}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	code, stdout, stderr := runCLI(t, "run", "--config", cfg, "--out", out)
	if code != 1 || stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and no summary", code, stdout)
	}
	if !strings.Contains(stderr, `model.params.max_depth: must be a positive integer or null, got "deep"`) ||
		!strings.Contains(stderr, "failure record: "+filepath.Join(out, "runs")) {
		t.Errorf("stderr lacks the error or the record location:\n%s", stderr)
	}
	runs, _ := filepath.Glob(filepath.Join(out, "runs", "*.json"))
	if len(runs) != 1 {
		t.Fatalf("%d records, want 1", len(runs))
	}
	if rec := readRunRecord(t, runs[0]); rec.Status != runrecord.StatusFailed || !rec.Permanent {
		t.Errorf("record %+v", rec)
	}
}

func TestPipelineUsageErrors(t *testing.T) {
	t.Parallel()
	model := filepath.Join("..", "consumer", "ml", "testdata", "tree-model.json")
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"run without config", []string{"run"}, 2, "--config is required"},
		{"run with extra argument", []string{"run", "--config", "x.yaml", "extra"}, 2, `unexpected argument "extra"`},
		{"run with unknown flag", []string{"run", "--confg", "x.yaml"}, 2, "flag provided but not defined"},
		{"run with bad scheme", []string{"run", "--config", "https://example.com/x.yaml"}, 2, "unsupported scheme"},
		{"run with bucket only", []string{"run", "--config", "s3://bucket/"}, 2, "names a folder"},
		{"run with missing file", []string{"run", "--config", "no-such-file.yaml", "--out", "-"}, 1, "object not found"},
		{"run help", []string{"run", "-h"}, 0, "usage: consumer run"},
		{"validate without files", []string{"validate"}, 2, "name at least one config file"},
		{"validate missing file", []string{"validate", "no-such-file.yaml"}, 1, "no-such-file.yaml"},
		{"predict without model", []string{"predict", "1,2,3,4"}, 2, "--model is required"},
		{"predict without rows", []string{"predict", "--model", model}, 2, "give rows"},
		{"predict short row", []string{"predict", "--model", model, "1,2,3"}, 2, "has 3 values, the model takes 4"},
		{"predict non-number", []string{"predict", "--model", model, "1,2,x,4"}, 2, `value 3 "x" is not a finite number`},
		{"predict missing model", []string{"predict", "--model", "no-such-model.json", "1,2,3,4"}, 1, "no-such-model.json"},
		{"predict not a model", []string{"predict", "--model", filepath.Join("..", "examples", "random-forest.yaml"), "1,2,3,4"}, 1, "load model"},
		{"predict csv without features", []string{"predict", "--model", model, "--csv", filepath.Join("..", "examples", "random-forest.yaml")}, 1, "header lacks the model feature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("run_config: {version: ../x}\nmodel: {type: SVC}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := []string{filepath.Join("..", "examples", "random-forest.yaml"), filepath.Join("..", "examples", "decision-tree.yaml")}
	code, stdout, stderr := runCLI(t, append([]string{"validate"}, good...)...)
	if code != 0 || strings.Count(stdout, ": ok (") != 2 || stderr != "" {
		t.Errorf("valid examples: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "validate", good[0], bad)
	if code != 1 || !strings.Contains(stdout, "random-forest.yaml: ok") {
		t.Errorf("mixed: exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{bad + ": invalid config:", "  run_config.version: must be", "  model.type: must be DecisionTreeClassifier or RandomForestClassifier"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// validate reads a config as a run does: one over config.MaxBytes is
// refused from its size, not read up to the store's far larger limit
// first (which would report "object too large").
func TestValidateRefusesALargeConfigFromItsSize(t *testing.T) {
	t.Parallel()
	big := filepath.Join(t.TempDir(), "big.yaml")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	const size = 4 * store.MaxObjectBytes // sparse: no disk is used
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "validate", big)
	want := fmt.Sprintf("%s: read config: get big.yaml: config is %d bytes, limit is %d\n", big, size, config.MaxBytes)
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("validate: exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout, stderr, want)
	}
}

// Everything run rejects before it trains (a local run touches no S3) must
// be rejected by validate too, with the same reason: the checks that need
// the dataset (test_size against its 150 rows, stratification against its
// 3 classes, max_features against its 4 features) as much as parsing.
func TestValidateRejectsWhatRunRejects(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, config, reason string }{
		{"test_size is every row", "train_test_split: {test_size: 150}\nmodel: {type: DecisionTreeClassifier}\n",
			"train_test_split.test_size: 150 rows leaves no training rows out of 150"},
		{"test_size is more rows than there are", "train_test_split: {test_size: 1000}\nmodel: {type: RandomForestClassifier}\n",
			"train_test_split.test_size: 1000 rows leaves no training rows out of 150"},
		{"test_size fraction rounds up to every row", "train_test_split: {test_size: 0.999}\nmodel: {type: DecisionTreeClassifier}\n",
			"train_test_split.test_size: 0.999 of 150 rows leaves an empty train or test set"},
		{"stratified test set smaller than the classes", "train_test_split: {test_size: 2, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n",
			"split 150 rows: a stratified split needs at least 3 (the number of classes) rows in each set, got 2 test rows"},
		{"stratified train set smaller than the classes", "train_test_split: {test_size: 148, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n",
			"split 150 rows: a stratified split needs at least 3 (the number of classes) rows in each set, got 148 test rows"},
		{"max_features over the dataset's features", "model: {type: RandomForestClassifier, params: {max_features: 5}}\n",
			"model.params.max_features: 5 is more than the 4 features of the dataset"},
		{"parse error", "model: {type: DecisionTreeClassifier, params: {max_depth: deep}}\n",
			`model.params.max_depth: must be a positive integer or null, got "deep"`},
		{"unknown model", "model: {type: SVC}\n", "model.type: must be DecisionTreeClassifier or RandomForestClassifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := filepath.Join(dir, "bad.yaml")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCLI(t, "run", "--config", cfg, "--out", filepath.Join(dir, "out"))
			if code != 1 || !strings.Contains(stderr, tt.reason) {
				t.Fatalf("run: exit %d, want 1 with %q; stderr:\n%s", code, tt.reason, stderr)
			}
			code, stdout, stderr := runCLI(t, "validate", cfg)
			if code != 1 || stdout != "" {
				t.Errorf("validate: exit %d, stdout %q; want 1 and no ok line", code, stdout)
			}
			if want := cfg + ": invalid config:\n  "; !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "\n  "+tt.reason) {
				t.Errorf("validate stderr lacks %q as a problem of %s:\n%s", tt.reason, cfg, stderr)
			}
		})
	}
}

// TestRunWithS3 runs against moto through the environment the SDK reads,
// which is why it is not parallel (t.Setenv).
func TestRunWithS3(t *testing.T) {
	srv := motoserver.StartT(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	cfg, err := loadAWS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client := newS3(cfg)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("edp-cli")}); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(filepath.Join("..", "examples", "random-forest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("edp-cli"), Key: aws.String("configs/rf.yaml"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, "run", "--config", "s3://edp-cli/configs/rf.yaml", "--out", "s3://edp-cli/results")
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "s3://edp-cli/results/artifacts/rf-v2/runs/") || !strings.Contains(stdout, "s3://edp-cli/results/artifacts/rf-v2/latest.json") {
		t.Errorf("summary lacks the S3 artifact locations:\n%s", stdout)
	}
	ptr, err := job.ReadPointer(ctx, store.NewS3(client, "edp-cli"), "results/artifacts/rf-v2/")
	if err != nil {
		t.Fatalf("pointer: %v", err)
	}
	for _, k := range []string{"model.json", "metrics.json", "dataset.csv", "config.yaml", "config.resolved.json", "run.json"} {
		if _, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("edp-cli"), Key: aws.String("results/artifacts/rf-v2/runs/" + ptr.RunID + "/" + k)}); err != nil {
			t.Errorf("artifact %s: %v", k, err)
		}
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("edp-cli"), Prefix: aws.String("results/runs/"), Delimiter: aws.String("/")})
	if err != nil || len(list.Contents) != 1 {
		t.Errorf("run records: %v, %v; want one", list, err)
	}

	// S3 to local, and predict and validate from S3.
	out := t.TempDir()
	if code, stdout, stderr := runCLI(t, "run", "--config", "s3://edp-cli/configs/rf.yaml", "--out", out); code != 0 {
		t.Fatalf("run to local: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, model := range []string{
		"s3://edp-cli/results/artifacts/rf-v2/runs/" + ptr.RunID + "/model.json",
		"s3://edp-cli/results/artifacts/rf-v2/",
		"s3://edp-cli/results/artifacts/rf-v2/latest.json",
	} {
		code, stdout, stderr = runCLI(t, "predict", "--model", model, "6.0,2.9,4.5,1.5")
		if code != 0 || stdout != "versicolor\n" {
			t.Errorf("predict --model %s: exit %d, stdout %q, stderr %s", model, code, stdout, stderr)
		}
	}
	code, _, stderr = runCLI(t, "predict", "--model", "s3://edp-cli/results/artifacts/no-such-version/", "6.0,2.9,4.5,1.5")
	if code != 1 || !strings.Contains(stderr, "no run of this version is published") {
		t.Errorf("predict from an unpublished version: exit %d, stderr %s", code, stderr)
	}
	if code, stdout, _ := runCLI(t, "validate", "s3://edp-cli/configs/rf.yaml"); code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("validate from S3: exit %d, stdout %q", code, stdout)
	}
	// A config over the limit is refused from its Content-Length, as a run
	// refuses it, not read and then refused by the parser.
	large := bytes.Repeat([]byte("#"), config.MaxBytes+1)
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("edp-cli"), Key: aws.String("configs/large.yaml"), Body: bytes.NewReader(large)}); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(t, "validate", "s3://edp-cli/configs/large.yaml")
	if want := fmt.Sprintf("read config: get s3://edp-cli/configs/large.yaml: config is %d bytes, limit is %d\n", len(large), config.MaxBytes); code != 1 || !strings.HasSuffix(stderr, want) {
		t.Errorf("validate a large config from S3: exit %d, stderr %q; want 1 ending in %q", code, stderr, want)
	}
	code, _, stderr = runCLI(t, "run", "--config", "s3://edp-cli/configs/missing.yaml", "--out", out)
	if code != 1 || !strings.Contains(stderr, "object not found") {
		t.Errorf("missing S3 config: exit %d, stderr %s", code, stderr)
	}
}

// A version folder written before run folders and pointers (its files and
// run.json at its top) still serves predict; an empty folder says that no
// run is published.
func TestPredictFromFolderWithoutPointer(t *testing.T) {
	t.Parallel()
	model, err := os.ReadFile(filepath.Join("ml", "testdata", "tree-model.json"))
	if err != nil {
		t.Fatal(err)
	}
	old := t.TempDir()
	for name, body := range map[string][]byte{"model.json": model, "run.json": []byte(`{"format":"edp.run/v1"}`)} {
		if err := os.WriteFile(filepath.Join(old, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, stdout, stderr := runCLI(t, "predict", "--model", old, "5.1,3.5,1.4,0.2"); code != 0 || stdout == "" {
		t.Errorf("predict from an old-layout folder: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	empty := t.TempDir()
	if code, _, stderr := runCLI(t, "predict", "--model", empty, "5.1,3.5,1.4,0.2"); code != 1 || !strings.Contains(stderr, "no run of this version is published yet") {
		t.Errorf("predict from an empty folder: exit %d, stderr %s", code, stderr)
	}
}

// run and validate take a command job with the same flags as drain: run
// publishes the job's outputs under --out, validate applies the envelope
// checks and the job's validate command.
func TestRunAndValidateACommandJob(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jobDir := filepath.Join(dir, "job")
	if err := os.MkdirAll(jobDir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := `if [ "$EDP_VALIDATE" = 1 ]; then grep -q '^title:' "$EDP_CONFIG" || { echo "title is required" >&2; exit 65; }; exit 0; fi
cp "$EDP_CONFIG" "$EDP_OUTPUT_DIR/copy.yaml"; echo "done $EDP_RUN_ID"`
	if err := os.WriteFile(filepath.Join(jobDir, "job.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	good, bad := filepath.Join(dir, "report.yaml"), filepath.Join(dir, "untitled.yaml")
	os.WriteFile(good, []byte("title: weekly\n"), 0o644)
	os.WriteFile(bad, []byte("name: weekly\n"), 0o644)
	jobFlags := []string{"--job", "command", "--job-command", `["sh", "./job.sh"]`, "--job-dir", jobDir, "--job-validate-command", `["sh", "./job.sh"]`, "--work-dir", dir}
	out := filepath.Join(dir, "out")

	code, stdout, stderr := runCLI(t, append(append([]string{"run"}, jobFlags...), "--config", good, "--out", out)...)
	if code != 0 || !strings.Contains(stdout, "job        sh ./job.sh (version report)") {
		t.Fatalf("run: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	copies, _ := filepath.Glob(filepath.Join(out, "artifacts", "report", "runs", "*", "copy.yaml"))
	if len(copies) != 1 {
		t.Errorf("published copies %v, want one copy.yaml in the run's folder", copies)
	}

	code, stdout, stderr = runCLI(t, append(append([]string{"validate"}, jobFlags...), good, bad)...)
	if code != 1 || !strings.Contains(stdout, good+": ok (command job, version report)") ||
		!strings.Contains(stderr, bad+": invalid config: refused by the job's validate command") || !strings.Contains(stderr, "title is required") {
		t.Errorf("validate: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "validate", "--job", "command", good)
	if code != 2 || !strings.Contains(stderr, "-job-command: required for a command job") {
		t.Errorf("validate without a command: exit %d, stderr %s", code, stderr)
	}
}
