package worker

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// callsFor returns the recorded calls that concern message id, in order.
func callsFor(events []string, id string) []string {
	var out []string
	for _, e := range events {
		if strings.HasSuffix(e, " "+id) || strings.Contains(e, " "+id+" ") {
			out = append(out, e)
		}
	}
	return out
}

// While a job runs, its message is extended to the full visibility timeout
// every half of it; the delete comes after the last extension.
func TestHeartbeatExtendsUntilJobEnds(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/long.yaml")
		// 16 s with a 10 s visibility timeout: extensions at 5, 10 and 15 s.
		c := newTestConsumer(t, Config{VisibilityTimeout: 10 * time.Second}, f, keyJobs(func(context.Context, string) (Result, error) {
			time.Sleep(16 * time.Second)
			return Result{RunID: "r"}, nil
		}))
		if _, err := c.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		_, vis, _, events := f.snapshot()
		if diff := cmp.Diff([]visCall{{"m0", 10}, {"m0", 10}, {"m0", 10}}, vis); diff != "" {
			t.Errorf("extensions (-want +got):\n%s", diff)
		}
		// The delete is the last call for m0: no extension follows it.
		m0 := callsFor(events, "m0")
		if len(m0) == 0 || m0[len(m0)-1] != "delete m0" || slices.Index(m0, "delete m0") != len(m0)-1 {
			t.Errorf("calls for m0 %v: want the delete last, after every extension", m0)
		}
	})
}

// A job that ignores its timeout loses its hold on the message: the
// heartbeat ends at the job's deadline although the job still runs.
func TestHeartbeatStopsAtJobTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/fit.yaml")
		var overran time.Duration
		c := newTestConsumer(t, Config{VisibilityTimeout: 10 * time.Second, JobTimeout: 12 * time.Second}, f,
			keyJobs(func(ctx context.Context, _ string) (Result, error) {
				start := time.Now()
				<-ctx.Done() // like a CPU-bound fit, it notices nothing and goes on
				time.Sleep(30 * time.Second)
				overran = time.Since(start)
				return Result{RunID: "r"}, nil
			}))
		if _, err := c.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Extensions at 5 and 10 s, none at 15, 20, ... 40 s.
		_, vis, _, _ := f.snapshot()
		if diff := cmp.Diff([]visCall{{"m0", 10}, {"m0", 10}}, vis); diff != "" || overran != 42*time.Second {
			t.Errorf("a job that ran %v with a 12 s timeout: extensions (-want +got):\n%s", overran, diff)
		}
	})
}
