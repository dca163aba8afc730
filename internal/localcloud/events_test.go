package localcloud

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
)

// runnerFunc fakes the local ECS.
type runnerFunc func(TaskRequest) error

func (f runnerFunc) RunTask(_ context.Context, r TaskRequest) ([]string, error) {
	if err := f(r); err != nil {
		return nil, err
	}
	return []string{"arn:aws:ecs:task/1"}, nil
}

// dlqRecorder fakes the dead-letter queue.
type dlqRecorder struct {
	mu   sync.Mutex
	sent []*sqs.SendMessageInput
}

func (d *dlqRecorder) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = append(d.sent, in)
	return &sqs.SendMessageOutput{}, nil
}

// s3Event is an upload event as moto delivers it to a shadow queue.
const s3Event = `{"version":"0","id":"e-1","detail-type":"Object Created","source":"aws.s3","account":"123456789012",
"time":"2026-12-07T01:52:29Z","region":"us-east-1","resources":["arn:aws:s3:::bkt"],
"detail":{"bucket":{"name":"bkt"},"object":{"key":"configs/sub dir/a \"b\".yaml"}}}`

// uploadTarget is shaped like EdpOneOff's upload rule's ECS target.
func uploadTarget(retries, maxAgeSeconds int32, template string) *ruleTarget {
	return &ruleTarget{
		rule: "upload", ruleArn: "arn:aws:events:us-east-1:123456789012:rule/upload", dlqURL: "http://moto/123456789012/dlq",
		target: ebtypes.Target{
			Id: aws.String("Target1"), Arn: aws.String("arn:aws:ecs:us-east-1:123456789012:cluster/c"),
			EcsParameters: &ebtypes.EcsParameters{TaskDefinitionArn: aws.String("arn:td"), TaskCount: aws.Int32(1)},
			InputTransformer: &ebtypes.InputTransformer{
				InputPathsMap: map[string]string{"detail-bucket-name": "$.detail.bucket.name", "detail-object-key": "$.detail.object.key"},
				InputTemplate: aws.String(template),
			},
			RetryPolicy: &ebtypes.RetryPolicy{MaximumRetryAttempts: aws.Int32(retries), MaximumEventAgeInSeconds: aws.Int32(maxAgeSeconds)},
		},
	}
}

const overridesTemplate = `{"containerOverrides":[{"name":"consumer","environment":[{"name":"EDP_TRIGGER_BUCKET","value":<detail-bucket-name>},{"name":"EDP_TRIGGER_KEY","value":<detail-object-key>}]}]}`

// TestDeliverRetriesThenDeadLetters: a RunTask that finds no capacity is
// retried with backoff as the target's RetryPolicy says, then the event
// goes to the target's DLQ with the attributes EventBridge adds.
func TestDeliverRetriesThenDeadLetters(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name            string
		retries, maxAge int32
		speedup         float64
		failures        int // RunTask calls that fail (then it succeeds)
		wantCalls       int
		wantAttrs       map[string]string // nil: not dead-lettered
		maxElapsed      time.Duration
	}{
		{
			name: "retries spent", retries: 10, maxAge: 7200, speedup: 30, failures: 1 << 30, wantCalls: 11,
			wantAttrs: map[string]string{"RETRY_ATTEMPTS": "10", "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts"},
			// Full jitter: each wait is below min(15 min, 2^n s), sped up 30 times.
			maxElapsed: 1023 * time.Second / 30,
		},
		{
			name: "event too old", retries: 185, maxAge: 60, speedup: 1, failures: 1 << 30,
			wantAttrs:  map[string]string{"EXHAUSTED_RETRY_CONDITION": "MaximumEventAgeInSeconds"},
			maxElapsed: 60 * time.Second,
		},
		{
			// Past 2^34 s the doubling would overflow: the cap holds.
			name: "retries past the cap", retries: 40, maxAge: 86400, speedup: 1, failures: 1 << 30, wantCalls: 41,
			wantAttrs:  map[string]string{"RETRY_ATTEMPTS": "40", "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts"},
			maxElapsed: 40 * backoffCap,
		},
		{name: "succeeds on the third try", retries: 10, maxAge: 7200, speedup: 30, failures: 2, wantCalls: 3, maxElapsed: 3 * time.Second / 30},
		{name: "no retries", retries: 0, maxAge: 7200, speedup: 30, failures: 1, wantCalls: 1,
			wantAttrs: map[string]string{"RETRY_ATTEMPTS": "0", "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var calls []TaskRequest
				run := runnerFunc(func(r TaskRequest) error {
					calls = append(calls, r)
					if len(calls) <= tc.failures {
						return ecsemu.ErrNoCapacity
					}
					return nil
				})
				dlq := &dlqRecorder{}
				d := &deliverer{run: run, dlq: dlq, speedup: tc.speedup, log: slog.New(slog.DiscardHandler)}
				start := time.Now()
				if err := d.deliver(t.Context(), uploadTarget(tc.retries, tc.maxAge, overridesTemplate), s3Event); err != nil {
					t.Fatal(err)
				}
				if elapsed := time.Since(start); elapsed > tc.maxElapsed {
					t.Errorf("delivery took %s, want at most %s", elapsed, tc.maxElapsed)
				}
				if tc.wantCalls > 0 && len(calls) != tc.wantCalls {
					t.Errorf("RunTask called %d times, want %d", len(calls), tc.wantCalls)
				}
				want := map[string]string{"EDP_TRIGGER_BUCKET": "bkt", "EDP_TRIGGER_KEY": `configs/sub dir/a "b".yaml`}
				if diff := cmp.Diff(want, calls[0].Env); diff != "" {
					t.Errorf("container overrides (-want +got):\n%s", diff)
				}
				if tc.wantAttrs == nil {
					if len(dlq.sent) > 0 {
						t.Errorf("dead-lettered %d events, want none", len(dlq.sent))
					}
					return
				}
				if len(dlq.sent) != 1 {
					t.Fatalf("dead-lettered %d events, want 1", len(dlq.sent))
				}
				m := dlq.sent[0]
				if aws.ToString(m.QueueUrl) != "http://moto/123456789012/dlq" || aws.ToString(m.MessageBody) != s3Event {
					t.Errorf("dead letter to %s with body %s, want the event in the target's DLQ", aws.ToString(m.QueueUrl), aws.ToString(m.MessageBody))
				}
				got := map[string]string{}
				for k, v := range m.MessageAttributes {
					got[k] = aws.ToString(v.StringValue)
				}
				if !strings.Contains(got["ERROR_MESSAGE"], ecsemu.ErrNoCapacity.Error()) {
					t.Errorf("ERROR_MESSAGE %q, want the RunTask failure", got["ERROR_MESSAGE"])
				}
				wantAttrs := map[string]string{
					"RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/upload", "TARGET_ARN": "arn:aws:ecs:us-east-1:123456789012:cluster/c",
					"ERROR_CODE": "ERROR_FROM_TARGET", "ERROR_MESSAGE": got["ERROR_MESSAGE"], "RETRY_ATTEMPTS": got["RETRY_ATTEMPTS"],
				}
				for k, v := range tc.wantAttrs {
					wantAttrs[k] = v
				}
				if diff := cmp.Diff(wantAttrs, got); diff != "" {
					t.Errorf("dead-letter attributes (-want +got):\n%s", diff)
				}
				if n := len(calls) - 1; got["RETRY_ATTEMPTS"] != strconv.Itoa(n) {
					t.Errorf("RETRY_ATTEMPTS %s after %d RunTask calls", got["RETRY_ATTEMPTS"], len(calls))
				}
			})
		})
	}
}

// TestDeliverDeadLettersInputThatDoesNotRender: a retry cannot fix input
// that is not ECS overrides, so the event is dead-lettered without a try.
func TestDeliverDeadLettersInputThatDoesNotRender(t *testing.T) {
	t.Parallel()
	dlq := &dlqRecorder{}
	run := runnerFunc(func(TaskRequest) error { t.Error("RunTask called"); return nil })
	d := &deliverer{run: run, dlq: dlq, speedup: 30, log: slog.New(slog.DiscardHandler)}
	if err := d.deliver(t.Context(), uploadTarget(10, 7200, `{"containerOverrides":<detail-bucket-name>}`), s3Event); err != nil {
		t.Fatal(err)
	}
	if len(dlq.sent) != 1 {
		t.Fatalf("dead-lettered %d events, want 1", len(dlq.sent))
	}
	a := dlq.sent[0].MessageAttributes
	if aws.ToString(a["ERROR_CODE"].StringValue) != "INVALID_JSON" || aws.ToString(a["RETRY_ATTEMPTS"].StringValue) != "0" {
		t.Errorf("attributes %v, want INVALID_JSON after 0 retries", a)
	}
	if _, ok := a["EXHAUSTED_RETRY_CONDITION"]; ok {
		t.Error("EXHAUSTED_RETRY_CONDITION set, though no retry condition ended the delivery")
	}
}
