package ecsprotect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/emf"
)

// agent is a fake ECS agent recording the protection requests it gets.
type agent struct {
	mu    sync.Mutex
	calls []map[string]any
	reply string
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut || r.URL.Path != "/v3/abc/task-protection/v1/state" {
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.calls = append(a.calls, body)
	reply := a.reply
	a.mu.Unlock()
	if reply == "" {
		reply = `{"protection":{"ProtectionEnabled":true,"TaskArn":"arn:aws:ecs:us-east-1:123456789012:task/c/abc"}}`
	}
	_, _ = io.WriteString(w, reply)
}

func (a *agent) got() []map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]map[string]any(nil), a.calls...)
}

func TestClientSet(t *testing.T) {
	t.Parallel()
	a := &agent{}
	srv := httptest.NewServer(a)
	defer srv.Close()
	c := &Client{AgentURI: srv.URL + "/v3/abc"}
	ctx := context.Background()
	if err := c.Set(ctx, true, 61*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, true, 100*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, false, 0); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"ProtectionEnabled": true, "ExpiresInMinutes": float64(2)},
		{"ProtectionEnabled": true, "ExpiresInMinutes": float64(2880)},
		{"ProtectionEnabled": false},
	}
	if diff := cmp.Diff(want, a.got()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	a := &agent{reply: `{"failure":{"Arn":"arn:aws:ecs:::task/x","Reason":"TASK_NOT_VALID"}}`}
	srv := httptest.NewServer(a)
	defer srv.Close()
	if err := (&Client{AgentURI: srv.URL + "/v3/abc"}).Set(context.Background(), true, time.Minute); err == nil {
		t.Error("agent failure reply: want error")
	}
	if err := (&Client{AgentURI: srv.URL + "/wrong"}).Set(context.Background(), true, time.Minute); err == nil {
		t.Error("404: want error")
	}
	if err := (&Client{}).Set(context.Background(), true, time.Minute); err != nil {
		t.Errorf("outside ECS: want no-op, got %v", err)
	}
	if (&Client{}).Enabled() {
		t.Error("Enabled() without agent URI")
	}
}

type fakeSetter struct {
	calls []string
	err   error
}

func (f *fakeSetter) Set(_ context.Context, enabled bool, expiry time.Duration) error {
	if enabled {
		f.calls = append(f.calls, "on "+expiry.String())
	} else {
		f.calls = append(f.calls, "off")
	}
	return f.err
}

func TestGuard(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &fakeSetter{}
	g := &Guard{Setter: s, Expiry: 30 * time.Minute, Now: func() time.Time { return now }}
	ctx := context.Background()

	g.Idle(ctx) // never enabled: nothing to drop
	g.Busy(ctx)
	g.Busy(ctx) // still fresh: no call
	now = now.Add(16 * time.Minute)
	g.Busy(ctx) // less than half left: renew
	g.Idle(ctx)
	g.Idle(ctx) // already off
	g.Busy(ctx)

	want := []string{"on 30m0s", "on 30m0s", "off", "on 30m0s"}
	if diff := cmp.Diff(want, s.calls); diff != "" {
		t.Errorf("agent calls (-want +got):\n%s", diff)
	}
}

func TestGuardRetriesAfterFailure(t *testing.T) {
	t.Parallel()
	s := &fakeSetter{err: errors.New("agent down")}
	g := &Guard{Setter: s}
	ctx := context.Background()
	g.Busy(ctx)
	g.Busy(ctx) // the first enable failed, so try again
	s.err = nil
	g.Busy(ctx)
	g.Busy(ctx)
	want := []string{"on 1h0m0s", "on 1h0m0s", "on 1h0m0s"}
	if diff := cmp.Diff(want, s.calls); diff != "" {
		t.Errorf("agent calls (-want +got):\n%s", diff)
	}
	var nilGuard *Guard
	nilGuard.Busy(ctx)
	nilGuard.Idle(ctx)
}

// A refused request must be loud: a warning with the agent's reason and a
// ProtectionFailures metric. The bodies are the shapes the ECS agent
// documents for its task-protection endpoint.
func TestGuardReportsRefusals(t *testing.T) {
	t.Parallel()
	const denied = `User: arn:aws:sts::123456789012:assumed-role/edp-task/abc is not authorized to perform: ecs:UpdateTaskProtection on resource: arn:aws:ecs:us-east-1:123456789012:task/edp/abc because no identity-based policy allows the ecs:UpdateTaskProtection action`
	tests := []struct {
		name   string
		status int
		reply  string
		reason string
	}{
		{"access denied", http.StatusOK,
			`{"requestID":"12345-abc","error":{"Arn":"arn:aws:ecs:us-east-1:123456789012:task/edp/abc","Code":"AccessDeniedException","Message":"` + denied + `"}}`,
			"AccessDeniedException: " + denied},
		{"ECS failure", http.StatusOK,
			`{"failure":{"Arn":"arn:aws:ecs:us-east-1:123456789012:task/edp/abc","Detail":null,"Reason":"TASK_NOT_VALID"}}`,
			"TASK_NOT_VALID"},
		{"timeout calling ECS", http.StatusOK,
			`{"error":{"Arn":"arn:aws:ecs:us-east-1:123456789012:task/edp/abc","Code":"RequestCanceled","Message":"Timed out calling Amazon ECS Task Protection API"}}`,
			"RequestCanceled: Timed out calling Amazon ECS Task Protection API"},
		{"bad request", http.StatusBadRequest, `{"error":{"Code":"InvalidParameterException","Message":"Invalid request"}}`,
			"InvalidParameterException: Invalid request"},
		{"server error without a body", http.StatusInternalServerError, "", "500 Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.reply)
			}))
			defer srv.Close()
			var logs, metrics bytes.Buffer
			g := &Guard{
				Setter:  &Client{AgentURI: srv.URL + "/v3/abc"},
				Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
				Metrics: &emf.Writer{W: &metrics, Namespace: "EDP"},
			}
			g.Busy(context.Background())

			var line struct {
				Level, Msg, Reason string
				Status             int
			}
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("want one JSON log line, got %q: %v", logs.String(), err)
			}
			if line.Level != "WARN" || line.Msg != "task protection not enabled" || line.Reason != tt.reason || line.Status != tt.status {
				t.Errorf("log line %+v, want WARN with reason %q and status %d", line, tt.reason, tt.status)
			}
			var m map[string]any
			if err := json.Unmarshal(metrics.Bytes(), &m); err != nil {
				t.Fatalf("want one EMF line, got %q: %v", metrics.String(), err)
			}
			if m[FailureMetric] != float64(1) || m["reason"] != tt.reason || m["protection_enabled"] != true {
				t.Errorf("EMF line %v, want %s 1 with the reason", m, FailureMetric)
			}
		})
	}
}

// A failed call counts too (the agent cannot be reached), and so does a
// refused drop; successful calls emit nothing.
func TestGuardCountsEveryFailedRequest(t *testing.T) {
	t.Parallel()
	var metrics bytes.Buffer
	s := &fakeSetter{}
	g := &Guard{Setter: s, Metrics: &emf.Writer{W: &metrics, Namespace: "EDP"}}
	ctx := context.Background()
	g.Busy(ctx)
	if metrics.Len() != 0 {
		t.Fatalf("a successful enable emitted %q", metrics.String())
	}
	s.err = errors.New("dial tcp 169.254.170.2:80: connection refused")
	g.Idle(ctx)
	var m map[string]any
	if err := json.Unmarshal(metrics.Bytes(), &m); err != nil {
		t.Fatalf("want one EMF line, got %q: %v", metrics.String(), err)
	}
	if m[FailureMetric] != float64(1) || m["protection_enabled"] != false || m["reason"] != s.err.Error() {
		t.Errorf("EMF line %v, want a failed drop", m)
	}
}

// The agent's reason is cut to MaxReasonBytes at a character, never inside
// one: a long error message of multi-byte text stays valid UTF-8.
func TestRefusalReasonIsCutAtACharacter(t *testing.T) {
	t.Parallel()
	msg := strings.Repeat("a", MaxReasonBytes-len("AccessDeniedException: ")-1) + strings.Repeat("é", 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := json.Marshal(map[string]any{"error": map[string]string{"Code": "AccessDeniedException", "Message": msg}})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	err := (&Client{AgentURI: srv.URL}).Set(context.Background(), true, time.Minute)
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("Set() = %v, want a *RefusedError", err)
	}
	if !utf8.ValidString(re.Reason) || len(re.Reason) > MaxReasonBytes || !strings.HasPrefix(re.Reason, "AccessDeniedException: aaa") {
		t.Errorf("reason of %d bytes (valid UTF-8: %v) ending %q: want valid UTF-8 of at most %d bytes",
			len(re.Reason), utf8.ValidString(re.Reason), re.Reason[max(0, len(re.Reason)-8):], MaxReasonBytes)
	}
}
