package e2e

// Fault tests: the real binary against moto_server with faults put between
// them by internal/faultproxy (lost responses, resets, throttling) or by a
// fake ECS agent that never answers.

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/internal/names"
)

// silentAgent is an ECS agent that accepts every task-protection request
// and never answers it (until the test ends).
type silentAgent struct {
	URL      string
	requests atomic.Int32
}

func newSilentAgent(t testing.TB) *silentAgent {
	t.Helper()
	a := &silentAgent{}
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		select {
		case <-r.Context().Done():
		case <-quit:
		}
	}))
	t.Cleanup(func() { close(quit); srv.Close() })
	a.URL = srv.URL
	return a
}

// waitSucceeded polls until n configs have a succeeded run record, or
// fails after timeout (a bound for a test that would otherwise hang, not a
// speed requirement).
func (p *pipeline) waitSucceeded(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok := 0
		for _, rs := range p.records(t) {
			if len(rs) > 0 && rs[0].Status == job.StatusSucceeded {
				ok++
			}
		}
		if ok >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d configs succeeded after %v", ok, n, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A hanging ECS agent must not slow serve mode down (issue 9, item 5):
// with one worker every upload needs a receive of its own, and before the
// fix each of those receives waited for the agent (10 s per upload). Now
// every upload is done while the agent has answered nothing, and the agent
// is asked a few times (short deadline, backoff), not once per receive.
func TestServeWithHangingAgent(t *testing.T) {
	t.Parallel()
	const n = 20
	p := newPipeline(t, 30, 3)
	agent := newSilentAgent(t)
	p.putConfigs(t, "hung-agent", n)
	p.waitQueued(t, n, 60*time.Second)

	start := time.Now()
	c := startChild(t, p.env(names.EnvVisibilityTimeout+"=30", names.EnvConcurrency+"=1",
		"ECS_AGENT_URI="+agent.URL+"/v4/task-1"), "serve")
	p.waitSucceeded(t, n, 60*time.Second)
	t.Logf("%d uploads done in %v; the agent got %d requests and answered none", n, time.Since(start), agent.requests.Load())
	if r := agent.requests.Load(); r < 1 || r > n/2 {
		t.Errorf("the agent got %d requests for %d uploads: want at least one, and far fewer than one per receive", r, n)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The agent's silence is reported, not hidden.
	c.waitLog(t, time.Second, `"level":"WARN"`, `"msg":"task protection not `, "context deadline exceeded")
	p.assertQueueEmpty(t)
	p.assertDLQEmpty(t)
	if recs := p.records(t); len(recs) != n {
		t.Errorf("%d configs have records, want %d", len(recs), n)
	}
}
