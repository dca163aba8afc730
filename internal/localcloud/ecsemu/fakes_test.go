package ecsemu

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/smithy-go"
)

// sigterm is what the emulator sends first.
var sigterm os.Signal = syscall.SIGTERM

// fakeProcess is a task process that exits when told: on SIGTERM unless
// it ignores it, on Kill with 137, or when the test calls exit.
type fakeProcess struct {
	spec ProcessSpec
	done chan struct{}

	mu         sync.Mutex
	ignoreTerm bool
	signals    []os.Signal
	killed     bool
	code       int
	once       sync.Once
}

func (p *fakeProcess) Signal(sig os.Signal) error {
	p.mu.Lock()
	p.signals = append(p.signals, sig)
	ignore := p.ignoreTerm
	p.mu.Unlock()
	if sig == syscall.SIGTERM && !ignore {
		p.exit(0)
	}
	return nil
}

func (p *fakeProcess) Kill() error {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	p.exit(137)
	return nil
}

// exit ends the process with code, once.
func (p *fakeProcess) exit(code int) {
	p.once.Do(func() {
		p.mu.Lock()
		p.code = code
		p.mu.Unlock()
		close(p.done)
	})
}

func (p *fakeProcess) Done() <-chan struct{} { return p.done }

func (p *fakeProcess) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.code
}

// state reports the signals received and whether it was killed.
func (p *fakeProcess) state() (signals []os.Signal, killed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]os.Signal(nil), p.signals...), p.killed
}

func (p *fakeProcess) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// fakeLauncher records every launch and hands out fakeProcesses.
type fakeLauncher struct {
	mu         sync.Mutex
	procs      []*fakeProcess
	ignoreTerm bool  // processes launched from now on ignore SIGTERM
	err        error // launches fail with it
	attempts   int
}

func (l *fakeLauncher) Launch(_ context.Context, spec ProcessSpec) (Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts++
	if l.err != nil {
		return nil, l.err
	}
	p := &fakeProcess{spec: spec, ignoreTerm: l.ignoreTerm, done: make(chan struct{})}
	l.procs = append(l.procs, p)
	return p, nil
}

func (l *fakeLauncher) launched() []*fakeProcess {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*fakeProcess(nil), l.procs...)
}

func (l *fakeLauncher) process(t *testing.T, arn string) *fakeProcess {
	t.Helper()
	for _, p := range l.launched() {
		if p.spec.TaskArn == arn {
			return p
		}
	}
	t.Fatalf("no process launched for %s", arn)
	return nil
}

func (l *fakeLauncher) set(ignoreTerm bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ignoreTerm, l.err = ignoreTerm, err
}

func (l *fakeLauncher) launchAttempts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attempts
}

// The deployed task definitions of the tests, shaped like the stacks'.
var (
	consumerDef = TaskDefinition{
		Arn:       "arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:3",
		Container: "consumer",
		Command:   []string{"serve"},
		Env: map[string]string{
			"EDP_QUEUE_URL": "http://sqs.local/123456789012/edp-queue",
			"EDP_BUCKET":    "edp-bucket-in-template",
		},
		StopTimeout: 120 * time.Second,
	}
	otherDef = TaskDefinition{
		Arn:       "arn:aws:ecs:us-east-1:123456789012:task-definition/other:1",
		Container: "other",
		Command:   []string{"work"},
	}
)

// newEmulator builds an emulator of the cluster "edp" over launcher.
func newEmulator(t *testing.T, l Launcher, mutate func(*Config)) *Emulator {
	t.Helper()
	cfg := Config{
		Cluster:         "edp",
		TaskDefinitions: TaskDefinitionsOf(consumerDef, otherDef),
		Launcher:        l,
		Logger:          slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// serve starts e on a loopback port and returns its endpoint and an SDK
// client pointed at it, as the Lambda would be with AWS_ENDPOINT_URL_ECS.
func serve(t *testing.T, e *Emulator) (string, *ecs.Client) {
	t.Helper()
	endpoint, err := e.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return endpoint, sdkClient(endpoint, nil)
}

// bubbleEndpoint is the endpoint tasks are told about in tests that serve
// the handler without a socket.
const bubbleEndpoint = "http://ecsemu.test"

// serveInMemory starts e without a socket, for tests inside a synctest
// bubble (where time is fake and network I/O would keep it from moving),
// and returns an SDK client and an HTTP client that reach e's handler
// directly. The caller closes e.
func serveInMemory(t *testing.T, e *Emulator) (*ecs.Client, *http.Client) {
	t.Helper()
	if err := e.begin(bubbleEndpoint); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: handlerTransport{e.handler}}
	return sdkClient(bubbleEndpoint, hc), hc
}

// handlerTransport answers requests with a handler, in memory.
type handlerTransport struct{ h http.Handler }

func (tr handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	tr.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// sdkClient is the real ECS client at endpoint with static credentials and
// no retries, so a refused call fails at once.
func sdkClient(endpoint string, hc *http.Client) *ecs.Client {
	o := ecs.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("local", "local", ""),
		RetryMaxAttempts: 1,
	}
	if hc != nil {
		o.HTTPClient = hc
	}
	return ecs.New(o)
}

// dispatchRunTask is the RunTask request the alarm-dispatch Lambda sends
// (lambdas/alarm-dispatch runTaskInput), field for field.
func dispatchRunTask(token string, count int32) *ecs.RunTaskInput {
	return &ecs.RunTaskInput{
		Cluster:        aws.String("edp"),
		TaskDefinition: aws.String(consumerDef.Arn),
		Count:          aws.Int32(count),
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{
			CapacityProvider: aws.String("FARGATE"),
			Weight:           1,
		}},
		NetworkConfiguration: &ecstypes.NetworkConfiguration{
			AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
				Subnets:        []string{"subnet-1", "subnet-2"},
				SecurityGroups: []string{"sg-1"},
				AssignPublicIp: ecstypes.AssignPublicIpDisabled,
			},
		},
		Overrides: &ecstypes.TaskOverride{
			ContainerOverrides: []ecstypes.ContainerOverride{{
				Name:    aws.String("consumer"),
				Command: []string{"drain"},
			}},
		},
		StartedBy: aws.String("edp-alarm-dispatch"),
		Tags: []ecstypes.Tag{
			{Key: aws.String("edp:started-by"), Value: aws.String("edp-alarm-dispatch")},
			{Key: aws.String("edp:dispatch-id"), Value: aws.String("0123456789abcdef0123")},
		},
		ClientToken: aws.String(token),
	}
}

// apiCode is the error code of an API error, or "" for another error.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// arns returns the ARNs of tasks.
func arns(tasks []ecstypes.Task) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i] = aws.ToString(t.TaskArn)
	}
	return out
}

// eventually polls cond until it holds, for tests with real processes or
// sockets, where no fake clock can say when they are done.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
