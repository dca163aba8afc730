package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// These tests put a real SDK client between the handler and an HTTP server
// (the capture server of integration_test.go) that answers RunTask with
// ThrottlingException: retrying is the SDK's business, so every request the
// server sees must come from the SDK's retryer, never from a loop of the
// handler's around it.

// throttle is the ECS answer to a call over its rate.
var throttle = captureReply{status: http.StatusBadRequest, body: `{"__type":"ThrottlingException","message":"Rate exceeded"}`}

func throttles(n int) []captureReply {
	out := make([]captureReply, n)
	for i := range out {
		out[i] = throttle
	}
	return out
}

// sdkRig is a handler whose RunTask goes through runner to a capture server;
// backlog and running tasks come from fakes (25 messages, none running, one
// batch of 3 tasks).
func sdkRig(t *testing.T, runner TaskRunner) (*Handler, *syncBuffer) {
	t.Helper()
	cfg := testConfig()
	cfg.MaxTasks = 30 // batches of 3: the three tasks go in one
	return integrationHandler(t, cfg, &fakeQueue{visible: 25}, &fakeECS{}, runner)
}

// sameRequest asserts that every captured request is the first one again:
// the SDK resends the body, client token included.
func sameRequest(t *testing.T, got []captured) {
	t.Helper()
	for i, c := range got {
		if fmt.Sprint(c.JSON) != fmt.Sprint(got[0].JSON) {
			t.Errorf("request %d = %v, want the first one again: %v", i, c.JSON, got[0].JSON)
		}
	}
}

// TestSDKRetriesThrottledRunTask: a RunTask throttled twice, with the
// function's retryer as configured (backoff included): the SDK resends the
// same request and the third one starts the tasks — three requests, within
// the configured attempts.
func TestSDKRetriesThrottledRunTask(t *testing.T) {
	t.Parallel()
	capture := newCaptureServer(t, throttles(2))
	h, metrics := sdkRig(t, ecsAt(capture.URL))
	if err := h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json")); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	got := capture.bodies()
	if len(got) != 3 {
		t.Fatalf("RunTask requests = %d, want 3 (2 throttled, then success, within %d attempts)", len(got), sdkMaxAttempts)
	}
	sameRequest(t, got)
	if m := metrics.lines(t); len(m) != 1 || m[0][MetricTasksStarted] != 3.0 {
		t.Errorf("metrics = %v, want 3 started", m)
	}
}

// TestThrottledRunTaskCostsAtMostMaxAttempts: a RunTask throttled for good
// costs exactly sdkMaxAttempts requests (it was 6 × 3 = 18 when the handler
// looped around the SDK's retries), and the handler reports the tasks
// missing with the throttling error. The retryer is main's with its pauses
// set to zero: how long the SDK waits is its business, how often it asks is
// what this test counts.
func TestThrottledRunTaskCostsAtMostMaxAttempts(t *testing.T) {
	t.Parallel()
	capture := newCaptureServer(t, throttles(50))
	noPause := retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
	client := ecs.NewFromConfig(awsConfig(), func(o *ecs.Options) {
		o.BaseEndpoint = aws.String(capture.URL)
		o.Retryer = retry.NewStandard(retryOptions, func(o *retry.StandardOptions) { o.Backoff = noPause })
	})
	h, metrics := sdkRig(t, client)
	err := h.Handle(context.Background(), loadEvent(t, "alarm-single-metric.json"))
	var apiErr smithy.APIError
	if !errors.Is(err, ErrTasksNotStarted) || !errors.As(err, &apiErr) || apiErr.ErrorCode() != "ThrottlingException" {
		t.Fatalf("Handle = %v, want ErrTasksNotStarted with the throttling error", err)
	}
	got := capture.bodies()
	if len(got) != sdkMaxAttempts {
		t.Errorf("RunTask requests = %d, want %d (the SDK's attempts, and no more)", len(got), sdkMaxAttempts)
	}
	sameRequest(t, got)
	if m := metrics.lines(t); len(m) != 1 || m[0][MetricTasksFailed] != 3.0 {
		t.Errorf("metrics = %v, want 3 failed", m)
	}
}

// TestThrottledRunTaskCutAtTheBudget: throttling for good with the
// configured retryer and a Lambda deadline 3.5 s away: the SDK's retries end
// at the handler's budget (2 s before the deadline, so 1.5 s), with fewer
// requests than the attempts allow, and the error comes back in time. The
// server asks for a pause of 1 s (x-amz-retry-after, which the SDK honours
// as a lower bound), so the count is fixed: a request at 0 s, one at 1 s,
// and the next pause (1 to 2 s) outlasts the budget.
func TestThrottledRunTaskCutAtTheBudget(t *testing.T) {
	t.Parallel()
	slow := throttle
	slow.header = http.Header{"X-Amz-Retry-After": {"1000"}}
	replies := make([]captureReply, 50)
	for i := range replies {
		replies[i] = slow
	}
	capture := newCaptureServer(t, replies)
	h, metrics := sdkRig(t, ecsAt(capture.URL))
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(3500*time.Millisecond))
	defer cancel()
	err := h.Handle(ctx, loadEvent(t, "alarm-single-metric.json"))
	took := time.Since(start)
	if !errors.Is(err, ErrTasksNotStarted) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Handle = %v, want ErrTasksNotStarted cut by the deadline", err)
	}
	if ctx.Err() != nil || took < 1500*time.Millisecond {
		t.Errorf("Handle returned after %v, want at the budget's end (1.5 s), before the deadline (3.5 s)", took)
	}
	if n := len(capture.bodies()); n != 2 {
		t.Errorf("RunTask requests = %d, want 2 (of the %d attempts allowed)", n, sdkMaxAttempts)
	}
	if m := metrics.lines(t); len(m) != 1 || m[0][MetricTasksFailed] != 3.0 {
		t.Errorf("metrics = %v, want 3 failed", m)
	}
}

// TestColdStartConfiguresRetryer: the clients main builds carry the retryer
// the tests above count (not the SDK's default of 3 attempts).
func TestColdStartConfiguresRetryer(t *testing.T) {
	// Hermetic SDK configuration: no shared files, static credentials.
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_MAX_ATTEMPTS", "")
	t.Setenv("AWS_RETRY_MODE", "")
	h, err := coldStart(context.Background(), envOf(minimalEnv()), slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	runner, ok := h.runner.(*ecs.Client)
	if !ok {
		t.Fatalf("runner is a %T, want *ecs.Client", h.runner)
	}
	queue, ok := h.queue.(*sqs.Client)
	if !ok {
		t.Fatalf("queue is a %T, want *sqs.Client", h.queue)
	}
	for name, r := range map[string]aws.Retryer{"ecs": runner.Options().Retryer, "sqs": queue.Options().Retryer} {
		if got := r.MaxAttempts(); got != sdkMaxAttempts {
			t.Errorf("%s client: max attempts %d, want %d", name, got, sdkMaxAttempts)
		}
		if d, _ := r.RetryDelay(10, errors.New("x")); d > sdkMaxBackoff {
			t.Errorf("%s client: a retry pause of %v, want at most %v", name, d, sdkMaxBackoff)
		}
	}
}
