// Package ecsprotect sets Amazon ECS task scale-in protection through the
// ECS agent's task-protection endpoint ($ECS_AGENT_URI/task-protection/v1/state),
// so a service scale-in never stops a task that is busy with a job.
//
// The endpoint is reachable from inside the task only and needs no IAM
// permission of the task role. Outside ECS (no agent URI) every call is a
// no-op, which is how the consumer runs locally and in tests.
package ecsprotect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// MaxExpiry is the longest protection ECS grants in one call (48 hours).
const MaxExpiry = 48 * time.Hour

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
	// refused the change, so the status code alone is not enough.
	var out struct {
		Failure json.RawMessage `json:"failure"`
		Error   json.RawMessage `json:"error"`
	}
	_ = json.Unmarshal(rb, &out)
	if resp.StatusCode/100 != 2 || len(out.Failure) > 0 || len(out.Error) > 0 {
		return fmt.Errorf("set task protection %v: status %d: %s", enabled, resp.StatusCode, bytes.TrimSpace(rb))
	}
	return nil
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
	// Logger receives warnings when the agent refuses; default: discard.
	Logger *slog.Logger
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
		g.logger().WarnContext(ctx, "task protection not enabled", "error", err.Error())
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
		g.logger().WarnContext(ctx, "task protection not dropped", "error", err.Error())
		return
	}
	g.enabled = false
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
