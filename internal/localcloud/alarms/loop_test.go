package alarms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// SQS metric names of the queue alarms.
const (
	visible  = "ApproximateNumberOfMessagesVisible"
	inflight = "ApproximateNumberOfMessagesNotVisible"
	// invocations is the dispatch function's AWS/Lambda metric.
	invocations = "Invocations"
	age         = "ApproximateAgeOfOldestMessage"
)

type harness struct {
	loop     *Loop
	src      *fakeSource
	scaler   *fakeScaler
	notifier *fakeNotifier
}

// newHarness runs a Loop over a testdata template with fakes; the service
// starts at desired tasks.
func newHarness(t *testing.T, template string, desired int) *harness {
	t.Helper()
	h := &harness{scaler: &fakeScaler{desired: desired}, notifier: &fakeNotifier{}}
	h.src = &fakeSource{queue: map[string]float64{}, scaler: h.scaler}
	loop, err := NewLoop(Config{
		Template: loadTemplate(t, template),
		Resolve:  fakeResolve,
		Source:   h.src,
		Scaler:   h.scaler,
		Notifier: h.notifier,
	})
	if err != nil {
		t.Fatal(err)
	}
	h.loop = loop
	return h
}

// steps runs n minutes and fails the test on an error.
func (h *harness) steps(t *testing.T, n int) {
	t.Helper()
	for range n {
		if err := h.loop.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func (h *harness) state(t *testing.T, logicalID string) State {
	t.Helper()
	for _, s := range h.loop.Status() {
		if s.LogicalID == logicalID {
			return s.State
		}
	}
	t.Fatalf("no alarm %s", logicalID)
	return ""
}

func wantSets(t *testing.T, s *fakeScaler, want ...int) {
	t.Helper()
	if got := s.history(); !slices.Equal(got, want) {
		t.Errorf("desired counts set %v, want %v", got, want)
	}
}

// A backlog of N or more visible messages puts the backlog alarm in ALARM
// and the step policy adds tasks every minute while it stays there, by the
// tier of the backlog, up to MaxCapacity.
func TestLoopBacklogScalesOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 0)
	h.src.set(visible, 25) // < 5N: +2
	h.src.set(inflight, 0)
	h.src.set(age, 30)
	if !h.loop.LastStep().IsZero() {
		t.Errorf("LastStep before the first step: %v, want zero", h.loop.LastStep())
	}
	before := time.Now()
	h.steps(t, 1)
	// A step's end comes after every read of its period's metrics: what
	// happens after LastStep counts toward the next period.
	h.src.mu.Lock()
	read := h.src.lastRead
	h.src.mu.Unlock()
	if got := h.loop.LastStep(); got.Before(before) || read.IsZero() || got.Before(read) {
		t.Errorf("LastStep %v: want after the step began (%v) and after its last metric read (%v)", got, before, read)
	}
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateAlarm {
		t.Fatalf("backlog alarm %s, want ALARM", got)
	}
	wantSets(t, h.scaler, 2)
	h.steps(t, 1) // still in ALARM: invoked again after the 60 s cooldown
	wantSets(t, h.scaler, 2, 4)
	h.src.set(visible, 60) // >= 5N: +4
	h.steps(t, 2)
	wantSets(t, h.scaler, 2, 4, 8, 10) // 12 clamped to MaxCapacity 10
	h.steps(t, 1)
	wantSets(t, h.scaler, 2, 4, 8, 10) // at the max: nothing to set
	h.src.set(visible, 9)
	h.steps(t, 1)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateOK {
		t.Errorf("backlog alarm %s after the backlog fell below N, want OK", got)
	}
	if got := h.state(t, "IdleAlarmBFA7B139"); got != StateOK {
		t.Errorf("idle alarm %s with messages visible, want OK", got)
	}
}

// Five minutes with nothing visible or in flight set the service to
// exactly 0 tasks; a message in flight restarts the count.
func TestLoopIdleScalesToZero(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 3)
	h.src.set(visible, 0)
	h.src.set(inflight, 1) // a task is busy
	h.steps(t, 3)
	h.src.set(inflight, 0)
	h.steps(t, 4)
	wantSets(t, h.scaler) // 4 idle minutes are not enough
	h.steps(t, 1)
	if got := h.state(t, "IdleAlarmBFA7B139"); got != StateAlarm {
		t.Fatalf("idle alarm %s, want ALARM", got)
	}
	wantSets(t, h.scaler, 0)
	h.steps(t, 3) // invoked every minute, but already at 0
	wantSets(t, h.scaler, 0)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateOK {
		t.Errorf("backlog alarm %s, want OK", got)
	}
}

// SQS stops publishing metrics for an inactive queue: missing data counts
// as idle (breaching) for the idle alarm and as no backlog (not breaching)
// for the backlog alarm.
func TestLoopIdleWithoutMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 1)
	h.steps(t, 4)
	wantSets(t, h.scaler)
	h.steps(t, 1)
	wantSets(t, h.scaler, 0)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateOK {
		t.Errorf("backlog alarm %s, want OK", got)
	}
}

// A backlog below N still starts a task once the oldest message has waited
// the max wait (15 minutes).
func TestLoopMaxWaitScalesOutSmallBacklog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 0)
	h.src.set(visible, 3)
	h.src.set(inflight, 0)
	h.src.set(age, 899)
	h.steps(t, 2)
	wantSets(t, h.scaler)
	h.src.set(age, 900)
	h.steps(t, 1)
	wantSets(t, h.scaler, 1) // effective backlog N: breach delta 0, +1
}

// The dispatch alarm notifies its topic once per transition to ALARM (it
// has no OK actions), with the message the alarm-dispatch Lambda reads.
func TestLoopDispatchNotifiesOncePerTransition(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmDispatch", 0)
	h.src.set(visible, 25)
	h.src.set(age, 60)
	h.steps(t, 3)
	h.src.set(visible, 0)
	h.steps(t, 2)
	h.src.set(visible, 3)
	h.src.set(age, 1000)
	h.steps(t, 2)
	sent := h.notifier.all()
	if len(sent) != 2 {
		t.Fatalf("%d notifications, want 2: %+v", len(sent), sent)
	}
	for i, n := range sent {
		c := n.change
		if n.topic != "arn:aws:sns:us-east-1:123456789012:EdpTest-AlarmTopic" {
			t.Errorf("notification %d to %q", i, n.topic)
		}
		if c.AlarmName != "EdpAlarmDispatch-backlog" || c.NewStateValue != StateAlarm ||
			c.AlarmARN != "arn:aws:cloudwatch:us-east-1:123456789012:alarm:EdpAlarmDispatch-backlog" ||
			c.Region != "US East (N. Virginia)" || c.AWSAccountID != "123456789012" {
			t.Errorf("notification %d: %+v", i, c)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000-0700", c.StateChangeTime); err != nil {
			t.Errorf("StateChangeTime %q: %v", c.StateChangeTime, err)
		}
		if !slices.Equal(c.AlarmActions, []string{n.topic}) || c.OKActions == nil || len(c.OKActions) != 0 {
			t.Errorf("actions %v / %v", c.AlarmActions, c.OKActions)
		}
		if c.Trigger.Metrics[0].Expression != dispatchExpr || c.Trigger.Threshold != 10 || c.Trigger.Period != 60 {
			t.Errorf("trigger %+v", c.Trigger)
		}
	}
	if sent[0].change.OldStateValue != StateInsufficientData || sent[1].change.OldStateValue != StateOK {
		t.Errorf("old states %s, %s; want INSUFFICIENT_DATA, OK", sent[0].change.OldStateValue, sent[1].change.OldStateValue)
	}
	if !strings.Contains(sent[1].change.NewStateReason, "[10.0 (") {
		t.Errorf("second reason %q: the max wait raises the backlog to N", sent[1].change.NewStateReason)
	}
}

// In backlog mode the wake alarm starts tasks only while the service wants
// none; target tracking sizes it after 3 minutes above the target and never
// scales in; the idle alarm takes it to zero.
func TestLoopBacklogModeWakesThenTracks(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService-backlog", 0)
	h.src.set(visible, 100)
	h.src.set(inflight, 0)
	h.src.set(age, 30)
	h.steps(t, 1)
	wantSets(t, h.scaler, 4) // wake: backlog 100 >= 5N, +4
	h.steps(t, 1)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateOK {
		t.Errorf("wake alarm %s with 4 tasks wanted, want OK", got)
	}
	wantSets(t, h.scaler, 4) // 25 per task for 2 minutes: not yet
	h.steps(t, 1)
	wantSets(t, h.scaler, 4, 10) // ceil(4 × 25 / 10)
	h.src.set(visible, 1)
	h.steps(t, 20)
	wantSets(t, h.scaler, 4, 10) // 0.1 per task, but scale-in is disabled
	h.src.set(visible, 0)
	h.steps(t, 5)
	wantSets(t, h.scaler, 4, 10, 0) // idle for 5 minutes
}

// A step policy's cooldown: the scale-out it started counts toward the
// next one while it lasts, so the policy invoked every minute adds again
// only after the cooldown, or at once for a larger step.
func TestLoopStepCooldown(t *testing.T) {
	t.Parallel()
	tpl := loadTemplate(t, "EdpAlarmService")
	res := tpl["Resources"].(map[string]any)
	policy := res["ScaleOutOnBacklog979AB82A"].(map[string]any)["Properties"].(map[string]any)
	policy["StepScalingPolicyConfiguration"].(map[string]any)["Cooldown"] = 180
	scaler := &fakeScaler{}
	src := &fakeSource{queue: map[string]float64{visible: 10, inflight: 0, age: 0}, scaler: scaler}
	loop, err := NewLoop(Config{Template: tpl, Resolve: fakeResolve, Source: src, Scaler: scaler, Notifier: &fakeNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	step := func(n int) {
		for range n {
			if err := loop.Step(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(1)
	wantSets(t, scaler, 1)
	step(2) // in cooldown: +1 from the capacity before the scale-out is no more
	wantSets(t, scaler, 1)
	step(1) // cooldown over
	wantSets(t, scaler, 1, 2)
	src.set(visible, 20) // +2 during the new cooldown: 1 + 2 = 3, one more task
	step(1)
	wantSets(t, scaler, 1, 2, 3)
	scaler.mu.Lock()
	scaler.desired = 8 // another policy scaled out meanwhile
	scaler.mu.Unlock()
	step(1) // 1 + 2 is below 8: a policy in scale-out cooldown never scales in
	wantSets(t, scaler, 1, 2, 3)
}

// A scale-in policy is blocked during its cooldown.
func TestLoopScaleInCooldown(t *testing.T) {
	t.Parallel()
	tpl := map[string]any{"Resources": map[string]any{
		"Target": map[string]any{"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": map[string]any{
			"MinCapacity": 1, "MaxCapacity": 10,
		}},
		"In": map[string]any{"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": map[string]any{
			"PolicyName": "in", "PolicyType": "StepScaling", "ScalingTargetId": map[string]any{"Ref": "Target"},
			"StepScalingPolicyConfiguration": map[string]any{
				"AdjustmentType": "ChangeInCapacity", "Cooldown": 180,
				"StepAdjustments": []any{map[string]any{"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1}},
			},
		}},
		"Low": map[string]any{"Type": "AWS::CloudWatch::Alarm", "Properties": map[string]any{
			"AlarmName": "low", "ComparisonOperator": "LessThanThreshold", "Threshold": 5, "EvaluationPeriods": 1,
			"Namespace": "AWS/SQS", "MetricName": visible, "Statistic": "Maximum", "Period": 60,
			"Dimensions":   []any{map[string]any{"Name": "QueueName", "Value": testQueueName}},
			"AlarmActions": []any{map[string]any{"Ref": "In"}},
		}},
	}}
	scaler := &fakeScaler{desired: 5}
	src := &fakeSource{queue: map[string]float64{visible: 0}, scaler: scaler}
	loop, err := NewLoop(Config{Template: tpl, Resolve: fakeResolve, Source: src, Scaler: scaler, Notifier: &fakeNotifier{}})
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		if err := loop.Step(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	wantSets(t, scaler, 4, 3, 2) // minutes 1, 4, 7
}

// A Source error skips the alarm for that minute (no data point, no
// action) and is returned; the next minute evaluates as usual.
func TestLoopSourceError(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 0)
	h.src.set(visible, 25)
	h.src.set(inflight, 0)
	h.src.set(age, 0)
	h.src.fail = errors.New("connection refused")
	err := h.loop.Step(t.Context())
	if err == nil || !strings.Contains(err.Error(), "alarm EdpAlarmService-backlog: read AWS/SQS") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Step error = %v", err)
	}
	wantSets(t, h.scaler)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateInsufficientData {
		t.Errorf("backlog alarm %s, want unchanged INSUFFICIENT_DATA", got)
	}
	h.src.fail = nil
	h.steps(t, 1)
	wantSets(t, h.scaler, 2)
}

// Each metric is read once per minute, however many alarms use it.
func TestLoopReadsEachMetricOncePerMinute(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 0)
	h.steps(t, 1)
	// The work queue's visible (2 alarms), age (2 alarms: backlog and near
	// retention) and in flight; each DLQ's visible (one alert alarm each).
	if h.src.reads != 5 {
		t.Errorf("%d reads, want 5", h.src.reads)
	}
}

// Run steps once per Tick: with a 2 s tick, 5 s of (fake) time is two
// CloudWatch minutes.
func TestLoopRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		scaler := &fakeScaler{}
		src := &fakeSource{queue: map[string]float64{visible: 25, inflight: 0, age: 0}, scaler: scaler}
		loop, err := NewLoop(Config{
			Template: loadTemplate(t, "EdpAlarmService"), Resolve: fakeResolve,
			Source: src, Scaler: scaler, Notifier: &fakeNotifier{}, Tick: 2 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- loop.Run(ctx) }()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		wantSets(t, scaler, 2, 4)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestNewLoopErrors(t *testing.T) {
	t.Parallel()
	withExpr := func(expr string) map[string]any {
		tpl := loadTemplate(t, "EdpAlarmDispatch")
		alarm := tpl["Resources"].(map[string]any)["BacklogAlarm1E83516A"].(map[string]any)["Properties"].(map[string]any)
		alarm["Metrics"].([]any)[0].(map[string]any)["Expression"] = expr
		return tpl
	}
	src := &fakeSource{}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unsupported math", Config{Template: withExpr("RATE(visible)"), Resolve: fakeResolve, Source: src, Notifier: &fakeNotifier{}},
			`alarms: alarm BacklogAlarm1E83516A: metrics[0] "expr_1": metric math "RATE(visible)": unsupported function or keyword RATE at position 1`},
		{"no notifier", Config{Template: loadTemplate(t, "EdpAlarmDispatch"), Resolve: fakeResolve, Source: src},
			"Config.Notifier is required"},
		{"no scaler", Config{Template: loadTemplate(t, "EdpAlarmService"), Resolve: fakeResolve, Source: src},
			"Config.Scaler is required"},
		{"no source", Config{Template: loadTemplate(t, "EdpAlarmService"), Resolve: fakeResolve, Scaler: &fakeScaler{}},
			"Config.Source is required"},
		{"no resolver", Config{Template: loadTemplate(t, "EdpAlarmService"), Source: src, Scaler: &fakeScaler{}},
			"no resolver"},
		{"resolver fails", Config{Template: loadTemplate(t, "EdpAlarmService"), Source: src, Scaler: &fakeScaler{},
			Resolve: func(v any) (string, error) { return "", fmt.Errorf("unknown %v", v) }}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewLoop(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewLoop error = %v, want %q", err, tt.want)
			}
		})
	}
}

// A template without alarms or policies (EdpOneOff, EdpCron) needs nothing.
func TestNewLoopNothingToRun(t *testing.T) {
	t.Parallel()
	loop, err := NewLoop(Config{Template: map[string]any{"Resources": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := loop.Step(t.Context()); err != nil || len(loop.Status()) != 0 {
		t.Errorf("Step = %v, status %v", err, loop.Status())
	}
}

// The notification has every field, in every nesting, that CloudWatch's
// real notifications have (the alarm-dispatch Lambda's fixtures), with the
// same JSON types: for a metric-math alarm and for a single-metric alarm.
func TestNotificationShapeMatchesCloudWatch(t *testing.T) {
	t.Parallel()
	singleMetric := map[string]any{"Resources": map[string]any{
		"Backlog": map[string]any{"Type": "AWS::CloudWatch::Alarm", "Properties": map[string]any{
			"AlarmDescription": "edp work queue has a backlog", "ComparisonOperator": "GreaterThanOrEqualToThreshold",
			"Threshold": 1, "EvaluationPeriods": 1, "TreatMissingData": "notBreaching",
			"Namespace": "AWS/SQS", "MetricName": visible, "Statistic": "Maximum", "Period": 60,
			"Dimensions":   []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Fn::GetAtt": []any{"PipelineQueueC13966F5", "QueueName"}}}},
			"AlarmActions": []any{"arn:aws:sns:us-east-1:123456789012:EdpTest-AlarmTopic"},
		}},
	}}
	tests := []struct {
		fixture  string
		template map[string]any
	}{
		{"alarm-metric-math.json", loadTemplate(t, "EdpAlarmDispatch")},
		{"alarm-single-metric.json", singleMetric},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			real := realMessage(t, tt.fixture)
			notifier := &fakeNotifier{}
			loop, err := NewLoop(Config{
				Template: tt.template, Resolve: fakeResolve, Notifier: notifier,
				Source: &fakeSource{queue: map[string]float64{visible: 25}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := loop.Step(t.Context()); err != nil {
				t.Fatal(err)
			}
			sent := notifier.all()
			if len(sent) != 1 {
				t.Fatalf("%d notifications", len(sent))
			}
			msg, err := sent[0].change.Message()
			if err != nil {
				t.Fatal(err)
			}
			var ours map[string]any
			if err := json.Unmarshal(msg, &ours); err != nil {
				t.Fatal(err)
			}
			if got, want := shape(ours), shape(real); !reflect.DeepEqual(got, want) {
				t.Errorf("shape differs\n ours: %v\nreal: %v", got, want)
			}
			// What the Lambda reads (lambdas/alarm-dispatch/event.go).
			if ours["AlarmName"] == "" || ours["NewStateValue"] != "ALARM" || ours["AlarmArn"] == "" || ours["StateChangeTime"] == "" {
				t.Errorf("message %s", msg)
			}
		})
	}
}

// realMessage is the CloudWatch message of an alarm-dispatch fixture.
func realMessage(t *testing.T, fixture string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("../../../lambdas/alarm-dispatch/testdata/" + fixture)
	if err != nil {
		t.Fatal(err)
	}
	var event struct {
		Records []struct {
			Sns struct{ Message string }
		}
	}
	if err := json.Unmarshal(raw, &event); err != nil {
		t.Fatal(err)
	}
	var msg map[string]any
	if err := json.Unmarshal([]byte(event.Records[0].Sns.Message), &msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// shape lists "path: JSON type" of every field; arrays by their elements.
func shape(v any) []string {
	var out []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(path+"."+k, x)
			}
		case []any:
			for _, x := range v {
				walk(path+"[]", x)
			}
			if len(v) == 0 {
				out = append(out, path+": []")
			}
		default:
			out = append(out, fmt.Sprintf("%s: %T", path, v))
		}
	}
	walk("", v)
	sort.Strings(out)
	return slices.Compact(out)
}

// After every invocation of the dispatch function the alarm is OK for a
// period and then, with work still waiting, back in ALARM: it notifies
// again, so a dispatch that started nothing (RunTask failures, a task that
// died before it received) is retried without a new upload. Gated on
// nothing in flight, it stayed in ALARM after such a dispatch and never
// notified twice.
func TestLoopDispatchRearmsAfterEachInvocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmDispatch", 0)
	h.src.set(visible, 25)
	h.src.set(inflight, 0)
	h.src.set(age, 60)
	h.steps(t, 1)             // ALARM: first dispatch, which starts nothing
	h.src.set(invocations, 3) // the invocation and Lambda's two retries
	h.steps(t, 1)
	if got := h.state(t, "BacklogAlarm1E83516A"); got != StateOK {
		t.Fatalf("dispatch alarm %s in the period after an invocation, want OK", got)
	}
	h.src.unset(invocations)
	h.steps(t, 1) // nothing started: the backlog is still there
	if n := len(h.notifier.all()); n != 2 {
		t.Fatalf("%d notifications, want 2 (the dispatch is retried)", n)
	}
	h.src.set(invocations, 1)
	h.src.set(visible, 0)
	h.steps(t, 3) // drained: no further notification
	if n := len(h.notifier.all()); n != 2 {
		t.Errorf("%d notifications after the queue drained, want 2", n)
	}
}

// A burst that arrives while a dispatched task works (messages in flight)
// still takes the alarm to ALARM, so the function can top the tasks up to
// the cap. Gated on nothing in flight, one busy task held the alarm at OK
// and drained the burst alone.
func TestLoopDispatchScalesOutDuringBurst(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmDispatch", 0)
	h.src.set(visible, 3)
	h.src.set(inflight, 0)
	h.src.set(age, 1000) // a trickle below N, waiting past the max wait
	h.steps(t, 1)        // ALARM: one task dispatched
	h.src.set(invocations, 1)
	h.src.set(visible, 0)
	h.src.set(inflight, 3) // the task works
	h.src.set(age, 0)
	h.steps(t, 1)
	h.src.unset(invocations)
	h.src.set(visible, 2000) // the burst
	h.src.set(age, 5)
	h.steps(t, 1)
	if n := len(h.notifier.all()); n != 2 {
		t.Fatalf("%d notifications with a burst of 2000 behind one busy task, want 2", n)
	}
}

// SQS publishes no in-flight data point while nothing is in flight: with
// messages waiting, the idle alarm must not read that as idle (a missing
// operand made the sum missing, treated as breaching, and the service was
// scaled in to 0 while messages waited).
func TestLoopIdleNotFooledByMissingInFlight(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "EdpAlarmService", 2)
	h.src.set(visible, 5) // below N, young: no scale-out either
	h.src.set(age, 30)
	h.steps(t, 8)
	if got := h.state(t, "IdleAlarmBFA7B139"); got != StateOK {
		t.Errorf("idle alarm %s with 5 messages visible and no in-flight data point, want OK", got)
	}
	wantSets(t, h.scaler)
}
