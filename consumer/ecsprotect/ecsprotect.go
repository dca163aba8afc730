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
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// MaxExpiry is the longest protection ECS grants in one call (48 hours).
const MaxExpiry = 48 * time.Hour

// MaxReasonBytes bounds RefusedError.Reason (logged and put on the metric
// line): at most this many bytes of UTF-8, cut at a character boundary.
const MaxReasonBytes = 1000

// FailureMetric is the EMF metric (Count) a Guard emits for every
// protection request that did not take effect.
const FailureMetric = "ProtectionFailures"

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

// Guard keeps protection on while the consumer is busy and drops it when
// idle, calling the agent only when the state has to change or the current
// protection is about to lapse. It is safe for concurrent use; calls to the
// agent are serialized so they apply in order.
type Guard struct {
	// Setter applies the state; nil makes the Guard a no-op.
	Setter Setter
	// Expiry is how long each enable lasts; default 1 h. Busy renews it when
	// less than half remains, so it should exceed the longest job.
	Expiry time.Duration
	// Logger receives a warning for every request that failed or that the
	// agent refused, with the agent's reason; default: discard.
	Logger *slog.Logger
	// Metrics receives a FailureMetric line for every such request; nil
	// emits none.
	Metrics *emf.Writer
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu      sync.Mutex
	enabled bool
	until   time.Time
}

// Busy makes sure protection is on for at least half of Expiry from now.
func (g *Guard) Busy(ctx context.Context) {
	if g == nil || g.Setter == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	exp := g.expiry()
	now := g.now()
	if g.enabled && g.until.Sub(now) > exp/2 {
		return
	}
	if err := g.Setter.Set(ctx, true, exp); err != nil {
		g.failed(ctx, true, err)
		return
	}
	g.enabled, g.until = true, now.Add(exp)
}

// Idle drops protection if it is on.
func (g *Guard) Idle(ctx context.Context) {
	if g == nil || g.Setter == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.enabled {
		return
	}
	if err := g.Setter.Set(ctx, false, 0); err != nil {
		g.failed(ctx, false, err)
		return
	}
	g.enabled = false
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
	return time.Hour
}

func (g *Guard) now() time.Time {
	if g.Now != nil {
		return g.Now()
	}
	return time.Now()
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger != nil {
		return g.Logger
	}
	return slog.New(slog.DiscardHandler)
}
