package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edp-pipelines/edp/internal/names"
)

func TestTasksToStart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                      string
		backlog                   int64
		running, maxTasks, perTsk int
		want                      int
	}{
		{"empty queue", 0, 0, 10, 10, 0},
		{"one message starts one task", 1, 0, 10, 10, 1},
		{"25 messages at 10 per task", 25, 0, 10, 10, 3},
		{"exact multiple", 30, 0, 10, 10, 3},
		{"10000 capped by max", 10000, 0, 10, 10, 10},
		{"running at max", 25, 10, 10, 10, 0},
		{"running above max never negative", 25, 12, 10, 10, 0},
		{"running tasks already cover the backlog", 25, 3, 10, 10, 0},
		{"running tasks cover more than the backlog", 25, 9, 10, 10, 0},
		{"top up to the backlog's need", 25, 2, 10, 10, 1},
		{"burst while one task works: up to max", 10000, 1, 10, 100, 9},
		{"burst while some work: the difference", 450, 2, 10, 100, 3},
		{"one message, nothing running, big batch size", 1, 0, 10, 500, 1},
		{"one message, a task running", 1, 1, 10, 500, 0},
		{"huge backlog does not overflow", 1 << 62, 0, 1000, 1, 1000},
		{"negative backlog", -5, 0, 10, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tasksToStart(tt.backlog, tt.running, tt.maxTasks, tt.perTsk); got != tt.want {
				t.Errorf("tasksToStart(%d, %d, %d, %d) = %d, want %d", tt.backlog, tt.running, tt.maxTasks, tt.perTsk, got, tt.want)
			}
		})
	}
}

func TestBatchSize(t *testing.T) {
	t.Parallel()
	// A tenth of max_tasks, rounded up, from 1 to RunTask's limit of 10.
	for maxTasks, want := range map[int]int{1: 1, 9: 1, 10: 1, 11: 2, 25: 3, 90: 9, 91: 10, 100: 10, 1000: 10} {
		if got := batchSize(maxTasks); got != want {
			t.Errorf("batchSize(%d) = %d, want %d", maxTasks, got, want)
		}
	}
}

// TestHandleFixtures runs the whole handler over every fixture: only the two
// ALARM notifications may touch SQS or ECS, and nothing returns an error.
func TestHandleFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture    string
		wantReason string // "" means a dispatch happens
		wantAlarm  string
	}{
		{"alarm-single-metric.json", "", "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D"},
		{"alarm-metric-math.json", "", "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D"},
		{"ok.json", reasonStateOK, ""},
		{"insufficient-data.json", reasonInsufficientData, ""},
		{"subscription-confirmation.json", reasonSubscription, ""},
		{"test-notification.json", reasonNotJSON, ""},
		{"garbage.json", reasonMalformed, ""},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, testConfig(), &fakeQueue{visible: 20, inFlight: 5}, &fakeECS{})
			if err := r.h.Handle(context.Background(), loadEvent(t, tt.fixture)); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			sent := r.ecs.sent()
			if tt.wantReason != "" {
				if r.queue.calls != 0 || len(sent) != 0 || len(r.ecs.lists) != 0 {
					t.Errorf("ignored record made AWS calls: sqs=%d list=%d run=%d", r.queue.calls, len(r.ecs.lists), len(sent))
				}
				if !hasLog(t, r.logs, "ignored record", "reason", tt.wantReason) {
					t.Errorf("no log line with reason %q in:\n%s", tt.wantReason, r.logs)
				}
				if r.metrics.String() != "" {
					t.Errorf("metrics written for an ignored record: %s", r.metrics)
				}
				return
			}
			// 25 messages at 10 per task: three tasks, one per batch
			// (max_tasks 10 makes batches of one).
			if want := []int{1, 1, 1}; !cmp.Equal(counts(sent), want) {
				t.Errorf("RunTask counts = %v, want %v", counts(sent), want)
			}
			m := r.metrics.lines(t)
			if len(m) != 1 || m[0]["alarm_name"] != tt.wantAlarm || m[0][MetricTasksStarted] != 3.0 {
				t.Errorf("metrics lines = %v, want one for %s with 3 started", m, tt.wantAlarm)
			}
		})
	}
}

func TestHandleNoRecords(t *testing.T) {
	t.Parallel()
	r := newRig(t, testConfig(), &fakeQueue{visible: 100}, &fakeECS{})
	if err := r.h.Handle(context.Background(), loadEvent(t, "ok.json")); err != nil {
		t.Fatal(err)
	}
	ev := loadEvent(t, "alarm-single-metric.json")
	ev.Records = nil
	if err := r.h.Handle(context.Background(), ev); err != nil {
		t.Fatalf("Handle(no records) = %v", err)
	}
	if len(r.ecs.sent()) != 0 {
		t.Error("RunTask called for an empty event")
	}
}

// TestDispatchBacklogAndRunning drives the formula through the real calls:
// backlog 0/1/25/10000 with no tasks running and with the cluster full.
func TestDispatchBacklogAndRunning(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		visible, inFlight int64
		running, maxTasks int
		wantCounts        []int
		wantRequested     int
	}{
		{"backlog 0", 0, 0, 0, 10, nil, 0},
		{"backlog 1", 1, 0, 0, 10, []int{1}, 1},
		{"backlog 25", 25, 0, 0, 10, []int{1, 1, 1}, 3},
		{"backlog 25 all in flight", 0, 25, 0, 10, []int{1, 1, 1}, 3},
		{"backlog 10000", 10000, 0, 0, 10, repeat(1, 10), 10},
		{"backlog 10000 max 25 in batches of 3", 10000, 0, 0, 25, append(repeat(3, 8), 1), 25},
		{"backlog 25 max 30 in one batch", 25, 0, 0, 30, []int{3}, 3},
		{"backlog 10000 max 1000", 9000, 1000, 0, 1000, repeat(10, 100), 1000},
		{"backlog 1 running max", 1, 0, 10, 10, nil, 0},
		{"backlog 10000 running max", 10000, 0, 10, 10, nil, 0},
		{"backlog 10000 running 7", 10000, 0, 7, 10, []int{1, 1, 1}, 3},
		{"running counted over pages", 10000, 0, 250, 300, repeat(10, 5), 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.MaxTasks = tt.maxTasks
			r := newRig(t, cfg, &fakeQueue{visible: tt.visible, inFlight: tt.inFlight}, &fakeECS{running: tt.running})
			if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			sent := r.ecs.sent()
			if diff := cmp.Diff(tt.wantCounts, counts(sent)); diff != "" {
				t.Errorf("RunTask counts (-want +got):\n%s", diff)
			}
			// Every batch has its own token.
			seen := map[string]bool{}
			for _, s := range sent {
				if seen[s.Token] || len(s.Token) > 64 {
					t.Errorf("token %q repeated or longer than 64", s.Token)
				}
				seen[s.Token] = true
			}
			m := r.metrics.lines(t)
			if len(m) != 1 {
				t.Fatalf("want one metrics line, got %d", len(m))
			}
			want := map[string]float64{
				MetricTasksRequested: float64(tt.wantRequested),
				MetricTasksStarted:   float64(tt.wantRequested),
				MetricTasksFailed:    0,
				MetricBacklog:        float64(tt.visible + tt.inFlight),
				MetricRunningTasks:   float64(min(tt.running, tt.maxTasks)),
			}
			for k, v := range want {
				if m[0][k] != v {
					t.Errorf("metric %s = %v, want %v", k, m[0][k], v)
				}
			}
		})
	}
}

// TestListTasksStopsAtMax checks the count stops paging once it reaches
// MaxTasks and asks for the family's RUNNING tasks.
func TestListTasksStopsAtMax(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxTasks = 15
	e := &fakeECS{running: 5000, page: 10}
	r := newRig(t, cfg, &fakeQueue{visible: 1000}, e)
	if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatal(err)
	}
	if len(e.lists) != 2 {
		t.Errorf("ListTasks calls = %d, want 2 (stop at 15 of 5000)", len(e.lists))
	}
	first := e.lists[0]
	if aws.ToString(first.Cluster) != "edp-cluster" || aws.ToString(first.Family) != "edp-consumer" ||
		first.DesiredStatus != ecstypes.DesiredStatusRunning || first.StartedBy != nil {
		t.Errorf("ListTasks input = cluster %q family %q status %q startedBy %v",
			aws.ToString(first.Cluster), aws.ToString(first.Family), first.DesiredStatus, first.StartedBy)
	}
	if len(e.sent()) != 0 {
		t.Error("RunTask called with the cluster full")
	}
}

func TestRunTaskInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.CapacityProvider = "FARGATE_SPOT"
	cfg.AssignPublicIP = "ENABLED"
	r := newRig(t, cfg, &fakeQueue{visible: 1}, &fakeECS{})
	if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatal(err)
	}
	if len(r.ecs.requests) != 1 {
		t.Fatalf("RunTask calls = %d, want 1", len(r.ecs.requests))
	}
	got := r.ecs.requests[0]
	id := dispatchID(alarmNotice{
		AlarmARN:        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D",
		StateChangeTime: "2026-11-23T17:01:13.471+0000",
	})
	want := &ecs.RunTaskInput{
		Cluster:        aws.String("edp-cluster"),
		TaskDefinition: aws.String("arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:7"),
		Count:          aws.Int32(1),
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{
			CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1,
		}},
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets:        []string{"subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"},
			SecurityGroups: []string{"sg-0123456789abcdef0"},
			AssignPublicIp: ecstypes.AssignPublicIpEnabled,
		}},
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: aws.String(names.ContainerName), Command: []string{names.ModeDrain},
		}}},
		StartedBy: aws.String(names.DefaultStartedBy),
		Tags: []ecstypes.Tag{
			{Key: aws.String(TagStartedBy), Value: aws.String(names.DefaultStartedBy)},
			{Key: aws.String(TagDispatchID), Value: aws.String(id)},
		},
		ClientToken: aws.String("edp-" + id + "-0"),
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(
		ecs.RunTaskInput{}, ecstypes.CapacityProviderStrategyItem{}, ecstypes.NetworkConfiguration{},
		ecstypes.AwsVpcConfiguration{}, ecstypes.TaskOverride{}, ecstypes.ContainerOverride{}, ecstypes.Tag{},
	)); diff != "" {
		t.Errorf("RunTask input (-want +got):\n%s", diff)
	}
}

// TestPartialFailure: RunTask reports some tasks in failures[]; they are
// asked for again, in a new batch with a new token, after one pause.
func TestPartialFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxTasks = 25 // batches of 3
		e := &fakeECS{script: []runStep{{fail: 2}}}
		r := newRig(t, cfg, &fakeQueue{visible: 10000}, e)
		start := time.Now()
		if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		// The only pause is the one before the second round: 250 ms,
		// jittered over its upper half.
		if paused := time.Since(start); paused < 125*time.Millisecond || paused > 250*time.Millisecond {
			t.Errorf("paused %v, want one pause of 125-250 ms before the retry round", paused)
		}
		sent := e.sent()
		// 25 in batches of 3 (the first starts one of three), then the two.
		want := append(repeat(3, 8), 1, 2)
		if diff := cmp.Diff(want, counts(sent)); diff != "" {
			t.Errorf("RunTask counts (-want +got):\n%s", diff)
		}
		if last := sent[len(sent)-1].Token; !strings.HasSuffix(last, "-9") {
			t.Errorf("retry batch token = %q, want a new batch index 9", last)
		}
		if e.created != 25 {
			t.Errorf("tasks created = %d, want 25", e.created)
		}
		if !hasLog(t, r.logs, "task not started", "reason", capacityReason) {
			t.Errorf("failure reason not logged:\n%s", r.logs)
		}
		m := r.metrics.lines(t)[0]
		if m[MetricTasksStarted] != 25.0 || m[MetricTasksFailed] != 0.0 {
			t.Errorf("metrics started=%v failed=%v, want 25 and 0", m[MetricTasksStarted], m[MetricTasksFailed])
		}
	})
}

// TestPartialFailurePersists: capacity never returns; the handler gives up
// after MaxRounds rounds and returns ErrTasksNotStarted with the reason.
func TestPartialFailurePersists(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var script []runStep
		for range 20 {
			script = append(script, runStep{fail: 2})
		}
		e := &fakeECS{script: script}
		cfg := testConfig()
		cfg.MaxTasks = 30 // batches of 3: the three tasks go in one
		r := newRig(t, cfg, &fakeQueue{visible: 25}, e)
		start := time.Now()
		err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
		if !errors.Is(err, ErrTasksNotStarted) || !strings.Contains(err.Error(), capacityReason) {
			t.Fatalf("Handle = %v, want ErrTasksNotStarted naming the capacity reason", err)
		}
		// 3 requested; 1 starts, 2 fail, then rounds of 2 that all fail.
		want := []int{3, 2, 2, 2, 2, 2}
		if diff := cmp.Diff(want, counts(e.sent())); diff != "" {
			t.Errorf("RunTask counts (-want +got):\n%s", diff)
		}
		// Five pauses of 250, 500, 1000, 2000 and 4000 ms, each jittered
		// over its upper half.
		if paused := time.Since(start); paused < 3875*time.Millisecond || paused > 7750*time.Millisecond {
			t.Errorf("paused %v in all, want 3.875-7.75 s", paused)
		}
		m := r.metrics.lines(t)[0]
		if m[MetricTasksRequested] != 3.0 || m[MetricTasksStarted] != 1.0 || m[MetricTasksFailed] != 2.0 {
			t.Errorf("metrics = %v, want requested 3 started 1 failed 2", m)
		}
	})
}

// TestFailedTasksRoundsStopBeforeDeadline: with capacity that never
// returns and a Lambda deadline 5 s away, the rounds stop before the
// handler's own deadline (2 s earlier) instead of pausing into it, and the
// metric line and error still go out.
func TestFailedTasksRoundsStopBeforeDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var script []runStep
		for range 20 {
			script = append(script, runStep{fail: 3})
		}
		e := &fakeECS{script: script}
		cfg := testConfig()
		cfg.MaxTasks = 30 // batches of 3: the three tasks go in one
		r := newRig(t, cfg, &fakeQueue{visible: 25}, e)
		start := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), start.Add(5*time.Second))
		defer cancel()
		err := r.h.Handle(ctx, loadEvent(t, "alarm-single-metric.json"))
		if !errors.Is(err, ErrTasksNotStarted) {
			t.Fatalf("Handle = %v, want ErrTasksNotStarted", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Handle took %v, want at most 3 s (the deadline minus the 2 s reserve)", took)
		}
		// Pauses of 125-250, 250-500, 500-1000 and 1000-2000 ms: within the
		// 3 s budget the fourth round always runs, the fifth only after short
		// pauses, the sixth (after another 2-4 s) never.
		if n := len(e.sent()); n < 4 || n > 5 {
			t.Errorf("RunTask rounds = %d, want 4 or 5", n)
		}
		if !hasLog(t, r.logs, "no time left to ask again for failed tasks", "alarm_name", "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D") {
			t.Errorf("stopping for the deadline not logged:\n%s", r.logs)
		}
		if m := r.metrics.lines(t); len(m) != 1 || m[0][MetricTasksFailed] != 3.0 {
			t.Errorf("metrics = %v, want one line with 3 failed", m)
		}
	})
}

// TestOneCallPerSDKCall: the handler calls each API once and leaves retries
// to the SDK's retryer (configured in main, tested in sdkretry_test.go). An
// error that reaches the handler — the SDK gave up on it — is not retried
// again: the dispatch stops and reports it, without pausing.
func TestOneCallPerSDKCall(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		q         *fakeQueue
		e         *fakeECS
		wantQueue int
		wantLists int
		wantRuns  int
		wantMsg   string
	}{
		{"queue throttled", &fakeQueue{err: throttled()}, &fakeECS{}, 1, 0, 0, "read queue attributes"},
		{"list throttled", &fakeQueue{visible: 25}, &fakeECS{listErr: throttled()}, 1, 1, 0, "list tasks of family"},
		{"run throttled", &fakeQueue{visible: 25}, &fakeECS{script: []runStep{{err: throttled()}}}, 1, 1, 1, "run 1 tasks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, testConfig(), tt.q, tt.e)
				start := time.Now()
				err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Handle = %v, want the throttling error, naming %q", err, tt.wantMsg)
				}
				if got := [3]int{tt.q.calls, len(tt.e.lists), len(tt.e.sent())}; got != [3]int{tt.wantQueue, tt.wantLists, tt.wantRuns} {
					t.Errorf("calls GetQueueAttributes/ListTasks/RunTask = %v, want %v", got, [3]int{tt.wantQueue, tt.wantLists, tt.wantRuns})
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("paused %v before giving up", d)
				}
			})
		})
	}
}

// TestInvocationDeadline: a call still running when the handler's budget
// ends (the SDK retrying a throttled call, a request that is never
// answered) is cut at the invocation's deadline minus the reserve, and the
// dispatch still logs, writes its metric line and returns its error before
// Lambda's own deadline.
func TestInvocationDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		e := &fakeECS{}
		r := newRig(t, testConfig(), &fakeQueue{visible: 25}, e)
		r.h.runner = hangingRunner{}
		start := time.Now()
		lambdaDeadline := start.Add(10 * time.Second)
		ctx, cancel := context.WithDeadline(context.Background(), lambdaDeadline)
		defer cancel()
		err := r.h.Handle(ctx, loadEvent(t, "alarm-single-metric.json"))
		if !errors.Is(err, ErrTasksNotStarted) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Handle = %v, want ErrTasksNotStarted with the deadline as cause", err)
		}
		if took, want := time.Since(start), 10*time.Second-defaultReserve; took != want {
			t.Errorf("Handle returned after %v, want %v (the invocation's deadline minus the reserve)", took, want)
		}
		if ctx.Err() != nil {
			t.Error("the invocation's own deadline passed")
		}
		if m := r.metrics.lines(t); len(m) != 1 || m[0][MetricTasksFailed] != 3.0 {
			t.Errorf("metrics = %v, want one line with 3 failed", m)
		}
	})
}

// hangingRunner is a RunTask that returns only when its ctx ends.
type hangingRunner struct{}

func (hangingRunner) RunTask(ctx context.Context, _ *ecs.RunTaskInput, _ ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPermanentErrorStopsTheBatches: access denied stops the remaining
// batches at once.
func TestPermanentErrorStopsTheBatches(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxTasks = 100 // batches of 10
		denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: ecs:RunTask", Fault: smithy.FaultClient}
		e := &fakeECS{script: []runStep{{}, {err: denied}}}
		r := newRig(t, cfg, &fakeQueue{visible: 250}, e)
		start := time.Now()
		err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
		if !errors.Is(err, ErrTasksNotStarted) || !strings.Contains(err.Error(), "AccessDeniedException") {
			t.Fatalf("Handle = %v, want ErrTasksNotStarted with the access error", err)
		}
		if diff := cmp.Diff([]int{10, 10}, counts(e.sent())); diff != "" {
			t.Errorf("RunTask counts (-want +got):\n%s", diff)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("paused %v before giving up on a permanent error", d)
		}
		m := r.metrics.lines(t)[0]
		if m[MetricTasksStarted] != 10.0 || m[MetricTasksFailed] != 15.0 {
			t.Errorf("metrics = %v, want started 10 failed 15", m)
		}
	})
}

// TestIdempotentRetry: Lambda retries the same notification (for example
// after a timeout) before ListTasks shows the tasks the first attempt
// started. The tokens repeat, ECS answers with the original tasks, and no
// task is started twice.
func TestIdempotentRetry(t *testing.T) {
	t.Parallel()
	e := &fakeECS{unlisted: true}
	r := newRig(t, testConfig(), &fakeQueue{visible: 25}, e)
	ev := loadEvent(t, "alarm-single-metric.json")
	for i := range 3 {
		if err := r.h.Handle(context.Background(), ev); err != nil {
			t.Fatalf("Handle #%d: %v", i+1, err)
		}
	}
	sent := e.sent()
	if len(sent) != 9 {
		t.Fatalf("RunTask requests = %v, want three batches per invocation", sent)
	}
	for i := 3; i < len(sent); i++ {
		if sent[i] != sent[i%3] {
			t.Errorf("request %d = %v, want the first invocation's %v again", i, sent[i], sent[i%3])
		}
	}
	if e.created != 3 {
		t.Errorf("tasks created = %d, want 3 (no duplicates)", e.created)
	}

	// The next transition to ALARM is a new dispatch with new tokens.
	next := loadEvent(t, "alarm-metric-math.json")
	if err := r.h.Handle(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if sent := e.sent(); sent[len(sent)-1].Token == sent[2].Token {
		t.Errorf("a new state change reused token %q", sent[2].Token)
	}
	if e.created != 6 {
		t.Errorf("tasks created = %d, want 6", e.created)
	}

	// Once the cluster lists them, another notification for the same
	// backlog starts nothing: the running tasks already cover it.
	e.mu.Lock()
	e.unlisted = false
	e.mu.Unlock()
	before := len(e.sent())
	if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatal(err)
	}
	if got := e.sent()[before:]; len(got) != 0 {
		t.Errorf("with %d tasks listed for a backlog of 25 (3 tasks' worth), RunTask requests %v, want none", e.created, got)
	}
}

// TestRetryAfterPartialSuccess: the first invocation starts seven of nine
// batches and fails; its retry re-plans with the started tasks counted, the
// reused tokens of the earlier batches start nothing, and the cap holds.
func TestRetryAfterPartialSuccess(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxTasks = 25 // batches of 3
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied", Fault: smithy.FaultClient}
	e := &fakeECS{script: []runStep{{}, {}, {}, {}, {}, {}, {}, {err: denied}}}
	r := newRig(t, cfg, &fakeQueue{visible: 10000}, e)
	ev := loadEvent(t, "alarm-single-metric.json")
	if err := r.h.Handle(context.Background(), ev); !errors.Is(err, ErrTasksNotStarted) {
		t.Fatalf("first Handle = %v, want ErrTasksNotStarted", err)
	}
	if e.created != 21 {
		t.Fatalf("first attempt created %d, want 21", e.created)
	}
	// Retry: 21 running, room for 4. Batch 0 asks for 3 with the token and
	// parameters of the first attempt's batch 0: ECS returns those tasks.
	// Batch 1 asks for the last 1 with the token that asked for 3 before:
	// ConflictException.
	if err := r.h.Handle(context.Background(), ev); err != nil {
		t.Fatalf("retry Handle: %v", err)
	}
	if e.created != 21 || e.running > cfg.MaxTasks {
		t.Errorf("after retry created=%d running=%d, want 21 and at most %d", e.created, e.running, cfg.MaxTasks)
	}
	m := r.metrics.lines(t)
	last := m[len(m)-1]
	if last[MetricTasksRequested] != 4.0 || last[MetricTasksStarted] != 3.0 || last["tasks_skipped"] != 1.0 || last[MetricTasksFailed] != 0.0 {
		t.Errorf("retry metrics = %v, want requested 4, started 3 (the first attempt's), skipped 1, failed 0", last)
	}
}

// TestCappedByRereading: between the decision and a later batch someone
// else starts tasks; the re-read before that batch counts them, the batch
// shrinks to the room that is left, and what no longer fits is dropped as
// capped, not reported as failed.
func TestCappedByRereading(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxTasks = 25 // batches of 3
	e := &fakeECS{running: 5}
	others := &othersStartTasks{fakeECS: e, afterBatch: 2, start: 12}
	r := newRig(t, cfg, &fakeQueue{visible: 10000}, e)
	r.h.lister, r.h.runner = others, others
	if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	// Decision: 5 running, 20 requested. Two batches of 3 (11 running), then
	// 12 more appear (23): one batch of 2 fits, 12 are capped.
	if diff := cmp.Diff([]int{3, 3, 2}, counts(e.sent())); diff != "" {
		t.Errorf("RunTask counts (-want +got):\n%s", diff)
	}
	if e.running != cfg.MaxTasks {
		t.Errorf("running = %d, want %d", e.running, cfg.MaxTasks)
	}
	m := r.metrics.lines(t)[0]
	if m[MetricTasksRequested] != 20.0 || m[MetricTasksStarted] != 8.0 || m["tasks_capped"] != 12.0 || m[MetricTasksFailed] != 0.0 {
		t.Errorf("metrics = %v, want requested 20, started 8, capped 12, failed 0", m)
	}
	if !hasLog(t, r.logs, "family at max tasks, rest of the plan dropped", "alarm_name", "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D") {
		t.Errorf("capping not logged:\n%s", r.logs)
	}
}

// othersStartTasks is a fakeECS in which someone else starts tasks of the
// family right after the dispatcher's batch number afterBatch.
type othersStartTasks struct {
	*fakeECS
	afterBatch, start int
	batches           int
}

func (o *othersStartTasks) RunTask(ctx context.Context, in *ecs.RunTaskInput, opt ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	out, err := o.fakeECS.RunTask(ctx, in, opt...)
	o.batches++
	if o.batches == o.afterBatch {
		o.fakeECS.mu.Lock()
		o.fakeECS.running += o.start // listed like seeded tasks
		o.fakeECS.mu.Unlock()
	}
	return out, err
}

// TestRereadCountsOwnUnlistedTasks: ListTasks is eventually consistent and
// may not show tasks RunTask just started. The re-read counts the
// invocation's own tasks anyway, so it never mistakes them for free room
// when someone else's tasks fill the family meanwhile.
func TestRereadCountsOwnUnlistedTasks(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.MaxTasks = 25 // batches of 3
	e := &fakeECS{running: 20}
	others := &othersStartTasks{fakeECS: e, afterBatch: 1, start: 2}
	r := newRig(t, cfg, &fakeQueue{visible: 10000}, e)
	r.h.lister, r.h.runner = &laggingLister{fakeECS: e}, others
	if err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	// Decision: 20 running, room 5. A batch of 3 (23), then 2 more by
	// someone else (25). The listing shows 22 — not the batch of 3 — but
	// with its own 3 the dispatcher counts 25 and stops.
	if diff := cmp.Diff([]int{3}, counts(e.sent())); diff != "" {
		t.Errorf("RunTask counts (-want +got):\n%s", diff)
	}
	if e.running > cfg.MaxTasks {
		t.Errorf("running = %d, want at most %d", e.running, cfg.MaxTasks)
	}
	m := r.metrics.lines(t)[0]
	if m[MetricTasksStarted] != 3.0 || m["tasks_capped"] != 2.0 || m[MetricTasksFailed] != 0.0 {
		t.Errorf("metrics = %v, want started 3, capped 2, failed 0", m)
	}
}

// laggingLister is a ListTasks that has not caught up with RunTask: it
// leaves out every task the dispatcher started.
type laggingLister struct {
	*fakeECS
}

func (l *laggingLister) ListTasks(ctx context.Context, in *ecs.ListTasksInput, opt ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	out, err := l.fakeECS.ListTasks(ctx, in, opt...)
	if err != nil {
		return nil, err
	}
	l.fakeECS.mu.Lock()
	started := slices.Clone(l.fakeECS.started)
	l.fakeECS.mu.Unlock()
	out.TaskArns = slices.DeleteFunc(out.TaskArns, func(arn string) bool { return slices.Contains(started, arn) })
	return out, nil
}

// TestRereadFails: when the count before a later batch cannot be read, the
// dispatcher starts nothing on a guess: it stops and reports the missing
// tasks with the cause, so Lambda retries the invocation.
func TestRereadFails(t *testing.T) {
	t.Parallel()
	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "denied", Fault: smithy.FaultClient}
	e := &fakeECS{}
	r := newRig(t, testConfig(), &fakeQueue{visible: 25}, e)
	r.h.lister = &failAfterLister{fakeECS: e, ok: 1, err: denied}
	err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
	if !errors.Is(err, ErrTasksNotStarted) || !strings.Contains(err.Error(), "re-read before batch 1") || !errors.As(err, new(smithy.APIError)) {
		t.Fatalf("Handle = %v, want ErrTasksNotStarted naming the failed re-read", err)
	}
	if diff := cmp.Diff([]int{1}, counts(e.sent())); diff != "" {
		t.Errorf("RunTask counts (-want +got):\n%s", diff)
	}
	m := r.metrics.lines(t)[0]
	if m[MetricTasksStarted] != 1.0 || m[MetricTasksFailed] != 2.0 {
		t.Errorf("metrics = %v, want started 1 failed 2", m)
	}
}

// failAfterLister answers the first ok ListTasks calls and fails the rest.
type failAfterLister struct {
	*fakeECS
	ok    int
	calls int
	err   error
}

func (l *failAfterLister) ListTasks(ctx context.Context, in *ecs.ListTasksInput, opt ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	l.calls++
	if l.calls > l.ok {
		return nil, l.err
	}
	return l.fakeECS.ListTasks(ctx, in, opt...)
}

// TestClientTokens: the token of a batch depends only on the notification
// and the batch number, so every delivery of one notification sends the same
// tokens and different state changes never share one; every token is what
// ECS accepts (at most 64 ASCII characters from 33 to 126).
func TestClientTokens(t *testing.T) {
	t.Parallel()
	tokens := func(t *testing.T, ev events.SNSEvent) []string {
		t.Helper()
		e := &fakeECS{}
		r := newRig(t, testConfig(), &fakeQueue{visible: 25}, e)
		if err := r.h.Handle(context.Background(), ev); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		var out []string
		for _, s := range e.sent() {
			out = append(out, s.Token)
		}
		return out
	}
	single := loadEvent(t, "alarm-single-metric.json")
	first, again := tokens(t, single), tokens(t, single)
	if len(first) != 3 {
		t.Fatalf("tokens = %v, want three batches", first)
	}
	if diff := cmp.Diff(first, again); diff != "" {
		t.Errorf("same notification delivered twice, tokens differ (-first +again):\n%s", diff)
	}

	// A redelivery is a new SNS record around the same message; only
	// fields SNS keeps across redeliveries may matter.
	redelivered := loadEvent(t, "alarm-single-metric.json")
	redelivered.Records[0].SNS.Timestamp = redelivered.Records[0].SNS.Timestamp.Add(time.Minute)
	redelivered.Records[0].SNS.Signature = "different"
	if diff := cmp.Diff(first, tokens(t, redelivered)); diff != "" {
		t.Errorf("redelivery changed the tokens (-first +redelivered):\n%s", diff)
	}

	other := tokens(t, loadEvent(t, "alarm-metric-math.json"))
	for _, tok := range other {
		if slices.Contains(first, tok) {
			t.Errorf("token %q shared by two state changes", tok)
		}
	}

	// Without a StateChangeTime the SNS message id names the transition.
	noTime := func(msgID string) alarmNotice {
		return alarmNotice{AlarmARN: fixtureAlarmARN, SNSMessageID: msgID}
	}
	a, b := dispatchID(noTime("6f1a2c0e-0000-4000-8000-000000000001")), dispatchID(noTime("6f1a2c0e-0000-4000-8000-000000000002"))
	if a == b || a != dispatchID(noTime("6f1a2c0e-0000-4000-8000-000000000001")) {
		t.Errorf("fallback dispatch ids: %q, %q; want stable per message id and distinct across them", a, b)
	}
	// Two alarms changing state at the same instant do not collide.
	if dispatchID(alarmNotice{AlarmARN: fixtureAlarmARN + "-a", StateChangeTime: "2026-11-23T17:01:13.471+0000"}) ==
		dispatchID(alarmNotice{AlarmARN: fixtureAlarmARN + "-b", StateChangeTime: "2026-11-23T17:01:13.471+0000"}) {
		t.Error("two alarms with the same state-change time share a dispatch id")
	}

	// The longest token: the highest batch number one dispatch can reach
	// (MaxTasks of 1000 one task at a time, every round re-asked).
	longest := clientToken(a, maxMaxTasks*defaultRounds.MaxRounds)
	for _, tok := range append(append(first, other...), longest, clientToken(b, 0)) {
		if err := validClientToken(tok); err != nil {
			t.Error(err)
		}
	}
}

// validClientToken checks a RunTask client token against the ECS rules.
func validClientToken(tok string) error {
	if tok == "" || len(tok) > 64 {
		return fmt.Errorf("token %q: length %d, want 1 to 64", tok, len(tok))
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c < 33 || c > 126 {
			return fmt.Errorf("token %q: byte %d is %q, want ASCII 33-126", tok, i, c)
		}
	}
	return nil
}

func TestQueueAndListErrors(t *testing.T) {
	t.Parallel()
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "denied", Fault: smithy.FaultClient}
	tests := []struct {
		name    string
		q       *fakeQueue
		e       *fakeECS
		wantMsg string
	}{
		{"queue denied", &fakeQueue{err: denied}, &fakeECS{}, "read queue attributes"},
		{"list denied", &fakeQueue{visible: 5}, &fakeECS{listErr: denied}, "list tasks of family edp-consumer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, testConfig(), tt.q, tt.e)
			err := r.h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) || !errors.As(err, new(smithy.APIError)) {
				t.Fatalf("Handle = %v, want an error containing %q", err, tt.wantMsg)
			}
			if len(tt.e.sent()) != 0 {
				t.Error("RunTask called although the decision inputs are unknown")
			}
			if !hasLog(t, r.logs, "dispatch failed", "alarm_name", "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D") {
				t.Errorf("failure not logged:\n%s", r.logs)
			}
		})
	}
}

func TestNewHandlerRejects(t *testing.T) {
	t.Parallel()
	e := &fakeECS{}
	if _, err := NewHandler(testConfig(), Deps{Lister: e, Runner: e}); err == nil {
		t.Error("missing Queue accepted")
	}
	h, err := NewHandler(testConfig(), Deps{Queue: &fakeQueue{}, Lister: e, Runner: e})
	if err != nil {
		t.Fatal(err)
	}
	// Zero-value Logger and Metrics are usable.
	if err := h.Handle(context.Background(), loadEvent(t, "ok.json")); err != nil {
		t.Fatal(err)
	}
}

func TestRoundPause(t *testing.T) {
	t.Parallel()
	// 250 ms doubling to 4 s, jittered over the upper half.
	want := []time.Duration{250, 500, 1000, 2000, 4000, 4000, 4000}
	for round, w := range want {
		w *= time.Millisecond
		for range 50 {
			if got := defaultRounds.pause(round); got < w/2 || got > w {
				t.Fatalf("pause(%d) = %v, want %v to %v", round, got, w/2, w)
			}
		}
	}
	if isConflict(throttled()) || !isConflict(&ecstypes.ConflictException{Message: aws.String("x")}) {
		t.Error("isConflict misclassifies")
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func counts(sent []batchSent) []int {
	var out []int
	for _, s := range sent {
		out = append(out, s.Count)
	}
	return out
}

// hasLog reports whether a JSON log line has message msg and key == value.
func hasLog(t *testing.T, logs *syncBuffer, msg, key, value string) bool {
	t.Helper()
	for _, l := range logs.lines(t) {
		if l["msg"] == msg && l[key] == value {
			return true
		}
	}
	return false
}
