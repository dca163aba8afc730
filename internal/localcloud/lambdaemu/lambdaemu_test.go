package lambdaemu

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const testFn = "internal/localcloud/lambdaemu/testdata/fn"

// fnResponse mirrors the test function's response.
type fnResponse struct {
	Count       int               `json:"count"`
	PID         int               `json:"pid"`
	RequestID   string            `json:"request_id"`
	FunctionArn string            `json:"function_arn"`
	DeadlineMs  int64             `json:"deadline_ms"`
	TraceID     string            `json:"trace_id"`
	Env         map[string]string `json:"env"`
	Text        string            `json:"text"`
	ChildPID    int               `json:"child_pid"`
}

// startFn starts the test function with fn's settings (Bootstrap filled
// in) and closes it when the test ends.
func startFn(t *testing.T, fn Function) (*Runtime, *syncBuffer) {
	t.Helper()
	fn.Bootstrap = buildBootstrap(t, testFn)
	if fn.Name == "" && fn.Arn == "" {
		fn.Name = "edp-test-fn"
	}
	out := &syncBuffer{}
	fn.Output = out
	log := slog.New(slog.NewJSONHandler(testWriter{t}, nil))
	r, err := Start(t.Context(), fn, log)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r, out
}

// call invokes the test function with an action and decodes its answer.
func call(t *testing.T, r *Runtime, action string, extra ...string) (fnResponse, error) {
	t.Helper()
	req := map[string]string{"action": action}
	for i := 0; i+1 < len(extra); i += 2 {
		req[extra[i]] = extra[i+1]
	}
	payload, _ := json.Marshal(req)
	out, err := r.Invoke(t.Context(), payload)
	if err != nil {
		return fnResponse{}, err
	}
	var resp fnResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return resp, nil
}

// functionError asserts err is a *FunctionError of the given type.
func functionError(t *testing.T, err error, typ string) *FunctionError {
	t.Helper()
	var fe *FunctionError
	if !errors.As(err, &fe) {
		t.Fatalf("error = %v (%T), want a *FunctionError", err, err)
	}
	if fe.Type != typ {
		t.Fatalf("errorType = %q (message %q), want %q", fe.Type, fe.Message, typ)
	}
	var doc map[string]any
	if err := json.Unmarshal(fe.Payload, &doc); err != nil || doc["errorType"] != typ || doc["errorMessage"] != fe.Message {
		t.Fatalf("payload %s does not carry errorType %q and the message", fe.Payload, typ)
	}
	return fe
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestInvokeResponse: the runtime gets the invocation headers and the
// reserved environment, and its response comes back as the result.
func TestInvokeResponse(t *testing.T) {
	t.Parallel()
	const arn = "arn:aws:lambda:eu-central-1:123456789012:function:edp-dispatch"
	r, _ := startFn(t, Function{
		Arn:      arn,
		Env:      map[string]string{"CUSTOM": "from the function", "AWS_REGION": "ignored: reserved"},
		Timeout:  10 * time.Second,
		MemoryMB: 256,
	})
	before := time.Now()
	resp, err := call(t, r, "echo", "text", "hello")
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Text != "hello" || resp.Count != 1 {
		t.Errorf("response = %+v, want the echoed text from the first invocation", resp)
	}
	if !uuidRe.MatchString(resp.RequestID) {
		t.Errorf("request id %q is not a UUID", resp.RequestID)
	}
	if resp.FunctionArn != arn {
		t.Errorf("invoked function ARN = %q, want %q", resp.FunctionArn, arn)
	}
	if lo, hi := before.Add(10*time.Second).UnixMilli()-1, after.Add(10*time.Second).UnixMilli(); resp.DeadlineMs < lo || resp.DeadlineMs > hi {
		t.Errorf("deadline %d ms, want within [%d, %d] (invocation time + timeout)", resp.DeadlineMs, lo, hi)
	}
	if !strings.HasPrefix(resp.TraceID, "Root=1-") || !strings.Contains(resp.TraceID, ";Parent=") {
		t.Errorf("trace id %q is not an X-Ray trace header", resp.TraceID)
	}
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "edp-dispatch",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_REGION":                      "eu-central-1",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(r.fn.Bootstrap),
		"TZ":                              ":UTC",
		"CUSTOM":                          "from the function",
		"AWS_ACCESS_KEY_ID":               "test",
	}
	for k, v := range want {
		if resp.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, resp.Env[k], v)
		}
	}
	if home, ok := resp.Env["HOME"]; ok {
		t.Errorf("HOME = %q leaked from the caller's environment", home)
	}
}

// TestInvokeSequential: one warm environment serves invocation after
// invocation, and concurrent callers are queued, one at a time.
func TestInvokeSequential(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	var pid int
	for i := 1; i <= 3; i++ {
		resp, err := call(t, r, "echo")
		if err != nil {
			t.Fatalf("invocation %d: %v", i, err)
		}
		if resp.Count != i {
			t.Errorf("invocation %d was the process's invocation %d", i, resp.Count)
		}
		if pid == 0 {
			pid = resp.PID
		} else if resp.PID != pid {
			t.Errorf("invocation %d ran in process %d, want the warm %d", i, resp.PID, pid)
		}
	}
	if r.PID() != pid {
		t.Errorf("PID() = %d, want %d", r.PID(), pid)
	}

	const n = 6
	counts := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, err := call(t, r, "sleep", "sleep", "20ms")
			if err != nil {
				t.Errorf("concurrent invocation: %v", err)
				return
			}
			counts <- resp.Count
		})
	}
	wg.Wait()
	close(counts)
	seen := map[int]bool{}
	for c := range counts {
		seen[c] = true
	}
	for c := 4; c < 4+n; c++ {
		if !seen[c] {
			t.Errorf("no invocation was the process's number %d: got %v", c, seen)
		}
	}
}

// TestInvokeFunctionError: a handler error is a *FunctionError with the
// error's type name, and the environment stays warm.
func TestInvokeFunctionError(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	_, err := call(t, r, "fail", "text", "disk")
	fe := functionError(t, err, "quotaError")
	if fe.Message != "quota exceeded: disk" || !uuidRe.MatchString(fe.RequestID) {
		t.Errorf("function error = %+v", fe)
	}
	resp, err := call(t, r, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 2 {
		t.Errorf("after a handler error the next invocation was the process's number %d, want 2 (same process)", resp.Count)
	}
}

// TestInvokePanic: a panic is reported with the panic value's type and a
// stack trace; aws-lambda-go then exits, and the next invocation gets a new
// environment.
func TestInvokePanic(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	first, err := call(t, r, "echo")
	if err != nil {
		t.Fatal(err)
	}
	_, err = call(t, r, "panic", "text", "queue is negative")
	fe := functionError(t, err, "brokenInvariant")
	if fe.Message != "broken invariant: queue is negative" {
		t.Errorf("message = %q", fe.Message)
	}
	if !strings.Contains(string(fe.Payload), `"stackTrace"`) {
		t.Errorf("payload %s has no stackTrace", fe.Payload)
	}
	resp, err := call(t, r, "echo")
	if err != nil {
		t.Fatalf("invocation after the panic: %v", err)
	}
	if resp.PID == first.PID || resp.Count != 1 {
		t.Errorf("after a panic: process %d invocation %d, want a new process (not %d) on its first invocation", resp.PID, resp.Count, first.PID)
	}
}

// TestInvokeTimeout: a function that runs past its timeout fails with
// Sandbox.Timedout at the deadline and is replaced.
func TestInvokeTimeout(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{Timeout: 500 * time.Millisecond})
	first, err := call(t, r, "echo")
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err = call(t, r, "sleep", "sleep", "30s")
	took := time.Since(begin)
	fe := functionError(t, err, "Sandbox.Timedout")
	if !strings.Contains(fe.Message, "Task timed out after 0.50 seconds") {
		t.Errorf("message = %q", fe.Message)
	}
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Errorf("timed out after %v, want about 0.5s", took)
	}
	resp, err := call(t, r, "echo")
	if err != nil {
		t.Fatalf("invocation after the timeout: %v", err)
	}
	if resp.PID == first.PID {
		t.Errorf("the timed-out process %d served again", first.PID)
	}
}

// TestInvokeRuntimeExit: a runtime that exits mid-invocation is
// Runtime.ExitError with its exit status.
func TestInvokeRuntimeExit(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	_, err := call(t, r, "exit")
	fe := functionError(t, err, "Runtime.ExitError")
	if !strings.Contains(fe.Message, "Runtime exited with error: exit status 3") {
		t.Errorf("message = %q", fe.Message)
	}
	if _, err := call(t, r, "echo"); err != nil {
		t.Fatalf("invocation after the exit: %v", err)
	}
}

// TestInitFailure: a runtime that exits during init, or reports an init
// error through the API, fails the invocation that waited for it; every
// later invocation tries a new init, as Lambda does.
func TestInitFailure(t *testing.T) {
	t.Parallel()
	t.Run("exit", func(t *testing.T) {
		t.Parallel()
		r, out := startFn(t, Function{Env: map[string]string{"LAMBDAEMU_TEST_INIT": "exit"}})
		for i := range 2 {
			_, err := call(t, r, "echo")
			fe := functionError(t, err, "Runtime.ExitError")
			if !strings.Contains(fe.Message, "exit status 2") {
				t.Errorf("attempt %d: message = %q", i, fe.Message)
			}
		}
		// Both processes have been reaped, so their output is complete.
		if got := strings.Count(out.String(), "init: missing configuration"); got != 2 {
			t.Errorf("init ran %d times, want 2 (once per invocation):\n%s", got, out)
		}
	})
	t.Run("reported", func(t *testing.T) {
		t.Parallel()
		r, _ := startFn(t, Function{Env: map[string]string{"LAMBDAEMU_TEST_INIT": "report"}})
		_, err := call(t, r, "echo")
		// The body's errorType wins over the header's.
		fe := functionError(t, err, "InitConfigError")
		if fe.Message != "config bucket unreadable" {
			t.Errorf("message = %q", fe.Message)
		}
	})
}

// TestInvokeCanceled: a caller that gives up gets its context's error (not
// a function error), and the abandoned environment is replaced.
func TestInvokeCanceled(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{Timeout: time.Minute})
	first, err := call(t, r, "echo")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = r.Invoke(ctx, []byte(`{"action":"sleep","sleep":"30s"}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
	resp, err := call(t, r, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if resp.PID == first.PID {
		t.Errorf("the abandoned process %d served again", first.PID)
	}
}

// TestInvokeRejectsBadPayload: what Lambda's Invoke API refuses never
// reaches the function.
func TestInvokeRejectsBadPayload(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	if _, err := r.Invoke(t.Context(), []byte("not json")); !errors.Is(err, ErrInvalidPayload) {
		t.Errorf("non-JSON payload: error = %v, want ErrInvalidPayload", err)
	}
	big := append(append([]byte(`"`), make([]byte, MaxPayloadBytes)...), '"')
	if _, err := r.Invoke(t.Context(), big); !errors.Is(err, ErrPayloadTooLarge) {
		t.Errorf("7 MB payload: error = %v, want ErrPayloadTooLarge", err)
	}
	resp, err := call(t, r, "echo")
	if err != nil || resp.Count != 1 {
		t.Errorf("first real invocation: %+v, %v; want the process's first", resp, err)
	}
}

// TestStartErrors: a missing bootstrap or name fails Start.
func TestStartErrors(t *testing.T) {
	t.Parallel()
	if _, err := Start(t.Context(), Function{Name: "f", Bootstrap: filepath.Join(t.TempDir(), "bootstrap")}, nil); err == nil {
		t.Error("Start with a missing bootstrap succeeded")
	}
	if _, err := Start(t.Context(), Function{Bootstrap: "bootstrap"}, nil); err == nil {
		t.Error("Start without Name or Arn succeeded")
	}
}

// testWriter sends the emulator's logs to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
