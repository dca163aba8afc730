package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/sim"
	"github.com/edp-pipelines/edp/internal/smoke"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

const exampleConfig = "../../examples/random-forest.yaml"

// syncBuffer is written by the cloud's goroutines and read by the test.
type syncBuffer = syncbuf.Buffer

// upCloud deploys stack from the test's assembly into a local cloud of its
// own, stopped when the test ends; on failure the test shows the cloud's
// log.
func upCloud(t *testing.T, assembly, stack string) *localcloud.Cloud {
	t.Helper()
	log := &syncBuffer{}
	cloud, err := localcloud.Up(t.Context(), localcloud.Options{
		RepoRoot: filepath.Join("..", ".."), Stack: stack, AssemblyDir: assembly,
		WorkDir: t.TempDir(), Logger: slog.New(slog.NewJSONHandler(log, nil)),
	})
	if err != nil {
		t.Fatalf("local cloud of %s: %v", stack, err)
	}
	t.Cleanup(func() {
		if err := cloud.Close(context.Background()); err != nil {
			t.Errorf("close the local cloud: %v", err)
		}
		if t.Failed() {
			t.Logf("local cloud log:\n%s", log.String())
		}
	})
	return cloud
}

// waitScaledIn waits until the alarm-service stack's service has scaled in
// to no task: a new service starts with one (ECS's default), which would
// take the upload at once instead of the deployed alarms' max-wait path.
func waitScaledIn(t *testing.T, cloud *localcloud.Cloud) {
	t.Helper()
	ids := cloud.Stack().Resources("AWS::ECS::Service")
	if len(ids) != 1 {
		t.Fatalf("%d services, want 1", len(ids))
	}
	p := cloud.Stack().Physical[ids[0]]
	svc := p[strings.LastIndex(p, "/")+1:]
	deadline := time.Now().Add(time.Minute)
	for cloud.ECS().DesiredCount(svc) > 0 || cloud.ECS().RunningCount(svc) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("service %s still wants %d task(s) after 1m", svc, cloud.ECS().DesiredCount(svc))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readConfig(t *testing.T) []byte {
	t.Helper()
	body, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// The smoke test passes on every stack deployed through moto's
// CloudFormation and run by the local cloud: the upload's run record says
// succeeded, its artifacts exist, the DLQ is empty. One-off also shows
// that a bad config fails it, naming the record and the DLQ; cron goes
// through the command as `make smoke LOCAL=1` does with a `local up`
// cloud, whose schedule it starts on the local ECS endpoint.
func TestSmokeLocal(t *testing.T) {
	// One synthesis for the package's tests (assemblyForTests).
	assembly := assemblyForTests(t)
	good := readConfig(t)

	for _, stack := range []string{names.StackOneOff, names.StackAlarmService, names.StackAlarmDispatch} {
		t.Run(stack, func(t *testing.T) {
			t.Parallel()
			cloud := upCloud(t, assembly, stack)
			if stack == names.StackAlarmService {
				waitScaledIn(t, cloud)
			}
			var out syncBuffer
			start := time.Now()
			res, err := smokeLocal(t.Context(), smoke.Options{Stack: stack, Config: good, ConfigName: "random-forest.yaml", Out: &out,
				ECS: localcloud.LocalECS(cloud.ECSEndpoint())},
				cloud.Endpoint(), cloud.ECSEndpoint(), cloud.Speedup())
			t.Logf("smoke of %s took %s:\n%s", stack, time.Since(start).Round(time.Millisecond), out.String())
			if err != nil {
				t.Fatal(err)
			}
			if !res.Passed() || !strings.HasPrefix(res.Summary(), "PASS ") {
				t.Fatalf("want PASS, got %s", res.Summary())
			}
			if res.Latency <= 0 || res.Record == nil || len(res.Record.Artifacts) == 0 {
				t.Errorf("result %+v: want a latency and a record with artifacts", res)
			}
			// The run's task measured from ECS, in model time; the event
			// delay only where the rule starts the task.
			if m := res.Measured; m == nil || m.TaskStart <= 0 || m.HasEventDelay != (stack == names.StackOneOff) || (m.HasEventDelay && m.EventDelay <= 0) {
				t.Errorf("measured %+v (error %v): want a task start, and an event delay for EdpOneOff only", res.Measured, res.MeasureError)
			}
			if stack != names.StackOneOff {
				// One config is below N: it ran because the oldest message
				// reached the max wait (15 min sped up ×30: 30 s).
				if res.Latency < 25*time.Second {
					t.Errorf("upload→done %s: want the max wait (30 s locally) to have passed", res.Latency)
				}
				return
			}

			// A config the consumer refuses for good: a failure record, and
			// the message in the DLQ.
			bad := bytes.Replace(good, []byte("test_size: 0.3"), []byte("test_size: 150"), 1)
			if bytes.Equal(bad, good) {
				t.Fatal("the example no longer sets test_size: 0.3")
			}
			out = syncBuffer{}
			res, err = smokeLocal(t.Context(), smoke.Options{Stack: stack, Config: bad, ConfigName: "bad.yaml", Out: &out},
				cloud.Endpoint(), cloud.ECSEndpoint(), cloud.Speedup())
			t.Logf("smoke of a bad config:\n%s", out.String())
			if err != nil {
				t.Fatal(err)
			}
			sum := res.Summary()
			for _, want := range []string{"FAIL " + stack, "run record " + names.RecordPrefix, "has status failed (permanent)", "test_size", "dead-letter queue holds 1 message(s) (0 before the upload)"} {
				if !strings.Contains(sum, want) {
					t.Errorf("summary %q lacks %q", sum, want)
				}
			}
			if smokeExit(res, nil, io.Discard) != 1 {
				t.Error("a failed smoke test must exit 1")
			}
		})
	}

	t.Run(names.StackCron, func(t *testing.T) {
		t.Parallel()
		cloud := upCloud(t, assembly, names.StackCron)
		workDir := t.TempDir()
		writeLocalState(t, cloud, workDir)
		var stdout, stderr syncBuffer
		start := time.Now()
		// -timings adds to a calibration file and keeps what it held.
		timings := filepath.Join(t.TempDir(), "timings.json")
		if err := os.WriteFile(timings, []byte(`{"_note": "by hand", "metricDelay": 90}`), 0o644); err != nil {
			t.Fatal(err)
		}
		code := cmdSmoke(t.Context(), []string{"-stack", "cron", "-local", "-work-dir", workDir, "-config", exampleConfig, "-timings", timings}, &stdout, &stderr)
		t.Logf("edp smoke -stack cron -local took %s:\n%s%s", time.Since(start).Round(time.Millisecond), stdout.String(), stderr.String())
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		for _, want := range []string{"ran the target of schedule", "PASS " + names.StackCron + " (cron)"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		raw, err := os.ReadFile(timings)
		if err != nil {
			t.Fatal(err)
		}
		cal, err := sim.ReadCalibration(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("the calibration file:\n%s\n%v", raw, err)
		}
		if cal.Samples(sim.SampleTaskStart) != 1 || cal.Samples(sim.SampleEventDelay) != 0 {
			t.Errorf("calibration file:\n%s\nwant one task start and no event delay (a schedule started the task)", raw)
		}
		p, err := sim.LoadTimings(bytes.NewReader(raw), sim.DefaultParams())
		if err != nil {
			t.Fatalf("edp simulate -timings would refuse the file: %v", err)
		}
		if p.MetricDelay != 90 || p.TaskStartP50 <= 0 || p.TaskStartP50 != p.TaskStartP90 {
			t.Errorf("timings %+v: want the hand-set metricDelay 90 and the one task start as p50 and p90", p)
		}
		// The same state, asked for another stack: a usage error, nothing uploaded.
		code = cmdSmoke(t.Context(), []string{"-stack", names.StackOneOff, "-local", "-work-dir", workDir, "-config", exampleConfig}, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "runs EdpCron, not EdpOneOff") {
			t.Errorf("another stack than the local cloud's: exit %d, stderr %q; want 2 naming both", code, stderr.String())
		}
	})
}

// Usage errors exit 2 before anything is contacted.
func TestSmokeUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no stack", nil, nil, "-stack is required"},
		{"unknown stack", []string{"-stack", "EdpNope"}, nil, `unknown architecture "EdpNope"`},
		{"missing config", []string{"-stack", "oneoff", "-config", "no/such.yaml"}, nil, "-config:"},
		{"bad timeout from env", []string{"-stack", "oneoff"}, map[string]string{"EDP_TIMEOUT": "soon"}, "EDP_TIMEOUT"},
		{"negative timeout", []string{"-stack", "oneoff", "-timeout", "-1s", "-config", exampleConfig}, nil, "negative"},
		{"stray argument", []string{"-stack", "oneoff", "extra"}, nil, "unexpected arguments"},
		{"unknown flag", []string{"-stak", "oneoff"}, nil, "flag provided but not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range []string{"stack", "local", "config", "timeout", "work-dir"} {
				t.Setenv(envName(f), tc.env[envName(f)])
			}
			var stderr bytes.Buffer
			code := cmdSmoke(t.Context(), tc.args, io.Discard, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
