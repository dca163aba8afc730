package worker

import (
	"context"
	"errors"
	"fmt"
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

// stopBudget is the stop protocol's arithmetic (stop.go) as values, so a
// test can mutate one and see the check reject it.
type stopBudget struct {
	stopTimeout             time.Duration // names.StopTimeout
	maxGrace, defaultGrace  time.Duration
	cancelWait, release     time.Duration
	flush, exitMargin       time.Duration
	longestPoll, settleCall time.Duration // a receive's limit; one settle call's
}

// currentStopBudget is the budget the consumer runs with.
func currentStopBudget() stopBudget {
	return stopBudget{
		stopTimeout: names.StopTimeout, maxGrace: MaxGrace, defaultGrace: DefaultGrace,
		cancelWait: cancelWait, release: releaseBudget, flush: flushBudget, exitMargin: exitMargin,
		longestPoll: maxWaitTime + receiveSlack, settleCall: callTimeout,
	}
}

// problems lists what would let a stop overrun the stop timeout (ECS then
// kills the process mid-settle) or leave a step no time at all.
func (b stopBudget) problems() []string {
	var out []string
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"max grace", b.maxGrace}, {"cancel wait", b.cancelWait}, {"release budget", b.release},
		{"flush budget", b.flush}, {"exit margin", b.exitMargin},
	} {
		if d.v <= 0 {
			out = append(out, fmt.Sprintf("%s %v: want more than 0", d.name, d.v))
		}
	}
	if b.defaultGrace <= 0 || b.defaultGrace > b.maxGrace {
		out = append(out, fmt.Sprintf("default grace %v: want more than 0 and at most the max grace %v", b.defaultGrace, b.maxGrace))
	}
	if sum := b.maxGrace + b.cancelWait + b.release + b.flush + b.exitMargin; sum > b.stopTimeout {
		out = append(out, fmt.Sprintf("max grace + cancel wait + release + flush + exit margin = %v: past the stop timeout %v", sum, b.stopTimeout))
	}
	// With the shortest grace, the stop waits for the long poll under way
	// at the signal and the loop's release of what it brought; steps 4 and
	// 5 and the exit must still have their whole budgets after that.
	if late := b.longestPoll + b.settleCall + b.release + b.flush + b.exitMargin; late > b.stopTimeout {
		out = append(out, fmt.Sprintf("longest poll %v + its release %v + release + flush + exit margin = %v: past the stop timeout %v",
			b.longestPoll, b.settleCall, late, b.stopTimeout))
	}
	return out
}

// The budgets of a stop fit the task's stop timeout, the one the stacks
// set (names.StopTimeout): after the longest grace, the cancelled jobs'
// wait, the releases and the flush, the process still has exitMargin to log
// and exit; a long poll under way at the signal, and the release of what it
// brings, leave the later steps their budgets. Each mutation shows the
// check rejects a budget that would not fit.
func TestStopBudgetFitsTheStopTimeout(t *testing.T) {
	t.Parallel()
	if p := currentStopBudget().problems(); len(p) > 0 {
		t.Errorf("the consumer's stop budget: %s", strings.Join(p, "; "))
	}
	for _, tt := range []struct {
		name   string
		mutate func(*stopBudget)
		want   string
	}{
		{"grace past the rest", func(b *stopBudget) { b.maxGrace += time.Second }, "past the stop timeout"},
		{"larger flush, same grace", func(b *stopBudget) { b.flush += time.Second }, "past the stop timeout"},
		{"shorter stop timeout", func(b *stopBudget) { b.stopTimeout -= time.Second }, "past the stop timeout"},
		{"no exit margin", func(b *stopBudget) { b.exitMargin = 0 }, "exit margin 0s"},
		{"no cancel wait", func(b *stopBudget) { b.cancelWait = 0 }, "cancel wait 0s"},
		{"default past max", func(b *stopBudget) { b.defaultGrace = b.maxGrace + time.Second }, "default grace"},
		{"budgets eat the grace", func(b *stopBudget) {
			b.maxGrace = b.stopTimeout - b.cancelWait - b.release - b.flush - b.exitMargin - b.stopTimeout
		}, "max grace"},
		{"poll too long", func(b *stopBudget) { b.longestPoll = b.stopTimeout }, "longest poll"},
		{"settle call too long", func(b *stopBudget) { b.settleCall = b.stopTimeout }, "longest poll"},
	} {
		b := currentStopBudget()
		tt.mutate(&b)
		if p := strings.Join(b.problems(), "; "); !strings.Contains(p, tt.want) {
			t.Errorf("%s: problems %q, want one mentioning %q", tt.name, p, tt.want)
		}
	}
}

// The worst stop — the longest grace, jobs that ignore cancellation, SQS
// answering no release and no delete, a protection agent that hangs —
// still returns inside the stop timeout, with exitMargin to spare.
func TestStopEndsWithinTheStopTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 12
		bodies := make([]string, n)
		for i := range bodies {
			bodies[i] = fmt.Sprintf("configs/c%02d.yaml", i)
		}
		f := newFakeSQS(bodies...)
		f.visBatchHook = func(ctx context.Context) { <-ctx.Done() }
		f.deleteErrs = []error{errors.New("first delete fails")}
		var started sync.WaitGroup
		started.Add(n)
		unblock := make(chan struct{})
		proc := keyJobs(func(_ context.Context, key string) (Result, error) {
			started.Done()
			if key == "configs/c00.yaml" {
				return Result{RunID: "r"}, nil // a delete to flush
			}
			<-unblock
			return Result{RunID: "late"}, nil
		})
		agent := &hungSetter{release: make(chan struct{})}
		c := newTestConsumer(t, Config{Concurrency: n, Protection: &ecsprotect.Guard{Setter: agent}}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Stats)
		go func() { st, _ := c.Serve(ctx); done <- st }()
		started.Wait()
		cancel()
		signal := time.Now()
		st := <-done
		if took, limit := time.Since(signal), names.StopTimeout-exitMargin; took > limit {
			t.Errorf("stop took %v, want at most %v", took, limit)
		}
		if st.Released != n-1 {
			t.Errorf("released %d, want %d", st.Released, n-1)
		}
		close(unblock)
	})
}

func TestStopFinishesInFlightWithinGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		var stopped atomic.Bool
		var lateReceives atomic.Int32
		f.receiveHook = func(*sqs.ReceiveMessageInput) {
			if stopped.Load() {
				lateReceives.Add(1)
			}
		}
		started, finish := make(chan struct{}), make(chan struct{})
		var jobErr error
		proc := keyJobs(func(ctx context.Context, _ string) (Result, error) {
			close(started)
			<-finish
			jobErr = ctx.Err()
			return Result{RunID: "r"}, nil
		})
		c := newTestConsumer(t, Config{Grace: time.Minute}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.Serve(ctx); done <- err }()
		<-started
		stopped.Store(true)
		cancel()
		// Into the grace (before the first heartbeat, at 15 s), the job
		// still runs and Serve waits for it.
		time.Sleep(10 * time.Second)
		synctest.Wait()
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
		// The loop is sequential, so only the receive under way at the
		// signal can come after it; the loop never starts another.
		if n := lateReceives.Load(); n > 1 {
			t.Errorf("%d receives after the stop signal, want at most the one already under way", n)
		}
		deleted, vis, _, _ := f.snapshot()
		if !slices.Equal(deleted, []string{"m0"}) || len(vis) != 0 {
			t.Errorf("deleted %v, visibility %v: want m0 deleted and nothing released", deleted, vis)
		}
	})
}

func TestStopReleasesAfterGrace(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml", "configs/b.yaml")
		var started sync.WaitGroup
		started.Add(2)
		var stopAt time.Time
		var sawCancel sync.Map
		proc := keyJobs(func(ctx context.Context, key string) (Result, error) {
			started.Done()
			<-ctx.Done()
			sawCancel.Store(key, time.Since(stopAt))
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
		stopAt = time.Now()
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
			if v.(time.Duration) != grace {
				t.Errorf("%v cancelled %v after the stop signal, want at the end of the %v grace", k, v, grace)
			}
			return true
		})
	})
}

// A job that ignores cancellation has its message released by the stop;
// when it returns later, its message is settled already and is not deleted
// a second way.
func TestStopReleasesJobsThatIgnoreCancellation(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/stuck.yaml")
		started, unblock := make(chan struct{}), make(chan struct{})
		proc := keyJobs(func(context.Context, string) (Result, error) {
			close(started)
			<-unblock
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
		close(unblock)
		time.Sleep(time.Minute) // the late job returns; any delete would be sent by now
		synctest.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.deleteCalls != 0 {
			t.Errorf("%d delete calls after the release", f.deleteCalls)
		}
	})
}

// A long poll under way at the stop signal is not cut (SQS may hand
// messages to a dropped connection); what it brings is released at once
// and no job starts for it.
func TestStopReleasesWhatTheLastReceiveBrings(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		inPoll, signalled := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		f.receiveHook = func(*sqs.ReceiveMessageInput) {
			if calls.Add(1) == 2 { // the first receive finds the queue empty
				close(inPoll)
				<-signalled
				// Messages arrive while the long poll is still open.
				f.push("m0", "configs/a.yaml", 1)
				f.push("m1", "configs/b.yaml", 1)
			}
		}
		c := newTestConsumer(t, Config{}, f, ProcessorFunc(func(context.Context, *Message) (Result, error) {
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
	})
}

// Jobs that ignore cancellation are released in batches of ten, and the
// calls after the grace keep to their budgets however slow SQS is.
func TestStopReleasesStuckJobsInBatchesWithinBudget(t *testing.T) {
	t.Parallel()
	const n = 12
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("configs/c%02d.yaml", i)
	}
	for _, hang := range []bool{false, true} {
		t.Run(fmt.Sprintf("hang=%v", hang), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSQS(bodies...)
				if hang { // SQS answers no release at all
					f.visBatchHook = func(ctx context.Context) { <-ctx.Done() }
				}
				var started sync.WaitGroup
				started.Add(n)
				unblock := make(chan struct{})
				proc := keyJobs(func(context.Context, string) (Result, error) {
					started.Done()
					<-unblock
					return Result{RunID: "late"}, nil
				})
				const grace = 10 * time.Millisecond
				c := newTestConsumer(t, Config{Grace: grace, Concurrency: n}, f, proc)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan Stats)
				go func() { st, _ := c.Serve(ctx); done <- st }()
				started.Wait()
				cancel()
				signal := time.Now()
				st := <-done
				if took, limit := time.Since(signal), grace+cancelWait+releaseBudget+flushBudget; took > limit {
					t.Errorf("stop took %v, want at most grace + cancel wait + release + flush = %v", took, limit)
				}
				if st.Released != n {
					t.Errorf("released %d, want %d", st.Released, n)
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
			})
		})
	}
}

// A job that settles while the stop path runs still has its delete sent
// before Serve returns.
func TestStopWaitsForSettleUnderWay(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
		started := make(chan struct{})
		proc := keyJobs(func(ctx context.Context, _ string) (Result, error) {
			close(started)
			<-ctx.Done() // returns at the end of the grace, but successfully
			return Result{RunID: "r"}, nil
		})
		c := newTestConsumer(t, Config{Grace: 10 * time.Millisecond, Metrics: &emf.Writer{W: w, Namespace: "EDP"}}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := c.Serve(ctx); done <- err }()
		<-started
		cancel()
		<-w.entered // the settle is under way, held in its metrics line
		time.Sleep(time.Second)
		synctest.Wait()
		select {
		case <-done:
			t.Error("Serve returned while a settle was under way")
		default:
		}
		close(w.release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if deleted, vis, _, _ := f.snapshot(); !slices.Equal(deleted, []string{"m0"}) || len(vis) != 0 {
			t.Errorf("at return: deleted %v, visibility %v; want m0 deleted", deleted, vis)
		}
	})
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

// A job sees the stop signal at once (StopSignal), long before the grace
// ends; one that ends then with failure.ErrStopped has its message
// released at once, not retried after the retry delay.
func TestStopSignalReachesJobsAndStoppedJobsAreReleased(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml")
		started := make(chan struct{})
		var sawStop time.Duration
		var stopAt time.Time
		proc := keyJobs(func(ctx context.Context, _ string) (Result, error) {
			stop := StopSignal(ctx)
			if stop == nil {
				return Result{}, errors.New("no stop signal in the job's context")
			}
			close(started)
			<-stop
			sawStop = time.Since(stopAt)
			return Result{}, fmt.Errorf("job exit status 143: %w", failure.ErrStopped)
		})
		c := newTestConsumer(t, Config{Grace: time.Minute, RetryDelay: 30 * time.Second}, f, proc)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan Stats, 1)
		go func() { st, _ := c.Serve(ctx); done <- st }()
		<-started
		stopAt = time.Now()
		cancel()
		st := <-done
		if sawStop != 0 {
			t.Errorf("the job saw the stop %v after the signal, want at once", sawStop)
		}
		_, vis, dlq, _ := f.snapshot()
		if diff := cmp.Diff([]visCall{{"m0", 0}}, vis); diff != "" {
			t.Errorf("visibility changes (-want +got), want m0 released at once:\n%s", diff)
		}
		if st.Released != 1 || st.Retried != 0 || len(dlq) != 0 {
			t.Errorf("stats %+v, dlq %v: want one release", st, dlq)
		}
	})
	if StopSignal(context.Background()) != nil {
		t.Error("StopSignal outside a job is not nil")
	}
}
