package lambdaemu

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAsync: an event is attempted once plus the configured retries; when
// every attempt fails, the on-failure destination gets Lambda's invocation
// record (the event, the count, the last function error); a success or a
// missing destination sends nothing.
func TestAsync(t *testing.T) {
	t.Parallel()
	fnErr := newFunctionError("joinError", "read queue attributes: refused")
	for _, tc := range []struct {
		name        string
		retries     int
		failures    int // attempts that fail before one succeeds
		destination bool
		attempts    int
		record      bool
		err         bool
	}{
		{"first attempt succeeds", 2, 0, true, 1, false, false},
		{"a retry succeeds", 2, 2, true, 3, false, false},
		{"retries exhausted", 2, 9, true, 3, true, false},
		{"no retries", 0, 9, true, 1, true, false},
		{"no destination", 1, 9, false, 2, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			attempts := 0
			var records [][]byte
			a := Async{
				FunctionArn: "arn:aws:lambda:us-east-1:123456789012:function:fn",
				Retries:     tc.retries,
				Attempt: func(_ context.Context, event []byte) ([]byte, error) {
					attempts++
					if attempts <= tc.failures {
						return nil, fnErr
					}
					return []byte("null"), nil
				},
			}
			if tc.destination {
				a.OnFailure = func(_ context.Context, record []byte) error {
					records = append(records, record)
					return nil
				}
			}
			err := a.Invoke(t.Context(), []byte(`{"Records":[]}`))
			if (err != nil) != tc.err || (err != nil && !errors.Is(err, fnErr)) {
				t.Errorf("Invoke = %v, want error %v", err, tc.err)
			}
			if attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
			if len(records) != map[bool]int{true: 1}[tc.record] {
				t.Fatalf("%d records, want record %v", len(records), tc.record)
			}
			if !tc.record {
				return
			}
			var got struct {
				RequestContext  map[string]any
				RequestPayload  map[string]any
				ResponseContext map[string]any
				ResponsePayload map[string]any
			}
			if err := json.Unmarshal(records[0], &got); err != nil {
				t.Fatal(err)
			}
			delete(got.RequestContext, "requestId")
			want := map[string]any{
				"functionArn": a.FunctionArn + ":$LATEST", "condition": "RetriesExhausted",
				"approximateInvokeCount": float64(tc.attempts),
			}
			if d := cmp.Diff(want, got.RequestContext); d != "" {
				t.Errorf("requestContext (-want +got):\n%s", d)
			}
			if d := cmp.Diff(map[string]any{"Records": []any{}}, got.RequestPayload); d != "" {
				t.Errorf("requestPayload (-want +got):\n%s", d)
			}
			if got.ResponseContext["functionError"] != "Unhandled" || got.ResponsePayload["errorType"] != "joinError" {
				t.Errorf("response: %v %v", got.ResponseContext, got.ResponsePayload)
			}
		})
	}
}
