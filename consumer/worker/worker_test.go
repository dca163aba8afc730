package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/internal/emf"
)

const testBucket = "edp-pipelines-123456789012"

// ebBody is an EventBridge "Object Created" event for key in testBucket,
// shaped like the ones S3 sends.
func ebBody(key string) string {
	return ebBodyIn(testBucket, key)
}

func ebBodyIn(bucket, key string) string {
	b, _ := json.Marshal(map[string]any{
		"version": "0", "id": "0f0e5b3c-1d0a-4c55-9d4c-" + fmt.Sprintf("%012x", len(key)),
		"detail-type": "Object Created", "source": "aws.s3", "account": "123456789012",
		"time": "2026-11-23T17:12:45Z", "region": "us-east-1",
		"resources": []string{"arn:aws:s3:::" + bucket},
		"detail": map[string]any{
			"version": "0", "bucket": map[string]any{"name": bucket},
			"object":     map[string]any{"key": key, "size": 300, "etag": "0123456789abcdef", "version-id": "v1", "sequencer": "00617F08299329D189"},
			"request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "reason": "PutObject",
		},
	})
	return string(b)
}

func newTestConsumer(t *testing.T, cfg Config, f *fakeSQS, p Processor) *Consumer {
	t.Helper()
	if cfg.QueueURL == "" {
		cfg.QueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/edp-work"
	}
	if cfg.DLQURL == "" {
		cfg.DLQURL = "https://sqs.us-east-1.amazonaws.com/123456789012/edp-dlq"
	}
	if cfg.Bucket == "" {
		cfg.Bucket = testBucket
	}
	if cfg.VisibilityTimeout == 0 {
		cfg.VisibilityTimeout = 30 * time.Second
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	f.heartbeatSeconds = int32(cfg.VisibilityTimeout / time.Second)
	c, err := New(cfg, f, p)
	if err != nil {
		t.Fatal(err)
	}
	c.receiveBackoff = time.Millisecond
	c.releaseWait = 200 * time.Millisecond
	return c
}

// processed records the jobs a processor saw.
type processed struct {
	mu   sync.Mutex
	jobs []Job
}

func (p *processed) add(j Job) {
	p.mu.Lock()
	p.jobs = append(p.jobs, j)
	p.mu.Unlock()
}

func (p *processed) keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ks []string
	for _, j := range p.jobs {
		ks = append(ks, j.Key)
	}
	slices.Sort(ks)
	return ks
}

func TestDrainSettlesEveryMessageOneWay(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	f.push("ok", ebBody("configs/ok.yaml"), 1)
	f.push("bad-config", ebBody("configs/bad.yaml"), 1)
	f.push("throttled", ebBody("configs/slow.yml"), 3)
	f.push("garbage", "hello, queue", 1)
	f.push("other-bucket", ebBodyIn("someone-else", "configs/ok.yaml"), 1)
	f.push("outside-prefix", ebBody("artifacts/v1/model.json"), 1)
	f.push("wrong-suffix", ebBody("configs/notes.txt"), 1)
	f.push("test-event", `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-23T17:00:01.084Z","Bucket":"`+testBucket+`"}`, 1)
	f.push("again", `{"config":"s3://`+testBucket+`/configs/done.json"}`, 2)

	var seen processed
	proc := ProcessorFunc(func(_ context.Context, j Job) (Result, error) {
		seen.add(j)
		switch j.Key {
		case "configs/ok.yaml":
			return Result{RunID: "run-ok"}, nil
		case "configs/bad.yaml":
			return Result{RunID: "run-bad"}, fmt.Errorf("parse config: unknown model %q: %w", "svm", ErrPermanent)
		case "configs/slow.yml":
			return Result{}, errors.New("get object: 503 SlowDown")
		case "configs/done.json":
			return Result{RunID: "run-done", Duplicate: true}, nil
		}
		return Result{}, fmt.Errorf("unexpected key %q", j.Key)
	})
	c := newTestConsumer(t, Config{Concurrency: 3, VisibilityTimeout: 300 * time.Second}, f, proc)
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff([]string{"configs/bad.yaml", "configs/done.json", "configs/ok.yaml", "configs/slow.yml"}, seen.keys()); diff != "" {
		t.Errorf("processed keys (-want +got):\n%s", diff)
	}
	deleted, vis, dlq, events := f.snapshot()
	slices.Sort(deleted)
	wantDeleted := []string{"again", "bad-config", "garbage", "ok", "other-bucket", "outside-prefix", "test-event", "wrong-suffix"}
	if diff := cmp.Diff(wantDeleted, deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	// Three earlier receives double the 10 s retry delay twice.
	if diff := cmp.Diff([]visCall{{ID: "throttled", Seconds: 40}}, vis); diff != "" {
		t.Errorf("visibility changes (-want +got):\n%s", diff)
	}
	reasons := map[string]string{}
	for _, m := range dlq {
		reasons[m.Attrs[AttrOriginalMessageID]] = m.Attrs[AttrReason]
		if m.Attrs[AttrReceiveCount] != "1" || m.Attrs[AttrFailedAt] == "" {
			t.Errorf("DLQ attributes %v: want receive count 1 and a failure time", m.Attrs)
		}
	}
	wantReason := map[string]string{
		"bad-config":     "unknown model",
		"garbage":        "not a JSON object",
		"other-bucket":   "not the pipeline bucket",
		"outside-prefix": "is not a config",
		"wrong-suffix":   "is not a config",
	}
	if len(reasons) != len(wantReason) {
		t.Errorf("DLQ got %v, want ids %v", reasons, wantReason)
	}
	for id, want := range wantReason {
		if !strings.Contains(reasons[id], want) {
			t.Errorf("DLQ reason for %s = %q, want it to mention %q", id, reasons[id], want)
		}
		// Never delete first: the copy in the DLQ must exist before the delete.
		if i, j := slices.Index(events, "dlq "+id), slices.Index(events, "delete "+id); i < 0 || j < 0 || i > j {
			t.Errorf("%s: dlq at event %d, delete at %d; want dlq first", id, i, j)
		}
	}
	// The poison message's body reaches the DLQ untouched.
	if !slices.ContainsFunc(dlq, func(m dlqMsg) bool { return m.Body == "hello, queue" }) {
		t.Errorf("DLQ bodies %v: want the original garbage body", dlq)
	}
	want := Stats{Received: 9, Succeeded: 2, Duplicates: 1, DeadLettered: 5, Retried: 1, TestEvents: 1}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestDeadLetterFailureNeverDeletes(t *testing.T) {
	t.Parallel()
	f := newFakeSQS("not json")
	f.sendErr = errors.New("AccessDenied")
	c := newTestConsumer(t, Config{RetryDelay: 5 * time.Second}, f, ProcessorFunc(func(context.Context, Job) (Result, error) {
		t.Error("processor called for a poison message")
		return Result{}, nil
	}))
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deleted, vis, _, _ := f.snapshot()
	if len(deleted) != 0 {
		t.Errorf("deleted %v although the DLQ copy failed", deleted)
	}
	if diff := cmp.Diff([]visCall{{ID: "m0", Seconds: 5}}, vis); diff != "" {
		t.Errorf("visibility (-want +got):\n%s", diff)
	}
	if st.Retried != 1 || st.DeadLettered != 0 {
		t.Errorf("stats %+v: want 1 retried, 0 dead-lettered", st)
	}
}

func TestBackPressure(t *testing.T) {
	t.Parallel()
	const n, conc = 25, 3
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = ebBody(fmt.Sprintf("configs/c%02d.yaml", i))
	}
	f := newFakeSQS(bodies...)
	var running, maxRunning atomic.Int32
	var seen processed
	proc := ProcessorFunc(func(_ context.Context, j Job) (Result, error) {
		r := running.Add(1)
		for {
			m := maxRunning.Load()
			if r <= m || maxRunning.CompareAndSwap(m, r) {
				break
			}
		}
		time.Sleep(2 * time.Millisecond)
		running.Add(-1)
		seen.add(j)
		return Result{RunID: j.Key}, nil
	})
	c := newTestConsumer(t, Config{Concurrency: conc}, f, proc)
	// The invariant: messages taken and not yet settled plus those asked
	// for never exceed the workers.
	var maxHeld atomic.Int32
	f.receiveHook = func(in *sqs.ReceiveMessageInput) {
		c.mu.Lock()
		held := int32(len(c.open)) + in.MaxNumberOfMessages
		c.mu.Unlock()
		if held > maxHeld.Load() {
			maxHeld.Store(held)
		}
	}
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Succeeded != n || len(seen.keys()) != n {
		t.Fatalf("succeeded %d, processed %d; want %d each", st.Succeeded, len(seen.keys()), n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if maxHeld.Load() > conc {
		t.Errorf("held and asked for up to %d messages at once, want at most %d (concurrency)", maxHeld.Load(), conc)
	}
	if maxRunning.Load() > conc {
		t.Errorf("ran %d jobs at once, want at most %d", maxRunning.Load(), conc)
	}
	if f.receiveMax[0] != conc {
		t.Errorf("first receive asked for %d messages, want %d (all workers free)", f.receiveMax[0], conc)
	}
	for _, m := range f.receiveMax {
		if m < 1 || m > conc {
			t.Errorf("receive asked for %d messages, want 1..%d", m, conc)
		}
	}
}

func TestReceivesAtMostTenAndBatchesDeletes(t *testing.T) {
	t.Parallel()
	const n = 20
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = ebBody(fmt.Sprintf("configs/c%02d.yaml", i))
	}
	f := newFakeSQS(bodies...)
	// Jobs of one receive finish together (a barrier per wave of ten), so
	// their deletes can share calls.
	var mu sync.Mutex
	arrived := 0
	waves := []chan struct{}{make(chan struct{}), make(chan struct{})}
	proc := ProcessorFunc(func(_ context.Context, j Job) (Result, error) {
		mu.Lock()
		w := waves[arrived/10]
		arrived++
		if arrived%10 == 0 {
			close(w)
		}
		mu.Unlock()
		<-w
		return Result{RunID: j.Key}, nil
	})
	c := newTestConsumer(t, Config{Concurrency: 10}, f, proc)
	if _, err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.deleted) != n {
		t.Fatalf("deleted %d, want %d", len(f.deleted), n)
	}
	if slices.Max(f.receiveMax) != 10 {
		t.Errorf("receives asked for %v, want batches of 10", f.receiveMax)
	}
	if f.deleteCalls > n/2 {
		t.Errorf("%d DeleteMessageBatch calls for %d messages finishing in waves of 10, want batching", f.deleteCalls, n)
	}
}

func TestHeartbeatExtendsUntilJobEnds(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/long.yaml"))
	ts := newTickers()
	finish := make(chan struct{})
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		<-finish
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{VisibilityTimeout: 10 * time.Second, NewTicker: ts.New}, f, proc)
	done := make(chan error)
	go func() { _, err := c.Drain(context.Background()); done <- err }()

	tk := <-ts.made
	if tk.period != 5*time.Second {
		t.Errorf("heartbeat period %v, want half the visibility timeout (5s)", tk.period)
	}
	// The heartbeat handles one tick at a time, so after the third send
	// returns the first two extensions have been made.
	for range 3 {
		tk.c <- time.Now()
	}
	close(finish)
	select {
	case <-tk.stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("heartbeat ticker not stopped after the job ended")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, vis, _, events := f.snapshot()
	want := []visCall{{"m0", 10}, {"m0", 10}, {"m0", 10}}
	if diff := cmp.Diff(want, vis); diff != "" {
		t.Errorf("extensions (-want +got):\n%s", diff)
	}
	// The delete is the last call for m0: no extension follows it.
	var m0 []string
	for _, e := range events {
		if strings.HasSuffix(e, " m0") || strings.Contains(e, " m0 ") {
			m0 = append(m0, e)
		}
	}
	if len(m0) == 0 || m0[len(m0)-1] != "delete m0" || slices.Index(m0, "delete m0") != len(m0)-1 {
		t.Errorf("calls for m0 %v: want the delete last, after every extension", m0)
	}
}

// A job that ignores its timeout loses its hold on the message: the
// heartbeat ends at the job's deadline although the job still runs.
func TestHeartbeatStopsAtJobTimeout(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/fit.yaml"))
	ts := newTickers()
	expired, finish := make(chan struct{}), make(chan struct{})
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		<-ctx.Done() // like a CPU-bound fit, it notices nothing and goes on
		close(expired)
		<-finish
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{VisibilityTimeout: 10 * time.Second, JobTimeout: 50 * time.Millisecond, NewTicker: ts.New}, f, proc)
	done := make(chan error)
	go func() { _, err := c.Drain(context.Background()); done <- err }()
	tk := <-ts.made
	<-expired
	select {
	case <-tk.stopped:
	case tk.c <- time.Now(): // a heartbeat still listening must not extend
		select {
		case <-tk.stopped:
		case <-time.After(10 * time.Second):
			t.Error("heartbeat still running after the job's timeout")
		}
	case <-time.After(10 * time.Second):
		t.Error("heartbeat still running after the job's timeout")
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, vis, _, _ := f.snapshot()
	if len(vis) != 0 {
		t.Errorf("visibility changes %v: want no extension past the job timeout", vis)
	}
}

func TestStopFinishesInFlightWithinGrace(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"))
	var stopped atomic.Bool
	var lateReceives atomic.Int32
	f.receiveHook = func(*sqs.ReceiveMessageInput) {
		if stopped.Load() {
			lateReceives.Add(1)
		}
	}
	started, finish := make(chan struct{}), make(chan struct{})
	var jobErr error
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		close(started)
		<-finish
		jobErr = ctx.Err()
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{Grace: time.Minute}, f, proc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Serve(ctx); done <- err }()
	<-started
	stopped.Store(true)
	cancel()
	// Let the loop notice the signal while the job is still running.
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) before the in-flight job finished", err)
	default:
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if jobErr != nil {
		t.Errorf("job context was cancelled (%v) within the grace period", jobErr)
	}
	// The loop is sequential, so only the receive under way at the signal
	// can come after it; the loop never starts another.
	if n := lateReceives.Load(); n > 1 {
		t.Errorf("%d receives after the stop signal, want at most the one already under way", n)
	}
	deleted, vis, _, _ := f.snapshot()
	if !slices.Equal(deleted, []string{"m0"}) || len(vis) != 0 {
		t.Errorf("deleted %v, visibility %v: want m0 deleted and nothing released", deleted, vis)
	}
}

func TestStopReleasesAfterGrace(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"), ebBody("configs/b.yaml"))
	var started sync.WaitGroup
	started.Add(2)
	var stopAt atomic.Int64
	var sawCancel sync.Map
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		started.Done()
		<-ctx.Done()
		sawCancel.Store(j.Key, time.Since(time.Unix(0, stopAt.Load())))
		return Result{}, fmt.Errorf("train: %w", ctx.Err())
	})
	const grace = 100 * time.Millisecond
	c := newTestConsumer(t, Config{Grace: grace, Concurrency: 2}, f, proc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats)
	go func() {
		st, err := c.Serve(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	started.Wait()
	stopAt.Store(time.Now().UnixNano())
	cancel()
	st := <-done
	_, vis, dlq, _ := f.snapshot()
	slices.SortFunc(vis, func(a, b visCall) int { return strings.Compare(a.ID, b.ID) })
	if diff := cmp.Diff([]visCall{{"m0", 0}, {"m1", 0}}, vis); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if len(dlq) != 0 || st.Released != 2 || st.Retried != 0 {
		t.Errorf("stats %+v, dlq %v: want both released, nothing retried or dead-lettered", st, dlq)
	}
	sawCancel.Range(func(k, v any) bool {
		if v.(time.Duration) < grace {
			t.Errorf("%v cancelled %v after the stop signal, before the %v grace", k, v, grace)
		}
		return true
	})
}

func TestStopReleasesJobsThatIgnoreCancellation(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/stuck.yaml"))
	started, unblock, returned := make(chan struct{}), make(chan struct{}), make(chan struct{})
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		close(started)
		<-unblock
		defer close(returned)
		return Result{RunID: "late"}, nil
	})
	c := newTestConsumer(t, Config{Grace: 10 * time.Millisecond}, f, proc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Serve(ctx); done <- err }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	_, vis, _, _ := f.snapshot()
	if diff := cmp.Diff([]visCall{{"m0", 0}}, vis); diff != "" {
		t.Errorf("release of the stuck job (-want +got):\n%s", diff)
	}
	// When the stuck job finally returns, its message is already settled
	// and must not be deleted a second way.
	close(unblock)
	<-returned
	for c.inflight.Load() != 0 {
		time.Sleep(time.Millisecond)
	}
	c.deleter.flush(context.Background())
	if deleted, _, _, _ := f.snapshot(); len(deleted) != 0 {
		t.Errorf("deleted %v after release", deleted)
	}
}

func TestDrainStopsWhenQueueStaysEmpty(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	c := newTestConsumer(t, Config{EmptyReceives: 4}, f, ProcessorFunc(func(context.Context, Job) (Result, error) {
		return Result{}, nil
	}))
	if _, err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.receiveMax) != 4 {
		t.Errorf("%d receives, want 4", len(f.receiveMax))
	}
}

func TestDrainMaxRunTime(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	var pushed atomic.Int32
	// An endless stream of work: every receive finds a new message.
	f.receiveHook = func(*sqs.ReceiveMessageInput) {
		i := pushed.Add(1)
		f.push(fmt.Sprintf("m%d", i), ebBody(fmt.Sprintf("configs/c%d.yaml", i)), 1)
	}
	c := newTestConsumer(t, Config{MaxRunTime: 50 * time.Millisecond, Concurrency: 2}, f, ProcessorFunc(func(context.Context, Job) (Result, error) {
		time.Sleep(time.Millisecond)
		return Result{RunID: "r"}, nil
	}))
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	deleted, vis, _, _ := f.snapshot()
	// Every received message is finished, except what the receive under
	// way at the deadline brought: that is released, never stranded.
	if st.Received == 0 || len(deleted) != st.Succeeded || st.Succeeded+st.Released != st.Received || st.Released > 1 || len(vis) != st.Released {
		t.Errorf("received %d, deleted %d, stats %+v, visibility %v: want every received message finished or (the last receive's) released", st.Received, len(deleted), st, vis)
	}
	for _, v := range vis {
		if v.Seconds != 0 {
			t.Errorf("release %v: want visibility 0", v)
		}
	}
	f.assertNoneHeld(t)
}

func TestReceiveErrorsEndTheRun(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	f.receiveErr = errors.New("AWS.SimpleQueueService.NonExistentQueue")
	c := newTestConsumer(t, Config{}, f, ProcessorFunc(func(context.Context, Job) (Result, error) { return Result{}, nil }))
	_, err := c.Serve(context.Background())
	if err == nil || !strings.Contains(err.Error(), "NonExistentQueue") {
		t.Fatalf("Serve() error = %v, want the receive error", err)
	}
}

type recordingSetter struct {
	mu    sync.Mutex
	calls []bool
}

func (r *recordingSetter) Set(_ context.Context, enabled bool, _ time.Duration) error {
	r.mu.Lock()
	r.calls = append(r.calls, enabled)
	r.mu.Unlock()
	return nil
}

func (r *recordingSetter) got() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.calls...)
}

func TestServeHoldsProtectionWhileBusy(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"))
	set := &recordingSetter{}
	var protectedDuringJob atomic.Bool
	proc := ProcessorFunc(func(context.Context, Job) (Result, error) {
		// Protection is asked for right after the dispatch: it must come
		// while the job runs.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			if calls := set.got(); len(calls) > 0 && calls[len(calls)-1] {
				protectedDuringJob.Store(true)
				break
			}
		}
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{Protection: &ecsprotect.Guard{Setter: set}}, f, proc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Serve(ctx); done <- err }()
	// Idle again once the job is done and the queue is empty.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if calls := set.got(); len(calls) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("protection calls %v, want on then off", set.got())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false}, set.got()); diff != "" {
		t.Errorf("protection calls (-want +got):\n%s", diff)
	}
	if !protectedDuringJob.Load() {
		t.Error("job ran without scale-in protection")
	}

	// Drain mode never touches protection.
	set2 := &recordingSetter{}
	c2 := newTestConsumer(t, Config{Protection: &ecsprotect.Guard{Setter: set2}}, newFakeSQS(ebBody("configs/a.yaml")), ProcessorFunc(func(context.Context, Job) (Result, error) {
		return Result{RunID: "r"}, nil
	}))
	if _, err := c2.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls := set2.got(); len(calls) != 0 {
		t.Errorf("drain mode protection calls %v, want none", calls)
	}
}

func TestMetricsLines(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/ok.yaml"), ebBody("configs/bad.yaml"))
	var buf bytes.Buffer
	var mu sync.Mutex
	now := time.Date(2026, 11, 23, 17, 12, 47, 0, time.UTC) // 2 s after the events
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(250 * time.Millisecond)
		return now
	}
	proc := ProcessorFunc(func(_ context.Context, j Job) (Result, error) {
		if j.Key == "configs/bad.yaml" {
			return Result{RunID: "run-bad"}, fmt.Errorf("validate: %w", ErrPermanent)
		}
		return Result{RunID: "run-ok"}, nil
	})
	c := newTestConsumer(t, Config{Concurrency: 1, Now: clock, Metrics: &emf.Writer{W: &buf, Namespace: "EDP"}}, f, proc)
	if _, err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d EMF lines, want 2:\n%s", len(lines), buf.String())
	}
	byKey := map[string]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		byKey[m["s3_key"].(string)] = m
	}
	ok, bad := byKey["configs/ok.yaml"], byKey["configs/bad.yaml"]
	if ok["JobsSucceeded"] != 1.0 || ok["JobsFailed"] != 0.0 || ok["outcome"] != OutcomeSucceeded || ok["run_id"] != "run-ok" {
		t.Errorf("success line %v", ok)
	}
	if bad["JobsSucceeded"] != 0.0 || bad["JobsFailed"] != 1.0 || bad["outcome"] != OutcomeDeadLettered || bad["run_id"] != "run-bad" {
		t.Errorf("failure line %v", bad)
	}
	for k, m := range byKey {
		if w, _ := m["QueueWait"].(float64); w < 2000 {
			t.Errorf("%s: QueueWait %v ms, want at least the 2000 ms since the event", k, m["QueueWait"])
		}
		if d, _ := m["JobDuration"].(float64); d != 250 {
			t.Errorf("%s: JobDuration %v ms, want 250 (one clock step)", k, m["JobDuration"])
		}
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	cause := errors.New("unknown model \"svm\"")
	err := Permanent(cause)
	if !errors.Is(err, ErrPermanent) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("Permanent(%v) = %v: want both sentinels and the same message", cause, err)
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestRetryDelay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		receives int
		want     time.Duration
	}{
		{0, 10 * time.Second}, {1, 10 * time.Second}, {2, 20 * time.Second},
		{4, 80 * time.Second}, {6, 300 * time.Second}, {100, 300 * time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(10*time.Second, 300*time.Second, tt.receives); got != tt.want {
			t.Errorf("retryDelay(receives=%d) = %v, want %v", tt.receives, got, tt.want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	valid := Config{QueueURL: "q", DLQURL: "d", Bucket: "b"}
	got, err := valid.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got.WaitTime != 20*time.Second || got.VisibilityTimeout != 300*time.Second || got.Grace != 100*time.Second ||
		got.EmptyReceives != 3 || got.Concurrency < 1 || got.ConfigPrefix != "configs/" || got.JobTimeout != 15*time.Minute {
		t.Errorf("defaults not applied: %+v", got)
	}
	tests := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no queue":          {func(c *Config) { c.QueueURL = "" }, "queue URL"},
		"no dlq":            {func(c *Config) { c.DLQURL = "" }, "dead-letter queue URL"},
		"no bucket":         {func(c *Config) { c.Bucket = "" }, "bucket"},
		"wait too long":     {func(c *Config) { c.WaitTime = 21 * time.Second }, "wait time"},
		"wait fraction":     {func(c *Config) { c.WaitTime = 1500 * time.Millisecond }, "wait time"},
		"visibility short":  {func(c *Config) { c.VisibilityTimeout = time.Second }, "visibility timeout"},
		"negative conc":     {func(c *Config) { c.Concurrency = -1 }, "concurrency"},
		"negative empties":  {func(c *Config) { c.EmptyReceives = -2 }, "empty receives"},
		"negative grace":    {func(c *Config) { c.Grace = -time.Second }, "grace"},
		"negative max run":  {func(c *Config) { c.MaxRunTime = -time.Second }, "max run time"},
		"negative job time": {func(c *Config) { c.JobTimeout = -time.Second }, "job timeout"},
		"sub-second retry":  {func(c *Config) { c.RetryDelay = 500 * time.Millisecond }, "retry delay 500ms must be at least 1s"},
		"negative retry":    {func(c *Config) { c.RetryDelay = -time.Second }, "retry delay"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tt.mod(&c)
			_, err := New(c, newFakeSQS(), ProcessorFunc(func(context.Context, Job) (Result, error) { return Result{}, nil }))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// A long poll under way at the stop signal is not cut (SQS may hand
// messages to a dropped connection); what it brings is released at once
// and no job starts for it.
func TestStopReleasesWhatTheLastReceiveBrings(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	inPoll, signalled := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	f.receiveHook = func(*sqs.ReceiveMessageInput) {
		if calls.Add(1) == 2 { // the first receive finds the queue empty
			close(inPoll)
			<-signalled
			// Messages arrive while the long poll is still open.
			f.push("m0", ebBody("configs/a.yaml"), 1)
			f.push("m1", ebBody("configs/b.yaml"), 1)
		}
	}
	c := newTestConsumer(t, Config{}, f, ProcessorFunc(func(context.Context, Job) (Result, error) {
		t.Error("job started for a message received after the stop signal")
		return Result{}, nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Stats)
	go func() {
		st, err := c.Serve(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- st
	}()
	<-inPoll
	cancel()
	close(signalled)
	st := <-done
	_, vis, _, _ := f.snapshot()
	slices.SortFunc(vis, func(a, b visCall) int { return strings.Compare(a.ID, b.ID) })
	if diff := cmp.Diff([]visCall{{"m0", 0}, {"m1", 0}}, vis); diff != "" {
		t.Errorf("releases (-want +got):\n%s", diff)
	}
	if st.Received != 2 || st.Released != 2 || st.Succeeded != 0 {
		t.Errorf("stats %+v: want 2 received and released", st)
	}
	f.assertNoneHeld(t)
}

// Jobs that ignore cancellation are released in batches of ten, and the
// calls after the grace share one deadline however slow SQS is.
func TestStopReleasesStuckJobsInBatchesWithinBudget(t *testing.T) {
	t.Parallel()
	const n = 12
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = ebBody(fmt.Sprintf("configs/c%02d.yaml", i))
	}
	for _, hang := range []bool{false, true} {
		f := newFakeSQS(bodies...)
		if hang { // SQS answers no release at all
			f.visBatchHook = func(ctx context.Context) { <-ctx.Done() }
		}
		var started sync.WaitGroup
		started.Add(n)
		unblock := make(chan struct{})
		proc := ProcessorFunc(func(context.Context, Job) (Result, error) {
			started.Done()
			<-unblock
			return Result{RunID: "late"}, nil
		})
		c := newTestConsumer(t, Config{Grace: 10 * time.Millisecond, Concurrency: n}, f, proc)
		c.stopBudget = 300 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Stats)
		go func() { st, _ := c.Serve(ctx); done <- st }()
		started.Wait()
		cancel()
		select {
		case st := <-done:
			if st.Released != n {
				t.Errorf("hang=%v: released %d, want %d", hang, st.Released, n)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("hang=%v: Serve still running long after grace + releaseWait + stop budget", hang)
		}
		close(unblock)
		_, vis, _, _ := f.snapshot()
		f.mu.Lock()
		batches := f.visBatches
		f.mu.Unlock()
		if !hang && (len(vis) != n || batches != 2) {
			t.Errorf("%d releases in %d batch calls, want %d in 2", len(vis), batches, n)
		}
		for _, v := range vis {
			if v.Seconds != 0 {
				t.Errorf("release %v: want visibility 0", v)
			}
		}
	}
}

// A job that settles while the stop path runs still has its delete sent
// before Serve returns.
func TestStopWaitsForSettleUnderWay(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"))
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	started := make(chan struct{})
	proc := ProcessorFunc(func(ctx context.Context, j Job) (Result, error) {
		close(started)
		<-ctx.Done() // returns at the end of the grace, but successfully
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{Grace: 10 * time.Millisecond, Metrics: &emf.Writer{W: w, Namespace: "EDP"}}, f, proc)
	c.releaseWait = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Serve(ctx); done <- err }()
	<-started
	cancel()
	<-w.entered // the settle is under way, held in its metrics line
	select {
	case <-done:
		t.Error("Serve returned while a settle was under way")
	case <-time.After(300 * time.Millisecond):
	}
	close(w.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if deleted, vis, _, _ := f.snapshot(); !slices.Equal(deleted, []string{"m0"}) || len(vis) != 0 {
		t.Errorf("at return: deleted %v, visibility %v; want m0 deleted", deleted, vis)
	}
}

// blockingWriter holds the first Write until released.
type blockingWriter struct {
	once             sync.Once
	entered, release chan struct{}
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	b.once.Do(func() { close(b.entered); <-b.release })
	return len(p), nil
}

func TestDeleteRetriesOnce(t *testing.T) {
	t.Parallel()
	throttled := errors.New("ThrottlingException: Rate exceeded")
	tests := map[string]struct {
		callErrs    []error
		entryFails  int // server-side failures of m0's entry
		stale       bool
		wantDeleted []string
		wantCalls   int
	}{
		"ok":                    {wantDeleted: []string{"m0", "m1"}, wantCalls: 1},
		"call fails once":       {callErrs: []error{throttled}, wantDeleted: []string{"m0", "m1"}, wantCalls: 2},
		"call fails twice":      {callErrs: []error{throttled, throttled}, wantCalls: 2},
		"entry fails once":      {entryFails: 1, wantDeleted: []string{"m1", "m0"}, wantCalls: 2},
		"entry fails twice":     {entryFails: 2, wantDeleted: []string{"m1"}, wantCalls: 2},
		"stale handle (sender)": {stale: true, wantDeleted: []string{"m1"}, wantCalls: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSQS("a", "b")
			f.deleteErrs = tt.callErrs
			f.deleteFails = map[string]int{"m0": tt.entryFails}
			out, err := f.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{MaxNumberOfMessages: 10})
			if err != nil {
				t.Fatal(err)
			}
			if tt.stale {
				out.Messages[0].ReceiptHandle = aws.String("m0#expired")
			}
			dl := &deleter{sqs: f, queueURL: "q", log: slog.New(slog.DiscardHandler)}
			for _, m := range out.Messages {
				dl.add(context.Background(), &delivery{msg: m})
			}
			dl.flush(context.Background())
			deleted, _, _, _ := f.snapshot()
			if diff := cmp.Diff(tt.wantDeleted, deleted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.deleteCalls != tt.wantCalls {
				t.Errorf("%d DeleteMessageBatch calls, want %d", f.deleteCalls, tt.wantCalls)
			}
		})
	}
}

// A sub-second part of the retry delay rounds up: never down to 0, which
// would redeliver at once.
func TestRetryDelayRoundsUp(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"))
	c := newTestConsumer(t, Config{RetryDelay: 1500 * time.Millisecond}, f, ProcessorFunc(func(context.Context, Job) (Result, error) {
		return Result{}, errors.New("get object: 503 SlowDown")
	}))
	if _, err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, vis, _, _ := f.snapshot(); !cmp.Equal(vis, []visCall{{"m0", 2}}) {
		t.Errorf("visibility changes %v, want m0 hidden 2 s", vis)
	}
}

// A hung ECS agent delays neither the jobs nor their heartbeats.
func TestProtectionDoesNotDelayJobs(t *testing.T) {
	t.Parallel()
	f := newFakeSQS(ebBody("configs/a.yaml"))
	set := &hungSetter{release: make(chan struct{})}
	ts := newTickers()
	started := make(chan struct{})
	proc := ProcessorFunc(func(context.Context, Job) (Result, error) {
		close(started)
		return Result{RunID: "r"}, nil
	})
	c := newTestConsumer(t, Config{Protection: &ecsprotect.Guard{Setter: set}, NewTicker: ts.New}, f, proc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := c.Serve(ctx); done <- err }()
	select {
	case <-ts.made:
	case <-time.After(10 * time.Second):
		t.Error("no heartbeat while the agent hangs")
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Error("job not started while the agent hangs")
	}
	close(set.release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// hungSetter blocks every protection call until released.
type hungSetter struct{ release chan struct{} }

func (h *hungSetter) Set(ctx context.Context, _ bool, _ time.Duration) error {
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// A Processor that panics on one message must not take the process, or the
// other jobs in flight, down: that message is dead-lettered as a permanent
// failure with the panic as its reason and the stack in the log, and the
// others finish and are deleted.
func TestPanicInOneJobDeadLettersOnlyIt(t *testing.T) {
	t.Parallel()
	f := newFakeSQS()
	for _, id := range []string{"a", "boom", "b", "c"} {
		f.push(id, ebBody("configs/"+id+".yaml"), 1)
	}
	panicked := make(chan struct{})
	proc := ProcessorFunc(func(_ context.Context, j Job) (Result, error) {
		if j.Key == "configs/boom.yaml" {
			close(panicked)
			panic(fmt.Errorf("corrupt model for %s", j.Key))
		}
		<-panicked // still in flight when the other job panics
		return Result{RunID: "run-" + j.Key}, nil
	})
	var logs bytes.Buffer
	c := newTestConsumer(t, Config{Concurrency: 4, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, f, proc)
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	deleted, vis, dlq, events := f.snapshot()
	slices.Sort(deleted)
	if diff := cmp.Diff([]string{"a", "b", "boom", "c"}, deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	if len(vis) != 0 {
		t.Errorf("visibility changes %v, want none", vis)
	}
	if len(dlq) != 1 || dlq[0].Attrs[AttrOriginalMessageID] != "boom" ||
		dlq[0].Attrs[AttrReason] != "panic: corrupt model for configs/boom.yaml" {
		t.Fatalf("DLQ %+v, want only boom with the panic as its reason", dlq)
	}
	if i, j := slices.Index(events, "dlq boom"), slices.Index(events, "delete boom"); i < 0 || j < 0 || i > j {
		t.Errorf("dlq at event %d, delete at %d; want the DLQ copy first", i, j)
	}
	if want := (Stats{Received: 4, Succeeded: 3, DeadLettered: 1}); st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line struct {
			Level, Msg, Stack string
			MessageID         string `json:"message_id"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line.Level == "ERROR" && line.Msg == "job panicked" {
			found = true
			if line.MessageID != "boom" || !strings.Contains(line.Stack, "worker_test.go") {
				t.Errorf("panic log line %s: want message_id boom and a stack through the processor", l)
			}
		}
	}
	if !found {
		t.Errorf("no ERROR line for the panic in:\n%s", logs.String())
	}
}
