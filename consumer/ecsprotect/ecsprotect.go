// Package ecsprotect sets Amazon ECS task scale-in protection through the
// ECS agent's task-protection endpoint ($ECS_AGENT_URI/task-protection/v1/state),
// so a service scale-in or a deployment never stops a task that is busy
// with a job.
//
// The endpoint is reachable from inside the task only, and the agent makes
// the change by calling ecs:UpdateTaskProtection (ecs:GetTaskProtection to
// read it) with the task role's credentials: the task role needs both
// actions on the task (the stacks grant them on the cluster's tasks).
// Without them the agent answers with an AccessDeniedException and the task
// is not protected. Set returns such refusals as a *RefusedError carrying
// the agent's reason; a Guard logs every failed request as a warning and
// counts it in the ProtectionFailures metric. Outside ECS (no agent URI)
// every call is a no-op, which is how the consumer runs locally and in
// tests.
package ecsprotect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// MaxExpiry is the longest protection ECS grants in one call (48 hours).
const MaxExpiry = 48 * time.Hour

// MaxReasonBytes bounds RefusedError.Reason (logged and put on the metric
// line): at most this many bytes of UTF-8, cut at a character boundary.
const MaxReasonBytes = 1000

// FailureMetric is the EMF metric (Count) a Guard emits for every
// protection request that did not take effect.
const FailureMetric = names.MetricProtectionFailures

// RefusedError is the error Set returns when the agent answered but did not
// apply the change: a status other than 2xx, or a 200 whose body carries a
// "failure" (ECS refused the task, e.g. TASK_NOT_VALID) or an "error" (the
// agent's call to ECS failed, e.g. AccessDeniedException when the task role
// lacks ecs:UpdateTaskProtection).
type RefusedError struct {
	// Enabled is the state that was asked for.
	Enabled bool
	// Status is the agent's HTTP status code.
	Status int
	// Reason is what the agent reported: "Code: Message" of an error,
	// "Reason: Detail" of a failure, else the body or the status text.
	Reason string
}

// Error names the state asked for, the status and the agent's reason.
func (e *RefusedError) Error() string {
	return fmt.Sprintf("set task protection %v: agent refused (status %d): %s", e.Enabled, e.Status, e.Reason)
}

// Client calls the task-protection endpoint.
type Client struct {
	// AgentURI is the value of ECS_AGENT_URI; empty makes Set a no-op.
	AgentURI string
	// HTTP is the client used; default one with a 10 s timeout.
	HTTP *http.Client
}

// Enabled reports whether calls reach an agent (false outside ECS).
func (c *Client) Enabled() bool { return c != nil && c.AgentURI != "" }

// Set turns protection on for expiry (rounded up to whole minutes, 1 min to
// 48 h) or off.
func (c *Client) Set(ctx context.Context, enabled bool, expiry time.Duration) error {
	if !c.Enabled() {
		return nil
	}
	body := map[string]any{"ProtectionEnabled": enabled}
	if enabled {
		body["ExpiresInMinutes"] = minutes(expiry)
	}
	b, _ := json.Marshal(body)
	url := strings.TrimSuffix(c.AgentURI, "/") + "/task-protection/v1/state"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("set task protection %v: %w", enabled, err)
	}
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("set task protection %v: %w", enabled, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	// The agent answers 200 with a "failure" or "error" object when ECS
	// refused the change or could not be called, so the status code alone
	// is not enough.
	if reason, refused := refusal(resp, rb); refused {
		return &RefusedError{Enabled: enabled, Status: resp.StatusCode, Reason: reason}
	}
	return nil
}

// refusal reads the agent's answer: whether the change was refused and the
// reason it gives, in the documented shapes
// {"failure":{"Arn","Reason","Detail"}} and
// {"requestID","error":{"Arn","Code","Message"}}.
func refusal(resp *http.Response, body []byte) (reason string, refused bool) {
	var out struct {
		Failure *struct{ Reason, Detail string } `json:"failure"`
		Error   *struct{ Code, Message string }  `json:"error"`
	}
	_ = json.Unmarshal(body, &out) // a body that is not JSON is reported as it is
	join := func(a, b string) string {
		if a == "" || b == "" {
			return a + b
		}
		return a + ": " + b
	}
	switch {
	case out.Error != nil:
		reason = join(out.Error.Code, out.Error.Message)
	case out.Failure != nil:
		reason = join(out.Failure.Reason, out.Failure.Detail)
	case resp.StatusCode/100 == 2:
		return "", false
	default:
		reason = string(bytes.TrimSpace(body))
	}
	if reason == "" {
		reason = resp.Status
	}
	return textlimit.Clip(reason, MaxReasonBytes), true
}

func minutes(d time.Duration) int {
	m := int((d + time.Minute - 1) / time.Minute)
	return max(1, min(m, int(MaxExpiry/time.Minute)))
}

// Setter is what a Guard needs from a Client.
type Setter interface {
	Set(ctx context.Context, enabled bool, expiry time.Duration) error
}

// Defaults of Guard fields left at zero.
const (
	DefaultExpiry      = time.Hour
	DefaultCallTimeout = 2 * time.Second
	DefaultMaxBackoff  = time.Minute
)

// Guard keeps protection on while the consumer is busy and drops it when
// idle. Busy and Idle only record what is wanted and return at once: one
// goroutine of the Guard's own talks to the agent, so a slow or hung agent
// never holds up the caller (the receive loop). It calls the agent only when
// the state has to change or the protection is half spent (it renews on a
// timer while busy), gives each request CallTimeout, and after a failure
// waits 1 s, doubled per failure in a row up to MaxBackoff, before the next;
// requests apply in order. Stop drops protection and ends the goroutine.
//
// A request that failed without an answer (a timeout, a broken connection)
// may still have been applied, so after such an enable the Guard drops
// protection when idle as if it had been granted.
type Guard struct {
	// Setter applies the state; nil makes the Guard a no-op.
	Setter Setter
	// Expiry is how long each enable lasts; default 1 h. It is renewed when
	// less than half remains, so it should exceed the longest job.
	Expiry time.Duration
	// CallTimeout bounds one request to the agent; default 2 s.
	CallTimeout time.Duration
	// MaxBackoff caps the wait after failed requests; default 1 min.
	MaxBackoff time.Duration
	// Logger receives a warning for every request that failed or that the
	// agent refused, with the agent's reason; default: discard.
	Logger *slog.Logger
	// Metrics receives a FailureMetric line for every such request; nil
	// emits none.
	Metrics *emf.Writer

	mu      sync.Mutex
	want    bool // busy
	stopped bool
	start   sync.Once
	wake    chan struct{} // cap 1: "want changed"
	quit    chan struct{} // closed by Stop
	exited  chan struct{} // closed when the goroutine returns
	cancel  context.CancelFunc

	// Owned by the goroutine until it has exited, then by Stop.
	enabled bool      // the agent confirmed protection on
	maybeOn bool      // an enable may have been applied (no answer)
	until   time.Time // when a confirmed enable lapses
}

// Busy asks for protection to be on (and kept fresh). It never blocks.
func (g *Guard) Busy() { g.set(true) }

// Idle asks for protection to be dropped. It never blocks.
func (g *Guard) Idle() { g.set(false) }

func (g *Guard) set(busy bool) {
	if g == nil || g.Setter == nil {
		return
	}
	g.start.Do(g.run)
	g.mu.Lock()
	changed := g.want != busy && !g.stopped
	g.want = busy
	g.mu.Unlock()
	if changed {
		select {
		case g.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// Stop ends the Guard's goroutine (a request under way is abandoned) and
// then drops protection if it is, or may be, on, all within ctx. Busy and
// Idle do nothing afterwards.
func (g *Guard) Stop(ctx context.Context) {
	if g == nil || g.Setter == nil {
		return
	}
	g.start.Do(g.run)
	g.mu.Lock()
	first := !g.stopped
	g.stopped = true
	g.mu.Unlock()
	if !first {
		return
	}
	close(g.quit)
	g.cancel()
	select {
	case <-g.exited:
	case <-ctx.Done():
		return
	}
	if g.enabled || g.maybeOn {
		cctx, cancel := context.WithTimeout(ctx, g.callTimeout())
		defer cancel()
		g.apply(cctx, false)
	}
}

func (g *Guard) run() {
	g.wake = make(chan struct{}, 1)
	g.quit = make(chan struct{})
	g.exited = make(chan struct{})
	var base context.Context
	base, g.cancel = context.WithCancel(context.Background())
	go g.loop(base)
}

// loop brings the agent's state to the wanted one, renewing while busy and
// backing off after failures, until Stop.
func (g *Guard) loop(ctx context.Context) {
	defer close(g.exited)
	exp := g.expiry()
	failures := 0
	var retryAt time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		g.mu.Lock()
		busy := g.want
		g.mu.Unlock()
		now := time.Now()
		needed := false
		var wait time.Duration
		switch {
		case busy && (!g.enabled || g.until.Sub(now) <= exp/2):
			needed = true
		case busy:
			wait = g.until.Sub(now) - exp/2 // until the renewal is due
		case g.enabled || g.maybeOn:
			needed = true
		default:
			wait = -1 // nothing to do until asked
		}
		if needed && now.Before(retryAt) {
			needed, wait = false, retryAt.Sub(now)
		}
		if needed {
			cctx, cancel := context.WithTimeout(ctx, g.callTimeout())
			ok := g.apply(cctx, busy)
			cancel()
			if ok {
				failures, retryAt = 0, time.Time{}
			} else {
				failures++
				retryAt = time.Now().Add(g.backoff(failures))
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-g.quit:
			return
		case <-g.wake:
		case <-tc:
		}
		timer.Stop()
	}
}

// apply sends one request and records what is known afterwards. It reports
// whether the agent applied it.
func (g *Guard) apply(ctx context.Context, enabled bool) bool {
	exp := g.expiry()
	start := time.Now()
	err := g.Setter.Set(ctx, enabled, exp)
	var refused *RefusedError
	switch {
	case err == nil && enabled:
		g.enabled, g.maybeOn, g.until = true, false, start.Add(exp)
	case err == nil:
		g.enabled, g.maybeOn = false, false
	case enabled && !errors.As(err, &refused):
		// No answer: the agent may have applied it.
		g.maybeOn = true
	}
	// A request Stop abandoned (the only cancellation) is no failure.
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		g.failed(ctx, enabled, err)
	}
	return err == nil
}

// failed reports a request that did not take effect: a warning and a
// metric, since a task that believes it is protected but is not can be
// stopped mid-job.
func (g *Guard) failed(ctx context.Context, enabled bool, err error) {
	msg := "task protection not enabled"
	if !enabled {
		msg = "task protection not dropped"
	}
	reason := err.Error()
	attrs := []any{"error", err.Error()}
	var re *RefusedError
	if errors.As(err, &re) {
		reason = re.Reason
		attrs = append(attrs, "reason", re.Reason, "status", re.Status)
	}
	g.logger().WarnContext(ctx, msg, attrs...)
	m := []emf.Metric{{Name: FailureMetric, Unit: emf.Count, Value: 1}}
	if err := g.Metrics.Emit(m, map[string]any{"protection_enabled": enabled, "reason": reason}); err != nil {
		g.logger().WarnContext(ctx, "emit metrics", "error", err.Error())
	}
}

func (g *Guard) expiry() time.Duration {
	if g.Expiry > 0 {
		return min(g.Expiry, MaxExpiry)
	}
	return DefaultExpiry
}

func (g *Guard) callTimeout() time.Duration {
	if g.CallTimeout > 0 {
		return g.CallTimeout
	}
	return DefaultCallTimeout
}

// backoff is the wait after the nth failure in a row: 1 s, doubled per
// failure, capped at MaxBackoff.
func (g *Guard) backoff(n int) time.Duration {
	limit := g.MaxBackoff
	if limit <= 0 {
		limit = DefaultMaxBackoff
	}
	d := time.Second
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.New(slog.DiscardHandler)
}
