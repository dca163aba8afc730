package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// staticECS answers every call the same way, so a benchmark measures the
// handler and not the fake.
type staticECS struct {
	list *ecs.ListTasksOutput
	run  *ecs.RunTaskOutput
}

func (s staticECS) ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	return s.list, nil
}

func (s staticECS) RunTask(context.Context, *ecs.RunTaskInput, ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	return s.run, nil
}

// BenchmarkDecision is one invocation with a fake backend: decode the alarm,
// read backlog and running tasks, decide, build and send one RunTask batch,
// log as JSON and write the metric line.
func BenchmarkDecision(b *testing.B) {
	e := staticECS{list: &ecs.ListTasksOutput{}, run: &ecs.RunTaskOutput{}}
	for i := range 3 {
		e.list.TaskArns = append(e.list.TaskArns, fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp/%d", i))
		e.run.Tasks = append(e.run.Tasks, ecstypes.Task{TaskArn: aws.String(fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp/n%d", i))})
	}
	cfg := testConfig()
	cfg.MaxTasks = 30 // batches of 3: the three tasks go in one
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	h, err := NewHandler(cfg, Deps{
		Queue:   &fakeQueue{visible: 20, inFlight: 5},
		Lister:  e,
		Runner:  e,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: io.Discard,
	})
	if err != nil {
		b.Fatal(err)
	}
	ev := loadEvent(b, "alarm-single-metric.json")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Handle(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdStart is the handler construction done at a cold start:
// parse and validate the environment, load the SDK configuration, build the
// SQS and ECS clients.
func BenchmarkColdStart(b *testing.B) {
	dir := b.TempDir()
	// Hermetic SDK configuration: no shared files, static credentials.
	b.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	b.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	b.Setenv("AWS_REGION", "us-east-1")
	b.Setenv("AWS_ACCESS_KEY_ID", "testing")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	env := envOf(minimalEnv())
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := coldStart(ctx, env, log, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
