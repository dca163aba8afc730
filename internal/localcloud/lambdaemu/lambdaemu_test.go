package lambdaemu

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

const testFn = "internal/localcloud/lambdaemu/testdata/fn"

// reply is what the test function answers.
type reply struct {
	Count      int               `json:"count"`
	PID        int               `json:"pid"`
	DeadlineMs int64             `json:"deadline_ms"`
	Env        map[string]string `json:"env"`
}

func invoke(t *testing.T, r *Runtime, event string) (reply, error) {
	t.Helper()
	out, err := r.Invoke(t.Context(), []byte(event))
	var got reply
	if err == nil {
		if jerr := json.Unmarshal(out, &got); jerr != nil {
			t.Fatalf("response %.200s: %v", out, jerr)
		}
	}
	return got, err
}

// functionError asserts err is a *FunctionError of type typ.
func functionError(t *testing.T, err error, typ string) *FunctionError {
	t.Helper()
	var fe *FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v, want a function error %s", err, typ)
	}
	if fe.Type != typ {
		t.Fatalf("error type = %s (%s), want %s", fe.Type, fe.Message, typ)
	}
	var doc map[string]any
	if json.Unmarshal(fe.Payload, &doc) != nil || doc["errorType"] != typ {
		t.Errorf("payload = %s, want an error document of type %s", fe.Payload, typ)
	}
	return fe
}

// TestWarmEnvironment: the function gets the deployed environment and the
// emulator's reserved variables, its deadline is the timeout, and a second
// invocation reuses the process.
func TestWarmEnvironment(t *testing.T) {
	t.Parallel()
	r := start(t, Function{
		Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn), Timeout: 2500 * time.Millisecond, MemoryMB: 256,
		Env: map[string]string{"CUSTOM": "value=with=equals", "AWS_REGION": "eu-west-1"},
	})
	began := time.Now()
	first, err := invoke(t, r, `{"action":"echo"}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"CUSTOM": "value=with=equals", "AWS_REGION": "eu-west-1", "AWS_LAMBDA_FUNCTION_NAME": "edp-fn",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_ACCESS_KEY_ID": "test",
	}
	for k, v := range want {
		if first.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, first.Env[k], v)
		}
	}
	if _, ok := first.Env["HOME"]; ok {
		t.Errorf("HOME inherited from the caller")
	}
	// Rounded up to whole seconds, as Lambda has it.
	if d := time.UnixMilli(first.DeadlineMs).Sub(began); d < 2500*time.Millisecond || d > 3500*time.Millisecond {
		t.Errorf("deadline %v after the invocation, want about 3s", d)
	}
	second, err := invoke(t, r, `{"action":"echo"}`)
	if err != nil {
		t.Fatal(err)
	}
	if second.PID != first.PID || second.Count != 2 {
		t.Errorf("second invocation: pid %d count %d, want pid %d count 2 (warm)", second.PID, second.Count, first.PID)
	}
}

// TestFailures: each way an invocation fails is a function error of
// Lambda's type, and the environment is reused after a handled error but
// replaced (a cold start) after a panic, an exit or a timeout.
func TestFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		event, typ string
		cold       bool
	}{
		{`{"action":"fail"}`, "quotaError", false},
		{`{"action":"panic"}`, "string", true},
		{`{"action":"exit"}`, "Runtime.ExitError", true},
		{`{"action":"sleep","sleep":"3s"}`, "Sandbox.Timedout", true},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			t.Parallel()
			r := start(t, Function{Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn), Timeout: time.Second})
			before, err := invoke(t, r, `{"action":"echo"}`)
			if err != nil {
				t.Fatal(err)
			}
			began := time.Now()
			_, err = invoke(t, r, tc.event)
			took := time.Since(began)
			functionError(t, err, tc.typ)
			if tc.typ == "Sandbox.Timedout" && (took < time.Second || took > 2*time.Second) {
				t.Errorf("timed out after %v, want about the 1s timeout", took)
			}
			after, err := invoke(t, r, `{"action":"echo"}`)
			if err != nil {
				t.Fatalf("invocation after the failure: %v", err)
			}
			if cold := after.PID != before.PID; cold != tc.cold {
				t.Errorf("cold start after %s = %v, want %v", tc.typ, cold, tc.cold)
			}
		})
	}
}

// TestInitFailure: a bootstrap that exits during init fails each
// invocation with Runtime.ExitError, and each tries a new init.
func TestInitFailure(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	r := start(t, Function{
		Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn), Output: out,
		Env: map[string]string{"LAMBDAEMU_TEST_INIT": "exit"},
	})
	for range 2 {
		_, err := invoke(t, r, `{"action":"echo"}`)
		functionError(t, err, "Runtime.ExitError")
	}
	// The output is copied from the emulator's pipes as it comes: under
	// load the second init's line may arrive a moment after its answer.
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(out.String(), "init: missing configuration") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(out.String(), "init: missing configuration"); n != 2 {
		t.Errorf("%d inits, want 2:\n%s", n, out)
	}
}

// TestPayloadLimits: Lambda's 6 MB limits on the request and the response,
// and its refusal of a request that is not JSON.
func TestPayloadLimits(t *testing.T) {
	t.Parallel()
	r := start(t, Function{Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn)})
	big := `{"action":"echo","pad":"` + strings.Repeat("x", MaxPayloadBytes) + `"}`
	if _, err := r.Invoke(t.Context(), []byte(big)); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("7 MB request: %v, want ErrPayloadTooLarge", err)
	}
	if _, err := r.Invoke(t.Context(), []byte("hello")); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("non-JSON request: %v, want ErrInvalidPayload", err)
	}
	if _, err := invoke(t, r, `{"action":"echo","size":5000000}`); err != nil {
		t.Errorf("5 MB response: %v", err)
	}
	_, err := invoke(t, r, `{"action":"echo","size":6300000}`)
	functionError(t, err, "Function.ResponseSizeTooLarge")
}

// TestConcurrentInvocations: invocations from several goroutines run one
// after the other in one warm environment (the emulator itself crashes on
// a concurrent one).
func TestConcurrentInvocations(t *testing.T) {
	t.Parallel()
	r := start(t, Function{Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn)})
	var wg sync.WaitGroup
	counts := make(chan int, 4)
	for range 4 {
		wg.Go(func() {
			got, err := invoke(t, r, `{"action":"sleep","sleep":"100ms"}`)
			if err != nil {
				t.Error(err)
			}
			counts <- got.Count
		})
	}
	wg.Wait()
	close(counts)
	seen := 0
	for c := range counts {
		seen |= 1 << c
	}
	if seen != 0b11110 {
		t.Errorf("counts seen %b, want 1..4 from one process", seen)
	}
}

// TestCanceledThenClosed: a canceled invocation returns at once and the
// next one waits for it; after Close, Invoke fails with ErrClosed.
func TestCanceledThenClosed(t *testing.T) {
	t.Parallel()
	r := start(t, Function{Name: "edp-fn", Bootstrap: buildBootstrap(t, testFn), Timeout: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.Invoke(ctx, []byte(`{"action":"sleep","sleep":"1s"}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("canceled invocation: %v", err)
	}
	if _, err := invoke(t, r, `{"action":"echo"}`); err != nil {
		t.Errorf("invocation after a canceled one: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if _, err := r.Invoke(t.Context(), []byte(`{}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}
