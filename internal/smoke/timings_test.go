package smoke

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// fakeECS answers DescribeTasks with one task created at created.
type fakeECS struct{ created time.Time }

func (f fakeECS) DescribeTasks(_ context.Context, in *ecs.DescribeTasksInput, _ ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error) {
	return &ecs.DescribeTasksOutput{Tasks: []ecstypes.Task{{TaskArn: aws.String(in.Tasks[0]), CreatedAt: aws.Time(f.created)}}}, nil
}

// The run's task is found through the recent-runs index and measured from
// its RunTask to the run's start; EdpOneOff's delay is upload → RunTask; a
// local cloud's figures are in model time; a task that ran before the
// upload is not measured.
func TestMeasureTheRunsTask(t *testing.T) {
	t.Parallel()
	const runID, task = "0123456789abcdef0123456789abcdef", "arn:aws:ecs:us-east-1:123456789012:task/c/abc"
	upload := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	created, started := upload.Add(2*time.Second), upload.Add(32*time.Second)
	entry, err := json.Marshal(runrecord.Entry{Format: "x", RunID: runID, Status: runrecord.StatusSucceeded, Task: task, StartedAt: started})
	if err != nil {
		t.Fatal(err)
	}
	s3api := &fakeS3{objects: map[string]fakeObject{
		runrecord.EntryKey(names.RecentPrefix, started.Add(time.Second), runID, runrecord.StatusSucceeded): {body: string(entry), modified: started},
	}}
	res := Result{Arch: OneOff, Uploaded: upload, Record: &runrecord.Record{RunID: runID, StartedAt: started}}

	m, err := measure(t.Context(), &Options{S3: s3api, ECS: fakeECS{created}}, res, "bucket", "cluster")
	if err != nil {
		t.Fatal(err)
	}
	if m.Task != task || m.TaskStart != 30*time.Second || !m.HasEventDelay || m.EventDelay != 2*time.Second {
		t.Errorf("measured %+v: want task %s, start 30s, event delay 2s", m, task)
	}
	local, err := measure(t.Context(), &Options{S3: s3api, ECS: fakeECS{created}, Local: &Local{Speedup: 30}}, res, "bucket", "cluster")
	if err != nil || local.TaskStart != 900*time.Second || local.EventDelay != time.Minute {
		t.Errorf("local cloud at ×30: %+v, %v; want 15m and 1m of model time", local, err)
	}
	res.Arch = AlarmService
	if m, err := measure(t.Context(), &Options{S3: s3api, ECS: fakeECS{created}}, res, "bucket", "cluster"); err != nil || m.HasEventDelay {
		t.Errorf("alarm-service: %+v, %v; want no event delay (an alarm started the task)", m, err)
	}
	if _, err := measure(t.Context(), &Options{S3: s3api, ECS: fakeECS{upload.Add(-time.Minute)}}, res, "bucket", "cluster"); err == nil || !strings.Contains(err.Error(), "before the upload") {
		t.Errorf("a task older than the upload: %v, want it refused", err)
	}
	res.Record.RunID = "ffffffffffffffffffffffffffffffff"
	if _, err := measure(t.Context(), &Options{S3: s3api, ECS: fakeECS{created}}, res, "bucket", "cluster"); err == nil || !strings.Contains(err.Error(), "names no ECS task") {
		t.Errorf("a run not in the index: %v, want an error saying so", err)
	}
}
