package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/consumer/command"
	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// script is a command job running a /bin/sh script; its work directories
// go under a directory of the test, which the test can inspect.
func script(t *testing.T, body string) (*CommandJob, string) {
	t.Helper()
	work := t.TempDir()
	return &CommandJob{
		Spec:     command.Spec{Argv: []string{"/bin/sh", "-c", body}},
		WorkRoot: work,
		Env:      []string{"PATH=" + os.Getenv("PATH")},
		Bucket:   "stack-bucket",
	}, work
}

// A command job gets the config as a file and its environment; what it
// leaves in the output directory is published into the run's folder, the
// pointer names the run, and the record says how the job ended.
func TestCommandJobPublishesItsOutputs(t *testing.T) {
	t.Parallel()
	cfg := []byte("title: nightly\n")
	r, rec, _ := setup(t, map[string][]byte{"nightly.yaml": cfg})
	cj, work := script(t, `set -e
test "$(cat "$EDP_CONFIG")" = "title: nightly"
test "$(basename "$EDP_CONFIG")" = config.yaml
test "$(pwd)" = "$(dirname "$EDP_CONFIG")"
test -d "$TMPDIR"
test -z "$(ls -A "$EDP_OUTPUT_DIR")"
mkdir -p "$EDP_OUTPUT_DIR/plots"
printf '%s\n' "$EDP_RUN_ID" "$EDP_CONFIG_BUCKET" "$EDP_CONFIG_KEY" "$EDP_CONFIG_VERSION" "$EDP_ATTEMPT" "$EDP_VERSION" "$EDP_BUCKET" > "$EDP_OUTPUT_DIR/env.txt"
echo '<svg/>' > "$EDP_OUTPUT_DIR/plots/a.svg"
case "$EDP_DEADLINE" in 20*Z) ;; *) echo "bad deadline $EDP_DEADLINE"; exit 1;; esac
echo "trained nightly"`)
	r.Command = cj
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.Run(ctx, Source{Bucket: "b", Key: "configs/nightly.yaml", ETag: etagOf(cfg), Attempt: 2})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Version != "nightly" || res.Status != runrecord.StatusSucceeded || res.PointerKey != "artifacts/nightly/latest.json" {
		t.Errorf("result %+v", res)
	}
	env := string(currentFile(t, rec, "artifacts/nightly/", "env.txt"))
	want := strings.Join([]string{res.RunID, "b", "configs/nightly.yaml", "", "2", "nightly", "stack-bucket"}, "\n") + "\n"
	if env != want {
		t.Errorf("env.txt = %q, want %q", env, want)
	}
	if got := string(currentFile(t, rec, "artifacts/nightly/", "plots/a.svg")); got != "<svg/>\n" {
		t.Errorf("plots/a.svg = %q", got)
	}
	p, err := ReadPointer(context.Background(), rec, "artifacts/nightly/")
	if err != nil || !slices.Equal(p.Files, []string{"env.txt", "plots/a.svg", runrecord.RunFile}) {
		t.Errorf("pointer files %v (%v), want the outputs then run.json", p.Files, err)
	}
	got := readRecord(t, rec, res.RecordKey)
	if got.Job != names.JobCommand || got.ExitCode == nil || *got.ExitCode != 0 || got.Signal != "" ||
		!strings.Contains(got.OutputTail, "trained nightly") || got.Attempt != 2 || got.Version != "nightly" ||
		!slices.Equal(got.Command, cj.Spec.Argv) || got.TimingsMS["job"] <= 0 {
		t.Errorf("record %+v", got)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("work directories left behind: %v", left)
	}
}

// A job that exits with a permanent status fails permanently: the error
// (the dead-letter reason) and the failure record carry its output's end.
func TestCommandJobPermanentExit(t *testing.T) {
	t.Parallel()
	cfg := []byte("title: 1\n")
	r, rec, _ := setup(t, map[string][]byte{"bad.yaml": cfg})
	r.Command, _ = script(t, `echo "line one"; echo "title must be text, got a number" >&2; exit 65`)
	res, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/bad.yaml", ETag: etagOf(cfg)})
	if !errors.Is(err, failure.ErrPermanent) {
		t.Fatalf("err = %v, want permanent", err)
	}
	for _, want := range []string{"exit status 65 (EX_DATAERR)", "title must be text, got a number"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	got := readRecord(t, rec, res.RecordKey)
	if got.Status != runrecord.StatusFailed || !got.Permanent || got.ExitCode == nil || *got.ExitCode != 65 ||
		!strings.Contains(got.OutputTail, "title must be text") || got.Job != names.JobCommand {
		t.Errorf("record %+v", got)
	}
	if _, err := ReadPointer(context.Background(), rec, "artifacts/bad/"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a failed run published a pointer: %v", err)
	}
}

// A transient exit is retried: the retry has the same run id, succeeds,
// and leaves one record, the succeeded one.
func TestCommandJobTransientThenSuccess(t *testing.T) {
	t.Parallel()
	cfg := []byte("x: 1\n")
	r, rec, _ := setup(t, map[string][]byte{"flaky.yaml": cfg})
	r.Command, _ = script(t, `if [ "$EDP_ATTEMPT" -lt 2 ]; then echo "database busy"; exit 75; fi; echo ok > "$EDP_OUTPUT_DIR/out.txt"`)
	src := Source{Bucket: "b", Key: "configs/flaky.yaml", ETag: etagOf(cfg), Attempt: 1}
	first, err := r.Run(context.Background(), src)
	if err == nil || errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), "exit status 75") {
		t.Fatalf("first attempt err = %v, want a transient failure with its status", err)
	}
	if got := readRecord(t, rec, first.RecordKey); got.Status != runrecord.StatusFailed || got.Permanent {
		t.Errorf("first record %+v, want a transient failure", got)
	}
	src.Attempt = 2
	second, err := r.Run(context.Background(), src)
	if err != nil || second.RunID != first.RunID {
		t.Fatalf("retry = %+v, %v; want success with run id %s", second, err, first.RunID)
	}
	if got := readRecord(t, rec, second.RecordKey); got.Status != runrecord.StatusSucceeded || got.Attempt != 2 {
		t.Errorf("record after the retry %+v", got)
	}
	if n := countRecords(t, rec.Store.(*store.Dir).Root()); n != 1 {
		t.Errorf("%d record objects, want 1", n)
	}
}

// A redelivery of a succeeded run does not run the job again.
func TestCommandJobDuplicateDoesNotRunAgain(t *testing.T) {
	t.Parallel()
	cfg := []byte("x: 1\n")
	r, _, _ := setup(t, map[string][]byte{"once.yaml": cfg})
	counter := filepath.Join(t.TempDir(), "count")
	r.Command, _ = script(t, `echo run >> `+counter)
	src := Source{Bucket: "b", Key: "configs/once.yaml", ETag: etagOf(cfg)}
	if _, err := r.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(context.Background(), src)
	if err != nil || !res.Duplicate {
		t.Fatalf("second run = %+v, %v; want a duplicate", res, err)
	}
	if b, _ := os.ReadFile(counter); string(b) != "run\n" {
		t.Errorf("the job ran %d times, want once", strings.Count(string(b), "run"))
	}
}

// Outputs the contract refuses fail the run permanently, naming why;
// nothing is published.
func TestCommandJobRefusedOutputs(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		script string
		limits command.Limits
		want   string
	}{
		"symlink":    {`ln -s /etc/passwd "$EDP_OUTPUT_DIR/passwd"`, command.Limits{}, `"passwd" is a symbolic link (to "/etc/passwd")`},
		"many files": {`i=0; while [ $i -lt 50 ]; do : > "$EDP_OUTPUT_DIR/f$i"; i=$((i+1)); done`, command.Limits{MaxFiles: 20}, "more than 20 files"},
		"too large":  {`head -c 5000 /dev/zero > "$EDP_OUTPUT_DIR/big"`, command.Limits{MaxBytes: 4096}, "more than 4096 bytes"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := []byte("x: 1\n")
			r, rec, _ := setup(t, map[string][]byte{"out.yaml": cfg})
			r.Command, _ = script(t, tt.script)
			r.Command.Limits = tt.limits
			res, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/out.yaml", ETag: etagOf(cfg)})
			if !errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want permanent with %q", err, tt.want)
			}
			if got := readRecord(t, rec, res.RecordKey); !strings.Contains(got.Error, tt.want) || !got.Permanent {
				t.Errorf("record %+v", got)
			}
			for _, k := range rec.putKeys() {
				if strings.HasPrefix(k, names.ArtifactPrefix) {
					t.Errorf("wrote %s for a refused output", k)
				}
			}
		})
	}
}

// A config over the command job's limit is refused from its size, with a
// failure record; the job never runs.
func TestCommandJobConfigTooLarge(t *testing.T) {
	t.Parallel()
	cfg := []byte(strings.Repeat("x", 2048))
	r, rec, _ := setup(t, map[string][]byte{"big.yaml": cfg})
	ran := filepath.Join(t.TempDir(), "ran")
	r.Command, _ = script(t, `touch `+ran)
	r.Command.MaxConfigBytes = 1024
	res, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/big.yaml", ETag: etagOf(cfg)})
	if !errors.Is(err, failure.ErrPermanent) || !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "2048 bytes, limit is 1024") {
		t.Fatalf("err = %v", err)
	}
	if got := readRecord(t, rec, res.RecordKey); got.Status != runrecord.StatusFailed || !got.Permanent {
		t.Errorf("record %+v", got)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("the job ran")
	}
}

// A config whose name cannot be a version folder fails permanently.
func TestCommandJobBadConfigName(t *testing.T) {
	t.Parallel()
	cfg := []byte("x: 1\n")
	r, _, _ := setup(t, map[string][]byte{"-dash.yaml": cfg})
	r.Command, _ = script(t, `exit 0`)
	_, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/-dash.yaml", ETag: etagOf(cfg)})
	if !errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), "cannot name a version folder") {
		t.Fatalf("err = %v", err)
	}
}

// A command that cannot start is a permanent failure naming it.
func TestCommandJobMissingProgram(t *testing.T) {
	t.Parallel()
	cfg := []byte("x: 1\n")
	r, _, _ := setup(t, map[string][]byte{"a.yaml": cfg})
	r.Command, _ = script(t, "")
	r.Command.Spec.Argv = []string{"./missing.py"}
	r.Command.Spec.JobDir = t.TempDir()
	_, err := r.Run(context.Background(), Source{Bucket: "b", Key: "configs/a.yaml", ETag: etagOf(cfg)})
	if !errors.Is(err, failure.ErrPermanent) || !strings.Contains(err.Error(), "job did not start") {
		t.Fatalf("err = %v", err)
	}
}

// The job's environment drops the consumer's own settings and keeps the
// rest; the job's variables win.
func TestCommandJobEnvironment(t *testing.T) {
	t.Setenv("EDP_QUEUE_URL", "https://queue")
	t.Setenv("GOMEMLIMIT", "900MiB")
	t.Setenv("EDP_TEST_KEEP", "no")
	t.Setenv("AWS_REGION", "eu-west-1")
	t.Setenv("TMPDIR", "/elsewhere")
	env := (&CommandJob{}).environment(map[string]string{EnvRunID: "r", "TMPDIR": "/scratch/run/tmp"})
	has := func(kv string) bool { return slices.Contains(env, kv) }
	for _, kv := range []string{"AWS_REGION=eu-west-1", "EDP_RUN_ID=r", "TMPDIR=/scratch/run/tmp"} {
		if !has(kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "EDP_QUEUE_URL" || k == "GOMEMLIMIT" || k == "EDP_TEST_KEEP" || kv == "TMPDIR=/elsewhere" {
			t.Errorf("environment has %s", kv)
		}
	}
}

func TestCommandJobCheck(t *testing.T) {
	t.Parallel()
	plain := &CommandJob{MaxConfigBytes: 64}
	validating, _ := script(t, `grep -q '^title:' "$EDP_CONFIG" && test "$EDP_VALIDATE" = 1 || { echo "title is required" >&2; exit 65; }`)
	validating.Validate = &validating.Spec
	tests := []struct {
		cj         *CommandJob
		name, body string
		want       string // "" = valid
	}{
		{plain, "configs/a.yaml", "title: x\n", ""},
		{plain, "a.json", `{"title": "x"}`, ""},
		{plain, "a.yaml", strings.Repeat("x", 65), "config is 65 bytes, limit is 64"},
		{plain, "a.txt", "x", "does not end in .yaml, .yml, .json"},
		{plain, "configs/.a.yaml", "x: 1", "cannot name a version folder"},
		{plain, "a.yaml", "a: [1,", "not valid YAML"},
		{plain, "a.json", `{"a": `, "not valid JSON"},
		{validating, "a.yaml", "title: x\n", ""},
		{validating, "a.yaml", "name: x\n", "refused by the job's validate command (exit status 65 (EX_DATAERR)): title is required"},
	}
	for _, tt := range tests {
		err := tt.cj.Check(context.Background(), tt.name, []byte(tt.body))
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("Check(%s, %q) = %v, want valid", tt.name, tt.body, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("Check(%s, %q) = %v, want %q", tt.name, tt.body, err, tt.want)
		}
	}
}
