package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// newTestConsumer returns a consumer of f: a 30 s visibility timeout and 4
// workers unless cfg sets them.
func newTestConsumer(t *testing.T, cfg Config, f *fakeSQS, p Processor) *Consumer {
	t.Helper()
	if cfg.QueueURL == "" {
		cfg.QueueURL = "https://sqs.us-east-1.amazonaws.com/123456789012/edp-work"
	}
	if cfg.DLQURL == "" {
		cfg.DLQURL = "https://sqs.us-east-1.amazonaws.com/123456789012/edp-dlq"
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
	return c
}

// keyJobs is a Processor for test messages whose body is the key of the
// job they ask for: it begins that job (its event time: when the message
// was sent) and runs do.
func keyJobs(do func(ctx context.Context, key string) (Result, error)) Processor {
	return ProcessorFunc(func(ctx context.Context, m *Message) (Result, error) {
		m.Begin(ctx, time.Time{}, slog.String("job", m.Body))
		return do(ctx, m.Body)
	})
}

// succeed is a job that succeeds at once.
func succeed(context.Context, string) (Result, error) { return Result{RunID: "r"}, nil }

// processed records the keys of the jobs a processor ran.
type processed struct {
	mu   sync.Mutex
	keys []string
}

func (p *processed) add(key string) {
	p.mu.Lock()
	p.keys = append(p.keys, key)
	p.mu.Unlock()
}

func (p *processed) sorted() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(slices.Values(p.keys))
}

// The consumer settles each message by the Processor's answer, exactly one
// way, and never deletes before the DLQ copy exists.
func TestDrainSettlesEveryMessageOneWay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		f.push("ok", "configs/ok.yaml", 1)
		f.push("bad-config", "configs/bad.yaml", 1)
		f.push("throttled", "configs/slow.yml", 3)
		f.push("garbage", "hello, queue", 1)
		f.push("other-bucket", "s3://someone-else/configs/ok.yaml", 1)
		f.push("test-event", "s3:TestEvent", 1)
		f.push("again", "configs/done.json", 2)

		var seen processed
		var got sync.Map // message id -> the Message the processor saw
		proc := ProcessorFunc(func(ctx context.Context, m *Message) (Result, error) {
			got.Store(m.ID, *m)
			switch m.Body {
			case "hello, queue":
				return Result{}, failure.Permanent(errors.New("poison message: body is not a JSON object"))
			case "s3://someone-else/configs/ok.yaml":
				return Result{}, fmt.Errorf("poison message: bucket %q is not the pipeline bucket: %w", "someone-else", failure.ErrPermanent)
			case "s3:TestEvent":
				return Result{Skip: "S3 test event"}, nil
			}
			m.Begin(ctx, time.Time{}, slog.String("job", m.Body))
			seen.add(m.Body)
			switch m.Body {
			case "configs/ok.yaml":
				return Result{RunID: "run-ok"}, nil
			case "configs/bad.yaml":
				return Result{RunID: "run-bad"}, fmt.Errorf("parse config: unknown model %q: %w", "svm", failure.ErrPermanent)
			case "configs/slow.yml":
				return Result{}, errors.New("get object: 503 SlowDown")
			case "configs/done.json":
				return Result{RunID: "run-done", Duplicate: true}, nil
			}
			return Result{}, fmt.Errorf("unexpected key %q", m.Body)
		})
		c := newTestConsumer(t, Config{Concurrency: 3, VisibilityTimeout: 300 * time.Second}, f, proc)
		st, err := c.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}

		if diff := cmp.Diff([]string{"configs/bad.yaml", "configs/done.json", "configs/ok.yaml", "configs/slow.yml"}, seen.sorted()); diff != "" {
			t.Errorf("jobs begun (-want +got):\n%s", diff)
		}
		// The processor sees the message as it was sent.
		m, _ := got.Load("again")
		if m := m.(Message); m.Body != "configs/done.json" || m.ReceiveCount != 2 || m.SentAt.IsZero() {
			t.Errorf("message %+v: want its body, receive count 2 and send time", m)
		}
		deleted, vis, dlq, events := f.snapshot()
		slices.Sort(deleted)
		wantDeleted := []string{"again", "bad-config", "garbage", "ok", "other-bucket", "test-event"}
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
			"bad-config":   "unknown model",
			"garbage":      "not a JSON object",
			"other-bucket": "not the pipeline bucket",
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
		want := Stats{Received: 7, Succeeded: 2, Duplicates: 1, DeadLettered: 3, Retried: 1, Skipped: 1}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
	})
}

func TestDeadLetterFailureNeverDeletes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("not json")
		f.sendErr = errors.New("AccessDenied")
		c := newTestConsumer(t, Config{RetryDelay: 5 * time.Second}, f, ProcessorFunc(func(context.Context, *Message) (Result, error) {
			return Result{}, failure.Permanent(errors.New("poison message"))
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
	})
}

func TestBackPressure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n, conc = 25, 3
		bodies := make([]string, n)
		for i := range bodies {
			bodies[i] = fmt.Sprintf("configs/c%02d.yaml", i)
		}
		f := newFakeSQS(bodies...)
		var running, maxRunning, returned atomic.Int32
		var seen processed
		proc := keyJobs(func(_ context.Context, key string) (Result, error) {
			r := running.Add(1)
			for {
				m := maxRunning.Load()
				if r <= m || maxRunning.CompareAndSwap(m, r) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			seen.add(key)
			returned.Add(1)
			return Result{RunID: key}, nil
		})
		// The invariant: messages taken and not yet done plus those asked
		// for never exceed the workers. A job is done after its processor
		// returns, so "received minus returned" counts no fewer messages
		// than the consumer holds.
		var maxHeld atomic.Int32
		f.receiveHook = func(in *sqs.ReceiveMessageInput) {
			f.mu.Lock()
			held := int32(f.received) - returned.Load() + in.MaxNumberOfMessages
			f.mu.Unlock()
			if held > maxHeld.Load() {
				maxHeld.Store(held)
			}
		}
		c := newTestConsumer(t, Config{Concurrency: conc}, f, proc)
		st, err := c.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Succeeded != n || len(seen.sorted()) != n {
			t.Fatalf("succeeded %d, processed %d; want %d each", st.Succeeded, len(seen.sorted()), n)
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
	})
}

func TestReceivesAtMostTenAndBatchesDeletes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 20
		bodies := make([]string, n)
		for i := range bodies {
			bodies[i] = fmt.Sprintf("configs/c%02d.yaml", i)
		}
		f := newFakeSQS(bodies...)
		// Jobs of one receive finish together (a barrier per wave of ten),
		// so their deletes can share calls.
		var mu sync.Mutex
		arrived := 0
		waves := []chan struct{}{make(chan struct{}), make(chan struct{})}
		proc := keyJobs(func(_ context.Context, key string) (Result, error) {
			mu.Lock()
			w := waves[arrived/10]
			arrived++
			if arrived%10 == 0 {
				close(w)
			}
			mu.Unlock()
			<-w
			return Result{RunID: key}, nil
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
	})
}

func TestDrainStopsWhenQueueStaysEmpty(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		c := newTestConsumer(t, Config{EmptyReceives: 4}, f, keyJobs(succeed))
		if _, err := c.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.receiveMax) != 4 {
			t.Errorf("%d receives, want 4", len(f.receiveMax))
		}
	})
}

func TestDrainMaxRunTime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		var pushed atomic.Int32
		// An endless stream of work: every receive finds a new message.
		f.receiveHook = func(*sqs.ReceiveMessageInput) {
			i := pushed.Add(1)
			f.push(fmt.Sprintf("m%d", i), fmt.Sprintf("configs/c%d.yaml", i), 1)
		}
		c := newTestConsumer(t, Config{MaxRunTime: 50 * time.Millisecond, Concurrency: 2}, f, keyJobs(func(context.Context, string) (Result, error) {
			time.Sleep(time.Millisecond)
			return Result{RunID: "r"}, nil
		}))
		st, err := c.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		deleted, vis, _, _ := f.snapshot()
		// Every received message is finished, except what the receive
		// under way at the deadline brought: that is released, never
		// stranded.
		if st.Received == 0 || len(deleted) != st.Succeeded || st.Succeeded+st.Released != st.Received || st.Released > 1 || len(vis) != st.Released {
			t.Errorf("received %d, deleted %d, stats %+v, visibility %v: want every received message finished or (the last receive's) released", st.Received, len(deleted), st, vis)
		}
		for _, v := range vis {
			if v.Seconds != 0 {
				t.Errorf("release %v: want visibility 0", v)
			}
		}
		f.assertNoneHeld(t)
	})
}

func TestReceiveErrorsEndTheRun(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		f.receiveErr = errors.New("AWS.SimpleQueueService.NonExistentQueue")
		c := newTestConsumer(t, Config{}, f, keyJobs(succeed))
		_, err := c.Serve(context.Background())
		if err == nil || !strings.Contains(err.Error(), "NonExistentQueue") {
			t.Fatalf("Serve() error = %v, want the receive error", err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.receiveMax) != maxReceiveErrors {
			t.Errorf("%d receives, want %d", len(f.receiveMax), maxReceiveErrors)
		}
	})
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
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		set := &recordingSetter{}
		var protectedDuringJob atomic.Bool
		proc := keyJobs(func(context.Context, string) (Result, error) {
			// Protection is asked for right after the dispatch: it must
			// come while the job runs.
			synctest.Wait()
			if calls := set.got(); len(calls) > 0 && calls[len(calls)-1] {
				protectedDuringJob.Store(true)
			}
			return Result{RunID: "r"}, nil
		})
		c := newTestConsumer(t, Config{Protection: &ecsprotect.Guard{Setter: set}}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { _, err := c.Serve(ctx); done <- err }()
		// Idle again once the job is done and a receive found nothing.
		time.Sleep(time.Minute)
		synctest.Wait()
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
		c2 := newTestConsumer(t, Config{Protection: &ecsprotect.Guard{Setter: set2}}, newFakeSQS("configs/a.yaml"), keyJobs(succeed))
		if _, err := c2.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if calls := set2.got(); len(calls) != 0 {
			t.Errorf("drain mode protection calls %v, want none", calls)
		}
	})
}

// A hung ECS agent delays neither the jobs nor their heartbeats.
func TestProtectionDoesNotDelayJobs(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		set := &hungSetter{release: make(chan struct{})}
		started := make(chan struct{})
		// Longer than half the 10 s visibility timeout: one extension.
		proc := keyJobs(func(context.Context, string) (Result, error) {
			close(started)
			time.Sleep(6 * time.Second)
			return Result{RunID: "r"}, nil
		})
		c := newTestConsumer(t, Config{VisibilityTimeout: 10 * time.Second, Protection: &ecsprotect.Guard{Setter: set}}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { _, err := c.Serve(ctx); done <- err }()
		<-started
		time.Sleep(7 * time.Second)
		synctest.Wait()
		deleted, vis, _, _ := f.snapshot()
		if diff := cmp.Diff([]visCall{{"m0", 10}}, vis); diff != "" || !slices.Equal(deleted, []string{"m0"}) {
			t.Errorf("while the agent hangs: extensions (-want +got):\n%s\ndeleted %v, want m0", diff, deleted)
		}
		close(set.release)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
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

func TestMetricsLines(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/ok.yaml", "configs/bad.yaml")
		time.Sleep(2 * time.Second) // in the queue for 2 s before the consumer starts
		var buf bytes.Buffer
		proc := keyJobs(func(_ context.Context, key string) (Result, error) {
			time.Sleep(250 * time.Millisecond)
			if key == "configs/bad.yaml" {
				return Result{RunID: "run-bad"}, fmt.Errorf("validate: %w", failure.ErrPermanent)
			}
			return Result{RunID: "run-ok"}, nil
		})
		c := newTestConsumer(t, Config{Concurrency: 1, Metrics: &emf.Writer{W: &buf, Namespace: "EDP"}}, f, proc)
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
			byKey[m["job"].(string)] = m
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
				t.Errorf("%s: QueueWait %v ms, want at least the 2000 ms since the message was sent", k, m["QueueWait"])
			}
			if d, _ := m["JobDuration"].(float64); d != 250 {
				t.Errorf("%s: JobDuration %v ms, want 250", k, m["JobDuration"])
			}
		}
		checkChartedNames(t, lines)
	})
}

// checkChartedNames fails unless the lines' metrics are exactly the job
// metrics the stacks' dashboards chart in either mode (names.ConsumerMetrics):
// a name the consumer emits but no dashboard charts is a metric nobody sees.
func checkChartedNames(t *testing.T, lines []string) {
	t.Helper()
	emitted := map[string]bool{}
	for _, l := range lines {
		d, err := emf.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		for name := range d.Metrics {
			emitted[name] = true
		}
	}
	for _, mode := range []string{names.ModeDrain, names.ModeServe} {
		for name := range emitted {
			if !slices.Contains(names.ConsumerMetrics(mode), name) {
				t.Errorf("the worker emits %s, which is not in names.ConsumerMetrics(%q): no %s dashboard charts it", name, mode, mode)
			}
		}
	}
	want := []string{names.MetricJobDuration, names.MetricJobsFailed, names.MetricJobsSucceeded, names.MetricQueueWait}
	if diff := cmp.Diff(want, slices.Sorted(maps.Keys(emitted))); diff != "" {
		t.Errorf("job metrics emitted (-want +got):\n%s", diff)
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	cause := errors.New("unknown model \"svm\"")
	err := failure.Permanent(cause)
	if !errors.Is(err, failure.ErrPermanent) || !errors.Is(err, cause) || err.Error() != cause.Error() {
		t.Errorf("Permanent(%v) = %v: want both sentinels and the same message", cause, err)
	}
	if failure.Permanent(nil) != nil {
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

// A sub-second part of the retry delay rounds up: never down to 0, which
// would redeliver at once.
func TestRetryDelayRoundsUp(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		c := newTestConsumer(t, Config{RetryDelay: 1500 * time.Millisecond}, f, keyJobs(func(context.Context, string) (Result, error) {
			return Result{}, errors.New("get object: 503 SlowDown")
		}))
		if _, err := c.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, vis, _, _ := f.snapshot(); !cmp.Equal(vis, []visCall{{"m0", 2}}) {
			t.Errorf("visibility changes %v, want m0 hidden 2 s", vis)
		}
	})
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	var got Config
	got.SetDefaults()
	got.Logger = nil
	want := Config{
		Concurrency: runtime.NumCPU(), WaitTime: 20 * time.Second, VisibilityTimeout: 300 * time.Second,
		JobTimeout: 15 * time.Minute, RetryDelay: 10 * time.Second, Grace: 100 * time.Second, EmptyReceives: 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	// With its required settings, the zero Config is valid.
	valid := Config{QueueURL: "q", DLQURL: "d"}
	valid.SetDefaults()
	if err := valid.Validate(); err != nil {
		t.Errorf("Validate() = %v for the defaults", err)
	}
}

// Validate names every problem at once, each a *FieldError naming the
// field (the consumer's commands restate them with their flags).
func TestConfigValidation(t *testing.T) {
	t.Parallel()
	valid := Config{QueueURL: "q", DLQURL: "d"}
	valid.SetDefaults()
	tests := map[string]struct {
		mod  func(*Config)
		want string
	}{
		"no queue":          {func(c *Config) { c.QueueURL = "" }, `QueueURL "": want the work queue's URL (required)`},
		"no dlq":            {func(c *Config) { c.DLQURL = "" }, `DLQURL "": want the dead-letter queue's URL (required)`},
		"wait too long":     {func(c *Config) { c.WaitTime = 21 * time.Second }, "WaitTime 21s: want 1 to 20 whole seconds"},
		"wait fraction":     {func(c *Config) { c.WaitTime = 1500 * time.Millisecond }, "WaitTime 1.5s"},
		"visibility short":  {func(c *Config) { c.VisibilityTimeout = time.Second }, "VisibilityTimeout 1s"},
		"negative conc":     {func(c *Config) { c.Concurrency = -1 }, "Concurrency -1"},
		"too many workers":  {func(c *Config) { c.Concurrency = 1001 }, "Concurrency 1001"},
		"zero empties":      {func(c *Config) { c.EmptyReceives = 0 }, "EmptyReceives 0"},
		"negative empties":  {func(c *Config) { c.EmptyReceives = -2 }, "EmptyReceives -2"},
		"zero grace":        {func(c *Config) { c.Grace = 0 }, "Grace 0s"},
		"negative grace":    {func(c *Config) { c.Grace = -time.Second }, "Grace -1s"},
		"grace too long":    {func(c *Config) { c.Grace = 101 * time.Second }, "Grace 1m41s: want more than 0 and at most 1m40s"},
		"negative max run":  {func(c *Config) { c.MaxRunTime = -time.Second }, "MaxRunTime -1s"},
		"negative job time": {func(c *Config) { c.JobTimeout = -time.Second }, "JobTimeout -1s"},
		"sub-second retry":  {func(c *Config) { c.RetryDelay = 500 * time.Millisecond }, "RetryDelay 500ms: want at least 1s"},
		"negative retry":    {func(c *Config) { c.RetryDelay = -time.Second }, "RetryDelay -1s"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := valid
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	// Every problem at once; New reports them, with the defaults applied
	// first.
	err := Config{WaitTime: time.Hour, RetryDelay: time.Millisecond}.Validate()
	for _, want := range []string{"QueueURL", "DLQURL", "WaitTime 1h0m0s", "RetryDelay 1ms", "Grace 0s"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	_, err = New(Config{WaitTime: time.Hour}, newFakeSQS(), keyJobs(succeed))
	if err == nil || !strings.Contains(err.Error(), "WaitTime 1h0m0s") || !strings.Contains(err.Error(), "QueueURL") || strings.Contains(err.Error(), "Grace") {
		t.Errorf("New() = %v, want the wait and the queue named, and no default refused", err)
	}
}

// A Processor that panics on one message must not take the process, or the
// other jobs in flight, down: that message is dead-lettered as a permanent
// failure with the panic as its reason and the stack in the log, and the
// others finish and are deleted.
func TestPanicInOneJobDeadLettersOnlyIt(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		for _, id := range []string{"a", "boom", "b", "c"} {
			f.push(id, "configs/"+id+".yaml", 1)
		}
		panicked := make(chan struct{})
		proc := keyJobs(func(_ context.Context, key string) (Result, error) {
			if key == "configs/boom.yaml" {
				close(panicked)
				panic(fmt.Errorf("corrupt model for %s", key))
			}
			<-panicked // still in flight when the other job panics
			return Result{RunID: "run-" + key}, nil
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
				Key               string `json:"job"`
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			if line.Level == "ERROR" && line.Msg == "job panicked" {
				found = true
				if line.MessageID != "boom" || line.Key != "configs/boom.yaml" || !strings.Contains(line.Stack, "worker_test.go") {
					t.Errorf("panic log line %s: want message_id boom, its key and a stack through the processor", l)
				}
			}
		}
		if !found {
			t.Errorf("no ERROR line for the panic in:\n%s", logs.String())
		}
	})
}
