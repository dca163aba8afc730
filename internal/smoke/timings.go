package smoke

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/edp-pipelines/edp/internal/stackview"
)

// ECSAPI is the part of ECS the smoke test reads to measure the run's task
// (Options.ECS).
type ECSAPI interface {
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
}

// Measured are the figures of one run that `edp simulate -timings` takes
// (docs/choosing.md, Parameters), in the stack's time: seconds on AWS, the
// model time of a local cloud (real seconds × its speed-up).
type Measured struct {
	// Task is the ARN of the task that ran the job.
	Task string
	// TaskStart is that task's RunTask → the run's start (ECS createdAt →
	// the record's started_at): the image pull, the container's start, the
	// consumer's start-up checks and its first receive, which is what
	// edp simulate's taskStart stands for. Only a task created after the
	// upload is measured (a task already running started for other work).
	TaskStart time.Duration
	// EventDelay is the upload → that task's RunTask, measured for
	// EdpOneOff only (its rule starts a task per upload; elsewhere an alarm
	// or a schedule started it): HasEventDelay says whether it was.
	EventDelay    time.Duration
	HasEventDelay bool
}

// measure finds the task that ran the run (its recent-runs index entry)
// and reads its start from ECS.
func measure(ctx context.Context, o *Options, res Result, bucket, cluster string) (Measured, error) {
	if res.Record == nil {
		return Measured{}, errors.New("no run record")
	}
	if cluster == "" {
		return Measured{}, errors.New("the stack has no cluster output")
	}
	recent := &stackview.Recent{API: o.S3, Bucket: bucket}
	entries, err := recent.Runs(ctx, 50, stackview.RecentFilter{Since: res.Uploaded.Add(-recordClockSkew)})
	if err != nil {
		return Measured{}, fmt.Errorf("recent runs: %w", err)
	}
	var m Measured
	for _, e := range entries {
		if e.RunID == res.Record.RunID && e.Task != "" {
			m.Task = e.Task
			break
		}
	}
	if !strings.HasPrefix(m.Task, "arn:") {
		return Measured{}, fmt.Errorf("run %s names no ECS task in the recent-runs index (%q)", res.Record.RunID, m.Task)
	}
	out, err := o.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: []string{m.Task}})
	if err != nil {
		return Measured{}, fmt.Errorf("describe task %s: %w", m.Task, err)
	}
	if len(out.Tasks) != 1 || out.Tasks[0].CreatedAt == nil {
		return Measured{}, fmt.Errorf("task %s: ECS gave no creation time (it may have been stopped too long ago)", m.Task)
	}
	created, started := *out.Tasks[0].CreatedAt, res.Record.StartedAt
	if created.Before(res.Uploaded) {
		return Measured{}, fmt.Errorf("task %s was running before the upload (started for other work): no start to measure", m.Task)
	}
	scale := 1.0
	if o.Local != nil {
		scale = o.Local.Speedup
	}
	model := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	m.TaskStart = model(started.Sub(created))
	if res.Arch == OneOff {
		m.EventDelay, m.HasEventDelay = model(max(0, created.Sub(res.Uploaded))), true
	}
	return m, nil
}
