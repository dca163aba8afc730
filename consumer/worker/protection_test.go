package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
)

// countingHungSetter is an ECS agent that accepts every request and never
// answers it: each call blocks until its context ends.
type countingHungSetter struct{ calls atomic.Int32 }

func (h *countingHungSetter) Set(ctx context.Context, _ bool, _ time.Duration) error {
	h.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// A hanging ECS agent must not slow serve mode down: every job is received
// and done while the agent's requests hang, and the agent is asked a few
// times (a short deadline, then backoff), not once per receive. Fake time
// (synctest) makes "while it hangs" exact.
func TestServeDoesNotWaitForAHangingAgent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const n = 10
		var bodies []string
		for i := range n {
			bodies = append(bodies, fmt.Sprintf("configs/c%d.yaml", i))
		}
		f := newFakeSQS(bodies...)
		agent := &countingHungSetter{}
		var done atomic.Int32
		// One worker: every message needs a receive of its own.
		c := newTestConsumer(t, Config{Concurrency: 1, Protection: &ecsprotect.Guard{Setter: agent}}, f,
			keyJobs(func(context.Context, string) (Result, error) {
				done.Add(1)
				return Result{RunID: "r"}, nil
			}))
		ctx, cancel := context.WithCancel(t.Context())
		stopped := make(chan error)
		go func() { _, err := c.Serve(ctx); stopped <- err }()

		time.Sleep(5 * time.Second) // of fake time: every goroutine is blocked or waiting on a timer
		synctest.Wait()
		f.mu.Lock()
		receives := len(f.receiveMax)
		f.mu.Unlock()
		deleted, _, _, _ := f.snapshot()
		if got := done.Load(); got != n || len(deleted) != n {
			t.Errorf("%d of %d jobs done, %d deleted, within 5 s while the agent hangs", got, n, len(deleted))
		}
		// A request has a short deadline and a failure backs off, so the
		// agent hears about it a few times, not on each of the receives.
		if calls := agent.calls.Load(); calls < 1 || calls > 3 {
			t.Errorf("%d protection requests in 5 s (%d receives): want 1 to 3", calls, receives)
		}
		cancel()
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		f.assertNoneHeld(t)
	})
}
