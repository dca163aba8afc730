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
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
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

// fakeSetter is an agent answering at once, recording every request with
// the (fake) time it came.
type fakeSetter struct {
	mu    sync.Mutex
	start time.Time
	calls []string // "<seconds since start> on <expiry>" or "... off"
	err   error
}

func newFakeSetter() *fakeSetter { return &fakeSetter{start: time.Now()} }

func (f *fakeSetter) Set(_ context.Context, enabled bool, expiry time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	at := fmt.Sprintf("%gs ", time.Since(f.start).Seconds())
	if enabled {
		f.calls = append(f.calls, at+"on "+expiry.String())
	} else {
		f.calls = append(f.calls, at+"off")
	}
	return f.err
}

func (f *fakeSetter) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeSetter) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// The Guard calls the agent only when the state must change or the
// protection is half spent, renewing on its own while busy.
func TestGuard(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newFakeSetter()
		g := &Guard{Setter: s, Expiry: 30 * time.Minute}
		g.Idle() // never enabled: nothing to drop
		synctest.Wait()
		g.Busy()
		g.Busy() // already asked for
		synctest.Wait()
		time.Sleep(16 * time.Minute) // renewed at 15 min, half the expiry
		g.Idle()
		g.Idle() // already off
		synctest.Wait()
		g.Busy()
		synctest.Wait()
		g.Stop(t.Context()) // drops what is on
		g.Busy()            // after Stop: nothing
		synctest.Wait()

		want := []string{"0s on 30m0s", "900s on 30m0s", "960s off", "960s on 30m0s", "960s off"}
		if diff := cmp.Diff(want, s.got()); diff != "" {
			t.Errorf("agent calls (-want +got):\n%s", diff)
		}
	})
}

// Busy and Idle never wait for the agent; a failed request is retried after
// 1 s, doubled per failure in a row, however often the caller asks, and
// requests in the meantime coalesce to the latest wish.
func TestGuardBacksOffAfterFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newFakeSetter()
		s.setErr(errors.New("agent down"))
		g := &Guard{Setter: s, MaxBackoff: 4 * time.Second}
		for range 100 { // a busy receive loop asking on every receive
			g.Busy()
			time.Sleep(100 * time.Millisecond)
		}
		s.setErr(nil)
		time.Sleep(5 * time.Second)
		g.Idle()
		g.Busy() // back to busy before the guard got to the drop
		synctest.Wait()
		want := []string{"0s on 1h0m0s", "1s on 1h0m0s", "3s on 1h0m0s", "7s on 1h0m0s", "11s on 1h0m0s"}
		if diff := cmp.Diff(want, s.got()); diff != "" {
			t.Errorf("agent calls (-want +got):\n%s", diff)
		}
		g.Stop(t.Context())

		var nilGuard *Guard
		nilGuard.Busy()
		nilGuard.Idle()
		nilGuard.Stop(t.Context())
		(&Guard{}).Busy() // no Setter: a no-op
	})
}

// hungAgent accepts every request and never answers: a call ends with its
// context. It records the deadline each call was given.
type hungAgent struct {
	mu        sync.Mutex
	deadlines []time.Duration
}

func (h *hungAgent) Set(ctx context.Context, _ bool, _ time.Duration) error {
	d, _ := ctx.Deadline()
	h.mu.Lock()
	h.deadlines = append(h.deadlines, time.Until(d))
	h.mu.Unlock()
	<-ctx.Done()
	return ctx.Err()
}

func (h *hungAgent) got() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]time.Duration(nil), h.deadlines...)
}

// A hung agent costs the Guard a short deadline per request, then backoff;
// Stop abandons the request under way and still tries a drop (the hung
// enable may have been applied), within its own deadline.
func TestGuardWithAHungAgent(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		a := &hungAgent{}
		var logs bytes.Buffer
		g := &Guard{Setter: a, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
		g.Busy()
		time.Sleep(8 * time.Second) // requests at 0 s, 3 s (2 s + 1 s), 7 s (5 s + 2 s), the last under way
		synctest.Wait()
		if got := a.got(); !cmp.Equal(got, []time.Duration{2 * time.Second, 2 * time.Second, 2 * time.Second}) {
			t.Errorf("request deadlines %v, want three of %v", got, DefaultCallTimeout)
		}
		start := time.Now()
		g.Stop(t.Context())
		if got := a.got(); len(got) != 4 || time.Since(start) != DefaultCallTimeout {
			t.Errorf("Stop took %v with requests %v: want the one under way abandoned and one drop of %v", time.Since(start), got, DefaultCallTimeout)
		}
		if n := strings.Count(logs.String(), `"msg":"task protection not enabled"`); n != 2 {
			t.Errorf("%d warnings for the enables that timed out, want 2 (the abandoned one is not a failure):\n%s", n, logs.String())
		}
		if !strings.Contains(logs.String(), `"msg":"task protection not dropped"`) {
			t.Errorf("no warning for the drop that timed out:\n%s", logs.String())
		}
	})
}

// refusedBy is an agent whose every answer is err.
type refusedBy struct{ err error }

func (r refusedBy) Set(context.Context, bool, time.Duration) error { return r.err }

// A refused request must be loud: a warning with the agent's reason and a
// ProtectionFailures metric. The bodies are the shapes the ECS agent
// documents for its task-protection endpoint; the Client turns them into a
// *RefusedError, which the Guard reports.
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
			err := (&Client{AgentURI: srv.URL + "/v3/abc"}).Set(context.Background(), true, time.Hour)
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != tt.reason || re.Status != tt.status || !re.Enabled {
				t.Fatalf("Set() = %#v, want a *RefusedError with reason %q and status %d", err, tt.reason, tt.status)
			}

			synctest.Test(t, func(t *testing.T) {
				var logs, metrics bytes.Buffer
				g := &Guard{
					Setter:  refusedBy{err},
					Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
					Metrics: &emf.Writer{W: &metrics, Namespace: "EDP"},
				}
				g.Busy()
				synctest.Wait()
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
				// Only serve tasks protect themselves: what they emit, the
				// service stack's dashboard must chart.
				d, err := emf.Decode(metrics.Bytes())
				if err != nil {
					t.Fatal(err)
				}
				for name := range d.Metrics {
					if !slices.Contains(names.ConsumerMetrics(names.ModeServe), name) {
						t.Errorf("metric %s is not in names.ConsumerMetrics(serve): no dashboard charts it", name)
					}
				}
				// A refusal is an answer: the task is known not to be
				// protected, so Stop has nothing to drop.
				g.Stop(t.Context())
				if n := strings.Count(metrics.String(), "\n"); n != 1 {
					t.Errorf("%d EMF lines after Stop, want 1:\n%s", n, metrics.String())
				}
			})
		})
	}
}

// A failed call counts too (the agent cannot be reached), and so does a
// failed drop; successful calls emit nothing.
func TestGuardCountsEveryFailedRequest(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var metrics bytes.Buffer
		s := newFakeSetter()
		g := &Guard{Setter: s, Metrics: &emf.Writer{W: &metrics, Namespace: "EDP"}}
		g.Busy()
		synctest.Wait()
		if metrics.Len() != 0 {
			t.Fatalf("a successful enable emitted %q", metrics.String())
		}
		s.setErr(errors.New("dial tcp 169.254.170.2:80: connection refused"))
		g.Idle()
		synctest.Wait()
		var m map[string]any
		if err := json.Unmarshal(metrics.Bytes(), &m); err != nil {
			t.Fatalf("want one EMF line, got %q: %v", metrics.String(), err)
		}
		if m[FailureMetric] != float64(1) || m["protection_enabled"] != false || m["reason"] != "dial tcp 169.254.170.2:80: connection refused" {
			t.Errorf("EMF line %v, want a failed drop", m)
		}
		s.setErr(nil)
		g.Stop(t.Context())
	})
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
