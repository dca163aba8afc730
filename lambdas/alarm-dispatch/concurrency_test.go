package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// invocationKey labels an invocation's ctx, so the interleaving fake knows
// which invocation is calling it.
type invocationKey struct{}

// interleaver decides which of two invocations may call ECS next. Exactly
// one invocation holds the turn; the other blocks in its next call until the
// turn is handed to it. passAfter says, after each call, whether the turn
// passes to the other invocation. An invocation that has finished never gets
// the turn again, so the other runs on alone. Everything is channels and a
// mutex: the order of calls is fixed by the test, not by the scheduler, and
// nothing sleeps.
type interleaver struct {
	mu        sync.Mutex
	holder    string
	other     map[string]string
	wake      map[string]chan struct{} // the turn is handed over on these
	done      map[string]bool
	calls     map[string]int
	passAfter func(op string, call int) bool
	trace     []string
}

func newInterleaver(first, second string, passAfter func(op string, call int) bool) *interleaver {
	return &interleaver{
		holder:    first,
		other:     map[string]string{first: second, second: first},
		wake:      map[string]chan struct{}{first: make(chan struct{}, 1), second: make(chan struct{}, 1)},
		done:      map[string]bool{},
		calls:     map[string]int{},
		passAfter: passAfter,
	}
}

// acquire blocks until the invocation of ctx holds the turn.
func (s *interleaver) acquire(ctx context.Context) error {
	who, _ := ctx.Value(invocationKey{}).(string)
	s.mu.Lock()
	if s.holder == who {
		// A hand-over may have left its signal behind; consume it so it
		// cannot let this invocation through out of turn later.
		select {
		case <-s.wake[who]:
		default:
		}
		s.mu.Unlock()
		return nil
	}
	w, ok := s.wake[who]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("call from unknown invocation %q", who)
	}
	select {
	case <-w:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("invocation %s waiting for its turn: %w", who, ctx.Err())
	}
}

// release records the call just made and hands the turn over if passAfter
// says so.
func (s *interleaver) release(ctx context.Context, op string) {
	who, _ := ctx.Value(invocationKey{}).(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[who]++
	s.trace = append(s.trace, who+":"+op)
	if s.passAfter(op, s.calls[who]) {
		s.handTo(s.other[who])
	}
}

// finish marks an invocation as returned; if it held the turn, the other
// invocation gets it.
func (s *interleaver) finish(who string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done[who] = true
	if s.holder == who {
		s.handTo(s.other[who])
	}
}

// handTo gives the turn to next unless next has finished. Called with mu held.
func (s *interleaver) handTo(next string) {
	if s.done[next] || s.holder == next {
		return
	}
	s.holder = next
	s.wake[next] <- struct{}{} // capacity 1, and next held no signal: never blocks
}

func (s *interleaver) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.trace, " ")
}

// interleavedECS is a fakeECS whose every call waits for its invocation's turn.
type interleavedECS struct {
	*fakeECS
	turns *interleaver
}

func (e interleavedECS) ListTasks(ctx context.Context, in *ecs.ListTasksInput, opt ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	if err := e.turns.acquire(ctx); err != nil {
		return nil, err
	}
	defer e.turns.release(ctx, "ListTasks")
	return e.fakeECS.ListTasks(ctx, in, opt...)
}

func (e interleavedECS) RunTask(ctx context.Context, in *ecs.RunTaskInput, opt ...func(*ecs.Options)) (*ecs.RunTaskOutput, error) {
	if err := e.turns.acquire(ctx); err != nil {
		return nil, err
	}
	defer e.turns.release(ctx, "RunTask"+fmt.Sprint(aws.ToInt32(in.Count)))
	return e.fakeECS.RunTask(ctx, in, opt...)
}

// TestConcurrentInvocations runs two invocations at once against one ECS
// that counts what they start (RunTask adds to what ListTasks returns), in
// orders fixed by the fake, with a backlog that asks each of them for more
// than the cluster may hold. Both invocations read the cluster before either
// starts a task, so each plans from the same stale count; what keeps the
// total bounded is the re-read before every batch, and for a duplicate of
// the same notification the shared client tokens.
func TestConcurrentInvocations(t *testing.T) {
	t.Parallel()
	// The first ListTasks of each invocation is its decision; handing the
	// turn over after it makes both decide from the same count.
	betweenBatches := func(op string, call int) bool { return call == 1 || strings.HasPrefix(op, "RunTask") }
	everyCall := func(string, int) bool { return true }
	tests := []struct {
		name     string
		running  int // consumer tasks already running when the alarms arrive
		pass     func(op string, call int) bool
		second   string // fixture of the second invocation
		maxTasks int
		// wantMax bounds the running tasks at the end. Invocations whose
		// re-reads never coincide stay within max_tasks; in lockstep (both
		// read, then both start) the bound is max_tasks plus one batch.
		wantMax func(maxTasks int) int
	}{
		{
			name: "two state changes, batches alternate", pass: betweenBatches,
			second: "alarm-metric-math.json", maxTasks: 10,
			wantMax: func(m int) int { return m },
		},
		{
			name: "two state changes, batches alternate, max 25", running: 3, pass: betweenBatches,
			second: "alarm-metric-math.json", maxTasks: 25,
			wantMax: func(m int) int { return m },
		},
		{
			// Starting from an odd count, both invocations read 9 of 10 at
			// the same moment and each starts the one task that fits.
			name: "two state changes in lockstep", running: 1, pass: everyCall,
			second: "alarm-metric-math.json", maxTasks: 10,
			wantMax: func(m int) int { return m + batchSize(m) },
		},
		{
			name: "two state changes in lockstep, max 25", running: 2, pass: everyCall,
			second: "alarm-metric-math.json", maxTasks: 25,
			wantMax: func(m int) int { return m + batchSize(m) },
		},
		{
			// A duplicate delivery of one notification: the same tokens in
			// the same order, so ECS answers the second invocation's batches
			// with the first one's tasks.
			name: "duplicate delivery in lockstep", running: 1, pass: everyCall,
			second: "alarm-single-metric.json", maxTasks: 10,
			wantMax: func(m int) int { return m },
		},
		{
			name: "duplicate delivery, batches alternate", pass: betweenBatches,
			second: "alarm-single-metric.json", maxTasks: 10,
			wantMax: func(m int) int { return m },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.MaxTasks = tt.maxTasks
			ecsState := &fakeECS{running: tt.running}
			turns := newInterleaver("A", "B", tt.pass)
			e := interleavedECS{fakeECS: ecsState, turns: turns}
			queue := &fakeQueue{visible: 10000} // each invocation wants far more than max

			// Concurrent invocations run in separate Lambda environments:
			// one Handler each.
			evs := map[string]events.SNSEvent{
				"A": loadEvent(t, "alarm-single-metric.json"),
				"B": loadEvent(t, tt.second),
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard against a deadlock, not a pace
			defer cancel()
			var wg sync.WaitGroup
			errs := map[string]error{}
			var mu sync.Mutex
			for _, who := range []string{"A", "B"} {
				h, err := NewHandler(cfg, Deps{
					Queue: queue, Lister: e, Runner: e,
					Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
				})
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := h.Handle(context.WithValue(ctx, invocationKey{}, who), evs[who])
					turns.finish(who)
					mu.Lock()
					errs[who] = err
					mu.Unlock()
				}()
			}
			wg.Wait()

			for who, err := range errs {
				if err != nil {
					t.Errorf("invocation %s: %v", who, err)
				}
			}
			ecsState.mu.Lock()
			running := ecsState.running
			ecsState.mu.Unlock()
			t.Logf("running %d of max %d; calls: %s", running, cfg.MaxTasks, turns)
			if limit := tt.wantMax(cfg.MaxTasks); running > limit {
				t.Errorf("running tasks = %d, want at most %d (max_tasks %d)\ncalls: %s", running, limit, cfg.MaxTasks, turns)
			}
			// Concurrency must not cost capacity either: the cluster fills up.
			if running < cfg.MaxTasks {
				t.Errorf("running tasks = %d, want the cluster full at %d\ncalls: %s", running, cfg.MaxTasks, turns)
			}
		})
	}
}
