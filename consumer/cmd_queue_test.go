package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/flagenv"
	"github.com/edp-pipelines/edp/internal/names"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// taskEnv is what the task definition sets.
func taskEnv() map[string]string {
	return map[string]string{
		names.EnvQueueURL:          "https://sqs.us-east-1.amazonaws.com/123456789012/edp-work",
		names.EnvDLQURL:            "https://sqs.us-east-1.amazonaws.com/123456789012/edp-dlq",
		names.EnvBucket:            "edp-pipelines-123456789012",
		names.EnvConfigPrefix:      "configs/",
		names.EnvArtifactPrefix:    "artifacts/",
		names.EnvRecordPrefix:      "runs/",
		names.EnvVisibilityTimeout: "300",
		names.EnvWaitSeconds:       "20",
		names.EnvEmptyReceives:     "3",
	}
}

// settingsView is the part of queueSettings that TestQueueSettingsFromEnvAndFlags
// asserts, in a shape go-cmp can diff.
type settingsView struct {
	QueueURL, DLQURL, Bucket                                   string
	Concurrency, EmptyReceives                                 int
	WaitTime, VisibilityTimeout, JobTimeout, MaxRunTime, Grace time.Duration
	TriggerKey, ArtifactPrefix, RecordPrefix                   string
	HasAgentURI                                                bool
}

func viewSettings(s queueSettings) settingsView {
	w := s.worker
	return settingsView{
		QueueURL: w.QueueURL, DLQURL: w.DLQURL, Bucket: s.bucket,
		Concurrency: w.Concurrency, EmptyReceives: w.EmptyReceives,
		WaitTime: w.WaitTime, VisibilityTimeout: w.VisibilityTimeout, JobTimeout: w.JobTimeout, MaxRunTime: w.MaxRunTime, Grace: w.Grace,
		TriggerKey: s.triggerKey, ArtifactPrefix: s.artifactPrefix, RecordPrefix: s.recordPrefix,
		HasAgentURI: s.agentURI != "",
	}
}

func TestQueueSettingsFromEnvAndFlags(t *testing.T) {
	t.Parallel()
	env := taskEnv()
	env[names.EnvConcurrency] = "4"
	env[names.EnvJobTimeout] = "20m"
	env[names.EnvMaxRunTime] = "1h"
	env[names.EnvTriggerBucket] = "edp-pipelines-123456789012"
	env[names.EnvTriggerKey] = "configs/iris.yaml"
	env["ECS_AGENT_URI"] = "http://169.254.170.2/api/abc"

	s, err := parseQueueSettings(names.ModeDrain, nil, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := settingsView{
		QueueURL: env[names.EnvQueueURL], DLQURL: env[names.EnvDLQURL], Bucket: env[names.EnvBucket],
		Concurrency: 4, WaitTime: 20 * time.Second, VisibilityTimeout: 300 * time.Second,
		JobTimeout: 20 * time.Minute, MaxRunTime: time.Hour, EmptyReceives: 3, Grace: 100 * time.Second,
		TriggerKey: "configs/iris.yaml", HasAgentURI: true, ArtifactPrefix: "artifacts/", RecordPrefix: "runs/",
	}
	if diff := cmp.Diff(want, viewSettings(s)); diff != "" {
		t.Errorf("settings from env (-want +got):\n%s", diff)
	}

	// Flags win over the environment.
	s, err = parseQueueSettings(names.ModeDrain, []string{
		"-concurrency", "8", "-wait-seconds", "5", "-visibility-timeout", "60", "-empty-receives", "1",
		"-queue-url", "http://q", "-grace", "30s", "-record-prefix", "records/",
	}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want.Concurrency, want.WaitTime, want.VisibilityTimeout = 8, 5*time.Second, time.Minute
	want.EmptyReceives, want.QueueURL, want.Grace, want.RecordPrefix = 1, "http://q", 30*time.Second, "records/"
	if diff := cmp.Diff(want, viewSettings(s)); diff != "" {
		t.Errorf("flags did not override env (-want +got):\n%s", diff)
	}
}

func TestQueueSettingsDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		names.EnvQueueURL: "q", names.EnvDLQURL: "d", names.EnvBucket: "b",
	}
	s, err := parseQueueSettings(names.ModeServe, nil, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	w := s.worker
	if w.VisibilityTimeout != 300*time.Second || w.WaitTime != 20*time.Second || w.Concurrency != runtime.NumCPU() ||
		s.configPrefix != names.ConfigPrefix || s.artifactPrefix != names.ArtifactPrefix || s.recordPrefix != names.RecordPrefix ||
		w.JobTimeout != 15*time.Minute || w.Grace >= 120*time.Second {
		t.Errorf("defaults: %+v", s)
	}
}

func TestQueueSettingsErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mode  string
		unset []string
		env   map[string]string
		args  []string
		want  []string
	}{
		"missing required": {mode: names.ModeServe, unset: []string{names.EnvQueueURL, names.EnvBucket},
			want: []string{"EDP_QUEUE_URL (or -queue-url) is required", "EDP_BUCKET (or -bucket) is required"}},
		"not an integer":   {mode: names.ModeDrain, env: map[string]string{names.EnvVisibilityTimeout: "5m"}, want: []string{`EDP_VISIBILITY_TIMEOUT="5m"`, `-visibility-timeout): not an integer`}},
		"bad duration":     {mode: names.ModeDrain, env: map[string]string{names.EnvJobTimeout: "15"}, want: []string{`EDP_JOB_TIMEOUT="15"`}},
		"wait too long":    {mode: names.ModeServe, env: map[string]string{names.EnvWaitSeconds: "30"}, want: []string{"EDP_WAIT_SECONDS / -wait-seconds 30"}},
		"wait zero":        {mode: names.ModeServe, args: []string{"-wait-seconds", "0"}, want: []string{"-wait-seconds 0"}},
		"zero empties":     {mode: names.ModeDrain, env: map[string]string{names.EnvEmptyReceives: "0"}, want: []string{"EDP_EMPTY_RECEIVES / -empty-receives 0"}},
		"bad prefix":       {mode: names.ModeServe, env: map[string]string{names.EnvConfigPrefix: "configs"}, want: []string{`EDP_CONFIG_PREFIX "configs"`}},
		"negative conc":    {mode: names.ModeServe, args: []string{"-concurrency=-2"}, want: []string{"-concurrency -2"}},
		"tiny visibility":  {mode: names.ModeServe, args: []string{"-visibility-timeout", "1"}, want: []string{"-visibility-timeout 1"}},
		"sub-second retry": {mode: names.ModeDrain, args: []string{"-retry-delay", "500ms"}, want: []string{"-retry-delay 500ms: want at least 1s"}},
		"zero retry":       {mode: names.ModeDrain, args: []string{"-retry-delay", "0s"}, want: []string{"-retry-delay 0s"}},
		"extra argument":   {mode: names.ModeServe, args: []string{"now"}, want: []string{`unexpected arguments ["now"]`}},
		"serve has no max": {mode: names.ModeServe, args: []string{"-max-run-time", "1h"}, want: []string{"flag provided but not defined: -max-run-time"}},
		"negative cap":     {mode: names.ModeDrain, env: map[string]string{names.EnvMaxTasks: "-1"}, want: []string{"EDP_MAX_TASKS / -max-tasks -1: want 0 (no cap) or more"}},
		"serve has no cap": {mode: names.ModeServe, args: []string{"-max-tasks", "3"}, want: []string{"flag provided but not defined: -max-tasks"}},
		"unknown job":      {mode: names.ModeDrain, env: map[string]string{names.EnvJob: "python"}, want: []string{`EDP_JOB / -job: "python": want "iris" or "command"`}},
		"command missing":  {mode: names.ModeDrain, env: map[string]string{names.EnvJob: "command"}, want: []string{"EDP_JOB_COMMAND / -job-command: required for a command job"}},
		"command not JSON": {mode: names.ModeServe, env: map[string]string{names.EnvJob: "command", names.EnvJobCommand: "python3 train.py"}, want: []string{"EDP_JOB_COMMAND / -job-command", "want a JSON array of strings"}},
		"command empty":    {mode: names.ModeServe, env: map[string]string{names.EnvJob: "command", names.EnvJobCommand: `[""]`}, want: []string{"the program (first element) is empty"}},
		"command for iris": {mode: names.ModeServe, env: map[string]string{names.EnvJobCommand: `["x"]`}, want: []string{`EDP_JOB_COMMAND / -job-command: set, but the job is "iris"`}},
		"job limits": {mode: names.ModeDrain, env: map[string]string{names.EnvJob: "command", names.EnvJobCommand: `["x"]`,
			names.EnvJobMaxOutputFiles: "0", names.EnvJobMaxConfigBytes: "-1", names.EnvJobKillGrace: "0s", names.EnvJobValidateCommand: "{}"},
			want: []string{"EDP_JOB_MAX_OUTPUT_FILES / -job-max-output-files: 0", "EDP_JOB_MAX_CONFIG_BYTES / -job-max-config-bytes: -1", "EDP_JOB_KILL_GRACE / -job-kill-grace: 0s", "EDP_JOB_VALIDATE_COMMAND / -job-validate-command"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := taskEnv()
			for _, k := range tt.unset {
				delete(env, k)
			}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := parseQueueSettings(tt.mode, tt.args, envMap(env), io.Discard)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRunQueueFailsFast(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	start := time.Now()
	code := runQueue(context.Background(), names.ModeDrain, nil, envMap(map[string]string{}), io.Discard, &stderr)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "EDP_QUEUE_URL (or -queue-url) is required") {
		t.Errorf("stderr %q does not name the missing setting", stderr.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v to reject settings", time.Since(start))
	}

	stderr.Reset()
	if code := runQueue(context.Background(), names.ModeServe, []string{"-h"}, envMap(nil), io.Discard, &stderr); code != 0 {
		t.Errorf("-h: exit code %d, want 0", code)
	}
	if !strings.Contains(stderr.String(), "-visibility-timeout") || !strings.Contains(stderr.String(), names.EnvVisibilityTimeout) {
		t.Errorf("-h output lacks the settings: %q", stderr.String())
	}
}

// A task whose command job cannot run exits 1 before taking any work (and
// before any AWS call: no endpoint is reachable here), naming why.
func TestRunQueueRefusesAJobThatCannotRun(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		env  map[string]string
		want string
	}{
		"missing program": {map[string]string{names.EnvJobCommand: `["edp-no-such-program", "x"]`}, "job command edp-no-such-program"},
		"missing ./ file": {map[string]string{names.EnvJobCommand: `["./train.py"]`, names.EnvJobDir: t.TempDir()}, "train.py"},
		"unwritable work": {map[string]string{names.EnvJobCommand: `["sh"]`, names.EnvWorkDir: "/proc/edp-work"}, "work directory"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := taskEnv()
			env[names.EnvJob] = names.JobCommand
			env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1" // nothing listens: a call would fail differently
			for k, v := range tt.env {
				env[k] = v
			}
			var stderr bytes.Buffer
			code := runQueue(context.Background(), names.ModeDrain, nil, envMap(env), io.Discard, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), "the job cannot run") || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q: want 1 and a start-up failure naming %q", code, stderr.String(), tt.want)
			}
		})
	}
}

// fakeAttributes answers GetQueueAttributes with a fixed visibility timeout.
type fakeAttributes struct {
	visibility *string // nil: not reported
	err        error
}

func (f fakeAttributes) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := &sqs.GetQueueAttributesOutput{Attributes: map[string]string{}}
	if f.visibility != nil {
		out.Attributes["VisibilityTimeout"] = *f.visibility
	}
	return out, nil
}

func TestCheckVisibility(t *testing.T) {
	t.Parallel()
	str := func(s string) *string { return &s }
	tests := map[string]struct {
		queue   fakeAttributes
		want    time.Duration // the setting afterwards
		wantErr string
	}{
		"same":             {queue: fakeAttributes{visibility: str("300")}, want: 300 * time.Second},
		"queue wins":       {queue: fakeAttributes{visibility: str("60")}, want: time.Minute},
		"not reported":     {queue: fakeAttributes{}, want: 300 * time.Second},
		"zero":             {queue: fakeAttributes{visibility: str("0")}, wantErr: `VisibilityTimeout "0": the consumer needs at least 2 seconds`},
		"one second":       {queue: fakeAttributes{visibility: str("1")}, wantErr: `VisibilityTimeout "1"`},
		"garbage":          {queue: fakeAttributes{visibility: str("soon")}, wantErr: `VisibilityTimeout "soon"`},
		"queue unreadable": {queue: fakeAttributes{err: errors.New("AWS.SimpleQueueService.NonExistentQueue")}, wantErr: "read attributes (EDP_QUEUE_URL / -queue-url): AWS.SimpleQueueService.NonExistentQueue"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := worker.Config{QueueURL: "q", VisibilityTimeout: 300 * time.Second}
			err := checkVisibility(context.Background(), tt.queue, &w, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.VisibilityTimeout != tt.want {
				t.Errorf("visibility timeout %v, want %v", w.VisibilityTimeout, tt.want)
			}
		})
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	t.Parallel()
	_, err := parseQueueSettings(names.ModeDrain, []string{"-help"}, envMap(nil), io.Discard)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v, want flag.ErrHelp", err)
	}
}

// Every flag falls back to the variable derived from its name, -grace and
// -retry-delay included; for the settings the task definition sets, that
// is the variable the stacks set (names.Env*).
func TestEveryQueueFlagHasItsVariable(t *testing.T) {
	t.Parallel()
	var s queueSettings
	s.SetDefaults()
	fs := s.flags(names.ModeDrain, io.Discard)
	taskDefinition := map[string]string{
		"queue-url": names.EnvQueueURL, "dlq-url": names.EnvDLQURL, "bucket": names.EnvBucket,
		"config-prefix": names.EnvConfigPrefix, "artifact-prefix": names.EnvArtifactPrefix, "record-prefix": names.EnvRecordPrefix,
		"concurrency": names.EnvConcurrency, "wait-seconds": names.EnvWaitSeconds, "visibility-timeout": names.EnvVisibilityTimeout,
		"job-timeout": names.EnvJobTimeout, "empty-receives": names.EnvEmptyReceives, "max-run-time": names.EnvMaxRunTime,
		"max-tasks": names.EnvMaxTasks,
		"job":       names.EnvJob, "job-command": names.EnvJobCommand, "job-validate-command": names.EnvJobValidateCommand,
		"job-max-config-bytes": names.EnvJobMaxConfigBytes, "job-max-output-files": names.EnvJobMaxOutputFiles,
		"job-max-output-bytes": names.EnvJobMaxOutputBytes, "job-kill-grace": names.EnvJobKillGrace,
		"work-dir": names.EnvWorkDir, "job-dir": names.EnvJobDir,
	}
	fs.VisitAll(func(f *flag.Flag) {
		if env, ok := taskDefinition[f.Name]; ok && flagenv.Name(f.Name) != env {
			t.Errorf("-%s reads %s, but the stacks set %s", f.Name, flagenv.Name(f.Name), env)
		}
		if !strings.Contains(f.Usage, flagenv.Name(f.Name)) {
			t.Errorf("-%s: usage %q does not name %s", f.Name, f.Usage, flagenv.Name(f.Name))
		}
		delete(taskDefinition, f.Name)
	})
	if len(taskDefinition) != 0 {
		t.Errorf("no flag for %v", taskDefinition)
	}

	env := taskEnv()
	env["EDP_GRACE"], env["EDP_RETRY_DELAY"] = "30s", "5s"
	s, err := parseQueueSettings(names.ModeServe, nil, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.worker.Grace != 30*time.Second || s.worker.RetryDelay != 5*time.Second {
		t.Errorf("grace %v, retry delay %v: want 30s and 5s from EDP_GRACE and EDP_RETRY_DELAY", s.worker.Grace, s.worker.RetryDelay)
	}
	s, err = parseQueueSettings(names.ModeServe, []string{"-grace", "1m"}, envMap(env), io.Discard)
	if err != nil || s.worker.Grace != time.Minute {
		t.Errorf("grace %v (%v): want the flag's 1m over EDP_GRACE", s.worker.Grace, err)
	}
}

// The defaults are the worker's own, not copies; a grace whose stop would
// not fit ECS's stop timeout is refused.
func TestQueueSettingsUseTheWorkerDefaults(t *testing.T) {
	t.Parallel()
	s, err := parseQueueSettings(names.ModeDrain, nil, envMap(taskEnv()), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := worker.Config{QueueURL: s.worker.QueueURL, DLQURL: s.worker.DLQURL, VisibilityTimeout: 300 * time.Second, EmptyReceives: 3}
	want.SetDefaults()
	if diff := cmp.Diff(want, s.worker, cmpopts.IgnoreFields(worker.Config{}, "Logger")); diff != "" {
		t.Errorf("worker settings (-want +got):\n%s", diff)
	}
	_, err = parseQueueSettings(names.ModeServe, []string{"-grace", "110s"}, envMap(taskEnv()), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "EDP_GRACE / -grace 1m50s: want more than 0 and at most 1m40s") {
		t.Errorf("-grace 110s: %v, want it refused for the stop timeout", err)
	}
}

// The worker names fields, the command names flags: every field the
// worker's Validate can report maps to a flag of drain (serve has all but
// drain's own), and its message names the flag and its variable, never the
// field.
func TestEveryWorkerFieldErrorNamesAFlag(t *testing.T) {
	t.Parallel()
	bad := worker.Config{Concurrency: -1, WaitTime: time.Hour, VisibilityTimeout: time.Millisecond, JobTimeout: -1,
		RetryDelay: time.Millisecond, Grace: -1, EmptyReceives: -1, MaxRunTime: -1}
	errs := bad.Validate().(interface{ Unwrap() []error }).Unwrap()
	if len(errs) != len(workerFlags) {
		t.Errorf("Validate reported %d fields, workerFlags maps %d: %v", len(errs), len(workerFlags), errs)
	}
	var s queueSettings
	fs := s.flags(names.ModeDrain, io.Discard)
	restated := flagErrors(errors.Join(errs...))
	for i, e := range errs {
		var fe *worker.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *worker.FieldError", e)
		}
		name, ok := workerFlags[fe.Field]
		if !ok || fs.Lookup(name) == nil {
			t.Errorf("field %s: flag %q, not a flag of drain", fe.Field, name)
			continue
		}
		if msg := restated[i].Error(); !strings.Contains(msg, flagenv.Name(name)) || !strings.Contains(msg, "-"+name) || strings.Contains(msg, fe.Field+" ") {
			t.Errorf("field %s restated as %q: want its flag and variable, not the field", fe.Field, msg)
		}
	}
}

// The consumer's lines carry the namespace and the Mode dimension the
// stacks' dashboards chart (internal/names), with the task's mode as its
// value.
func TestMetricsLinesCarryTheChartedNamespaceAndMode(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{names.ModeDrain, names.ModeServe} {
		var buf bytes.Buffer
		if err := metricsWriter(&buf, mode, "edp-cluster").Emit([]emf.Metric{{Name: names.MetricJobsSucceeded, Unit: emf.Count, Value: 1}}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := emf.Decode(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		want := emf.Line{
			Namespace:  names.ConsumerMetricNamespace,
			Dimensions: map[string]string{names.ConsumerMetricMode: mode, names.ConsumerMetricCluster: "edp-cluster"},
			Metrics:    map[string]float64{names.MetricJobsSucceeded: 1},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s line (-want +got):\n%s", mode, diff)
		}
	}
}
