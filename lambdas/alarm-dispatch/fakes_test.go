package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// capacityReason is the failure reason Fargate gives when it has no room.
const capacityReason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"

// fakeQueue answers GetQueueAttributes with fixed counts.
type fakeQueue struct {
	visible, inFlight int64
	err               error
	mu                sync.Mutex
	calls             int
}

func (q *fakeQueue) GetQueueAttributes(_ context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls++
	if q.err != nil {
		return nil, q.err
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"ApproximateNumberOfMessages":           strconv.FormatInt(q.visible, 10),
		"ApproximateNumberOfMessagesNotVisible": strconv.FormatInt(q.inFlight, 10),
	}}, nil
}

// runStep scripts one RunTask answer: an error (nothing happens), or
// success with fail of the requested tasks reported in failures[].
type runStep struct {
	err  error
	fail int
}

type tokenMemo struct {
	params string
	out    *ecs.RunTaskOutput
}

// fakeECS is a small ECS: it keeps the number of RUNNING tasks of the
// family, pages ListTasks, and honours RunTask client tokens the way ECS
// documents (same token and parameters: original answer; other parameters:
// ConflictException). The tasks RunTask starts are listed by ListTasks
// under the ARNs RunTask returned, as ECS does.
type fakeECS struct {
	mu       sync.Mutex
	running  int      // tasks with desired status RUNNING: seeded ones, then started ones
	started  []string // ARNs of the tasks RunTask started, in order
	page     int      // ListTasks page size; 0 means MaxResults
	unlisted bool     // ListTasks does not show started tasks yet (eventual consistency)
	listErr  error
	script   []runStep // consumed one per RunTask call; then plain success
	requests []*ecs.RunTaskInput
	lists    []*ecs.ListTasksInput
	tokens   map[string]tokenMemo
	created  int
}

func (f *fakeECS) ListTasks(_ context.Context, in *ecs.ListTasksInput, _ ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, in)
	if f.listErr != nil {
		return nil, f.listErr
	}
	page := f.page
	if page == 0 {
		page = int(aws.ToInt32(in.MaxResults))
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	seeded := f.running - len(f.started)
	listed := f.running
	if f.unlisted {
		listed = seeded
	}
	end := min(start+page, listed)
	out := &ecs.ListTasksOutput{}
	for i := start; i < end; i++ {
		if i < seeded {
			out.TaskArns = append(out.TaskArns, fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp/%032d", i))
		} else {
			out.TaskArns = append(out.TaskArns, f.started[i-seeded])
		}
	}
	if end < listed {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func (f *fakeECS) RunTask(_ context.Context, in *ecs.RunTaskInput, _ ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, in)
	var step runStep
	if len(f.script) > 0 {
		step, f.script = f.script[0], f.script[1:]
	}
	if step.err != nil {
		return nil, step.err
	}
	params, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	token := aws.ToString(in.ClientToken)
	if memo, ok := f.tokens[token]; ok {
		if memo.params != string(params) {
			return nil, &smithy.GenericAPIError{Code: "ConflictException", Message: "client token already used with other parameters", Fault: smithy.FaultClient}
		}
		return memo.out, nil
	}
	count := int(aws.ToInt32(in.Count))
	fail := min(step.fail, count)
	out := &ecs.RunTaskOutput{}
	for i := 0; i < count-fail; i++ {
		f.created++
		arn := fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp/new%028d", f.created)
		f.started = append(f.started, arn)
		out.Tasks = append(out.Tasks, ecstypes.Task{
			TaskArn:       aws.String(arn),
			LastStatus:    aws.String("PROVISIONING"),
			DesiredStatus: aws.String("RUNNING"),
			StartedBy:     in.StartedBy,
		})
	}
	for i := 0; i < fail; i++ {
		out.Failures = append(out.Failures, ecstypes.Failure{Reason: aws.String(capacityReason)})
	}
	f.running += count - fail
	if f.tokens == nil {
		f.tokens = map[string]tokenMemo{}
	}
	f.tokens[token] = tokenMemo{params: string(params), out: out}
	return out, nil
}

// sent returns the count and client token of every RunTask request.
func (f *fakeECS) sent() []batchSent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []batchSent
	for _, r := range f.requests {
		out = append(out, batchSent{Count: int(aws.ToInt32(r.Count)), Token: aws.ToString(r.ClientToken)})
	}
	return out
}

type batchSent struct {
	Count int
	Token string
}

// syncBuffer is shared by the logger and the test.
type syncBuffer struct{ syncbuf.Buffer }

// lines decodes every JSON line written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range bytes.Split([]byte(s.String()), []byte("\n")) {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// testConfig is a configuration with its defaults set and small numbers
// that make the formula easy to follow: ten messages per task, at most ten
// tasks.
func testConfig() Config {
	c := Config{
		QueueURL:        "https://sqs.us-east-1.amazonaws.com/123456789012/edp-queue",
		Cluster:         "edp-cluster",
		TaskDefinition:  "arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:7",
		Subnets:         []string{"subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"},
		SecurityGroups:  []string{"sg-0123456789abcdef0"},
		MaxTasks:        10,
		MessagesPerTask: 10,
	}
	c.SetDefaults()
	return c
}

// rig is a handler wired to fakes, with its logs and metrics.
type rig struct {
	h       *Handler
	queue   *fakeQueue
	ecs     *fakeECS
	logs    *syncBuffer
	metrics *syncBuffer
}

// newRig validates cfg, as ConfigFromEnv does for the real function, and
// wires a handler to the fakes.
func newRig(t *testing.T, cfg Config, q *fakeQueue, e *fakeECS) *rig {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	logs, metrics := &syncBuffer{}, &syncBuffer{}
	h, err := NewHandler(cfg, Deps{
		Queue:   q,
		Lister:  e,
		Runner:  e,
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
		Metrics: metrics,
	})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return &rig{h: h, queue: q, ecs: e, logs: logs, metrics: metrics}
}

// loadEvent reads an SNS event fixture from testdata.
func loadEvent(t testing.TB, name string) events.SNSEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	var ev events.SNSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("decode fixture %s: %v", name, err)
	}
	return ev
}

// throttled is the error ECS returns when its API rate is exceeded.
func throttled() error {
	return &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded", Fault: smithy.FaultClient}
}
