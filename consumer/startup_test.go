package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// logLines decodes a JSON log into msg/check pairs, in order.
func logLines(t *testing.T, b *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var rec struct{ Msg, Check string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, rec.Msg+" "+rec.Check)
	}
	return out
}

func TestRunStartChecks(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ok := func(ctx context.Context) error {
		if d, has := ctx.Deadline(); !has || time.Until(d) > timeout {
			return errors.New("no deadline of its own")
		}
		return nil
	}
	boom := func(context.Context) error { return errors.New("boom") }
	mustNotRun := func(context.Context) error { panic("a check ran after a failed one") }

	tests := map[string]struct {
		checks   []func(context.Context) error
		wantErr  string // "" = no error
		wantLogs []string
	}{
		"all pass": {checks: []func(context.Context) error{ok, ok},
			wantLogs: []string{"start-up check queue", "start-up check passed queue", "start-up check bucket", "start-up check passed bucket"}},
		"no answer": {checks: []func(context.Context) error{hang, mustNotRun},
			wantErr: "queue q: no answer within 50ms: context deadline exceeded", wantLogs: []string{"start-up check queue"}},
		"second hangs": {checks: []func(context.Context) error{ok, hang},
			wantErr:  "bucket b: no answer within 50ms",
			wantLogs: []string{"start-up check queue", "start-up check passed queue", "start-up check bucket"}},
		"refused": {checks: []func(context.Context) error{boom, mustNotRun},
			wantErr: "queue q: boom", wantLogs: []string{"start-up check queue"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			resources := []startCheck{
				{name: "queue", resource: "queue q", attrs: []any{"queue_url", "q"}},
				{name: "bucket", resource: "bucket b", attrs: []any{"bucket", "b"}},
			}
			for i, run := range tt.checks {
				resources[i].run = run
			}
			err := runStartChecks(context.Background(), log, timeout, resources...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantLogs, logLines(t, &logs)); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}

// A deadline that passed is a timeout the caller can test for; a stop by the
// caller's context is not reported as "no answer".
func TestRunStartChecksTellsTimeoutFromStop(t *testing.T) {
	t.Parallel()
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	err := runStartChecks(context.Background(), slog.New(slog.DiscardHandler), time.Millisecond,
		startCheck{name: "queue", resource: "queue q", run: hang})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v, want it to wrap context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = runStartChecks(ctx, slog.New(slog.DiscardHandler), time.Hour,
		startCheck{name: "queue", resource: "queue q", run: hang})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "no answer") {
		t.Errorf("stopped: %v, want context.Canceled and no %q", err, "no answer")
	}
}
