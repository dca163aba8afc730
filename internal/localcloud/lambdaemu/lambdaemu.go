// Package lambdaemu runs a Lambda function's bootstrap (the executable of a
// provided.al2023 function, such as the alarm-dispatch Lambda) under AWS's
// own Runtime Interface Emulator, aws-lambda-rie
// (github.com/aws/aws-lambda-runtime-interface-emulator, a tool dependency in
// go.mod), as a local process with the deployed function's environment.
// moto cannot invoke Lambdas without Docker; with this package the local
// cloud runs the real binary, unmodified.
//
// The emulator is AWS's: the Runtime API, the function timeout, warm reuse
// of one execution environment, a cold start after a crash or a timeout,
// the init phase and the 6 MB response limit (docs/local.md has what was
// measured). This package adds only what the emulator leaves out:
//   - the 6 MB request limit and the JSON check of Lambda's Invoke API
//     (the emulator truncates a larger request and passes anything on);
//   - the error of an invocation, which the emulator answers without
//     Lambda's X-Amz-Function-Error header: a function error is recognized
//     by its error document, a timeout by the emulator's message;
//   - one invocation at a time (the emulator crashes on a second
//     concurrent one);
//   - asynchronous invocation around a function (see Async).
package lambdaemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults and limits, as Lambda has them.
const (
	// DefaultTimeout is Lambda's default function timeout.
	DefaultTimeout = 3 * time.Second
	// DefaultMemoryMB is Lambda's default memory size.
	DefaultMemoryMB = 128
	// MaxPayloadBytes limits a synchronous invocation's request payload
	// (the emulator enforces the response's).
	MaxPayloadBytes = 6 << 20
	// initLimit is Lambda's limit on the init phase: an invocation's answer
	// can take that long on top of the timeout.
	initLimit = 10 * time.Second
	// invokePath is the emulator's Invoke API.
	invokePath = "/2015-03-31/functions/function/invocations"
)

var (
	// ErrClosed is returned by Invoke after Close.
	ErrClosed = errors.New("lambda runtime closed")
	// ErrPayloadTooLarge is returned by Invoke for a payload above
	// MaxPayloadBytes (Lambda's RequestTooLargeException).
	ErrPayloadTooLarge = errors.New("request payload too large")
	// ErrInvalidPayload is returned by Invoke for a payload that is not
	// JSON (Lambda's InvalidRequestContentException).
	ErrInvalidPayload = errors.New("request payload is not JSON")
)

// Function describes the function to run. Name, Bootstrap and RIE are
// required; every other field works at its zero value.
type Function struct {
	// Name is AWS_LAMBDA_FUNCTION_NAME.
	Name string
	// Bootstrap is the path of the executable; its directory is the
	// working directory.
	Bootstrap string
	// RIE is the path of the aws-lambda-rie executable.
	RIE string
	// Env is the function's environment (its Environment.Variables), plus
	// whatever it should see locally, such as AWS_ENDPOINT_URL, AWS_REGION
	// and the credentials the execution role would supply. The process
	// inherits only PATH from the caller.
	Env map[string]string
	// Timeout is the function timeout, in whole seconds as Lambda has it
	// (rounded up). Default: DefaultTimeout.
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (not enforced). Default:
	// DefaultMemoryMB.
	MemoryMB int
	// Output receives the emulator's and the function's output. Default:
	// discarded.
	Output io.Writer
	// Track, when set, is called with the PID of the emulator (the leader
	// of its own process group) as soon as it has started; the func it
	// returns is called once the emulator has been stopped and reaped. (The
	// emulator starts the function's process in a group of its own; that
	// process exits when the emulator's Runtime API goes away: at once when
	// idle, when its handler returns when busy.) A caller records them so that
	// they can be stopped even if this process dies. Default: none.
	Track func(pid int) (untrack func())
}

// FunctionError is an invocation that ran and failed: the handler returned
// an error or panicked, the runtime exited, the function timed out, or init
// failed. Payload is the error document Lambda's Invoke API returns.
type FunctionError struct {
	// Type is errorType: the handler's error type name as the runtime
	// reports it, or Sandbox.Timedout, Runtime.ExitError,
	// Function.ResponseSizeTooLarge.
	Type string
	// Message is errorMessage.
	Message string
	// Payload is the error document ({"errorMessage":…,"errorType":…}).
	Payload []byte
}

// Error implements error.
func (e *FunctionError) Error() string {
	return fmt.Sprintf("lambda function error %s: %s", e.Type, e.Message)
}

// Runtime is a function running under the emulator. Its methods are safe
// for concurrent use.
type Runtime struct {
	fn      Function
	log     *slog.Logger
	url     string
	client  *http.Client
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the emulator has been reaped
	turn    chan struct{} // holds one token while an invocation runs
	closed  chan struct{} // closed by Close
	stop    sync.Once
	stopErr error
	untrack func() // forgets the process group once Close has ended it
}

// Start runs the emulator for fn on two free loopback ports (its Invoke
// API and the function's Runtime API) and waits until it answers. The
// bootstrap itself starts on the first invocation, as a cold start does.
// ctx bounds only the start. logger receives the package's own logs (nil:
// none).
func Start(ctx context.Context, fn Function, logger *slog.Logger) (*Runtime, error) {
	if fn.Name == "" || fn.Bootstrap == "" || fn.RIE == "" {
		return nil, errors.New("start lambda: Name, Bootstrap and RIE are required")
	}
	if fn.Timeout <= 0 {
		fn.Timeout = DefaultTimeout
	}
	fn.Timeout = time.Duration(int64((fn.Timeout+time.Second-1)/time.Second)) * time.Second
	if fn.MemoryMB <= 0 {
		fn.MemoryMB = DefaultMemoryMB
	}
	if fn.Output == nil {
		fn.Output = io.Discard
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bootstrap, err := filepath.Abs(fn.Bootstrap)
	if err != nil {
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	addrs, err := freeAddrs(2)
	if err != nil {
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	invokeAddr, runtimeAddr := addrs[0], addrs[1]
	cmd := exec.Command(fn.RIE, "--runtime-interface-emulator-address", invokeAddr,
		"--runtime-api-address", runtimeAddr, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = fn.environ()
	cmd.Stdout, cmd.Stderr = fn.Output, fn.Output
	cmd.WaitDelay = time.Second // a runtime holding the output pipe cannot block Wait
	ownGroup(cmd)               // a sweep of the recorded group stops the emulator, not its caller
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	untrack := func() {}
	if fn.Track != nil {
		untrack = fn.Track(cmd.Process.Pid)
	}
	r := &Runtime{
		fn: fn, log: logger.With("function_name", fn.Name), url: "http://" + invokeAddr + invokePath, cmd: cmd,
		// The emulator answers every invocation within the timeout
		// (and an init); this bounds only an emulator that hangs.
		client: &http.Client{Timeout: initLimit + 2*fn.Timeout},
		exited: make(chan struct{}), turn: make(chan struct{}, 1), closed: make(chan struct{}), untrack: untrack,
	}
	go func() { _ = cmd.Wait(); close(r.exited) }()
	if err := r.waitReady(ctx, invokeAddr); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	r.log.Info("lambda emulator started", "pid", cmd.Process.Pid, "invoke_api", invokeAddr, "runtime_api", runtimeAddr)
	return r, nil
}

// environ is the emulator's environment, which it passes on to the
// function, with the variables it reads itself.
func (f Function) environ() []string {
	vars := map[string]string{
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", // keep the SDK off instance metadata
	}
	for k, v := range f.Env {
		vars[k] = v
	}
	vars["AWS_LAMBDA_FUNCTION_NAME"] = f.Name
	vars["AWS_LAMBDA_FUNCTION_TIMEOUT"] = strconv.Itoa(int(f.Timeout / time.Second))
	vars["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = strconv.Itoa(f.MemoryMB)
	vars["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// freeAddrs returns n distinct loopback addresses nothing listens on at
// the moment.
func freeAddrs(n int) ([]string, error) {
	// Every listener stays open until all are chosen, so the ports differ;
	// another process may still take one before the emulator binds it
	// (start then fails, or the readiness check below finds no emulator).
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// waitReady waits until the emulator accepts connections on addr.
func (r *Runtime) waitReady(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			return c.Close()
		}
		select {
		case <-r.exited:
			return errors.New("aws-lambda-rie exited at start (see the function's log)")
		case <-ctx.Done():
			return fmt.Errorf("aws-lambda-rie not answering on %s: %w", addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Invoke runs one synchronous invocation with payload (a JSON document) and
// returns the function's response. Invocations run one at a time, in the
// order they arrive. A failed invocation returns a *FunctionError.
// Canceling ctx returns at once; the invocation still runs to its end in
// the emulator before the next one starts.
func (r *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, fmt.Errorf("invoke %s: %d bytes: %w", r.fn.Name, len(payload), ErrPayloadTooLarge)
	}
	if !json.Valid(payload) {
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrInvalidPayload)
	}
	select {
	case r.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: waiting for the function: %w", r.fn.Name, ctx.Err())
	case <-r.closed:
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
	type answer struct {
		result []byte
		err    error
	}
	done := make(chan answer, 1)
	began := time.Now()
	go func() {
		defer func() { <-r.turn }()
		result, err := r.post(bytes.Clone(payload))
		done <- answer{result, err}
	}()
	select {
	case a := <-done:
		attrs := []any{"duration_ms", time.Since(began).Milliseconds()}
		if a.err != nil {
			r.log.Info("lambda invocation failed", append(attrs, "error", a.err.Error())...)
		} else {
			r.log.Info("lambda invocation done", append(attrs, "response_bytes", len(a.result))...)
		}
		return a.result, a.err
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ctx.Err())
	}
}

// post sends one invocation to the emulator and reads its answer as
// Lambda's Invoke API would report it.
func (r *Runtime) post(payload []byte) ([]byte, error) {
	resp, err := r.client.Post(r.url, "application/json", bytes.NewReader(payload))
	if err != nil {
		if r.isClosed() {
			err = ErrClosed
		}
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPayloadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("invoke %s: read the answer: %w", r.fn.Name, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK && bytes.HasPrefix(body, []byte("Task timed out after ")):
		// The emulator's timeout (status 200, plain text); it has reset
		// the environment.
		return nil, newFunctionError("Sandbox.Timedout", string(body))
	case resp.StatusCode == http.StatusOK:
		if fe := asErrorDoc(body); fe != nil {
			return nil, fe
		}
		return body, nil
	case resp.StatusCode == http.StatusBadGateway:
		// A crash, a panic or a failed init; the environment is reset.
		if fe := asErrorDoc(body); fe != nil {
			return nil, fe
		}
		return nil, newFunctionError("Runtime.ExitError", "Runtime exited without providing a reason (see the function's log)")
	}
	return nil, fmt.Errorf("invoke %s: aws-lambda-rie answered %s: %s", r.fn.Name, resp.Status, body)
}

// asErrorDoc returns the function error whose document body is, or nil:
// an object with errorType and errorMessage and nothing but a stack trace
// besides, which is what a runtime posts to /invocation/{id}/error.
func asErrorDoc(body []byte) *FunctionError {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return nil
	}
	var typ, msg string
	if json.Unmarshal(doc["errorType"], &typ) != nil || typ == "" || json.Unmarshal(doc["errorMessage"], &msg) != nil {
		return nil
	}
	for k := range doc {
		if k != "errorType" && k != "errorMessage" && k != "stackTrace" {
			return nil
		}
	}
	return &FunctionError{Type: typ, Message: msg, Payload: body}
}

// newFunctionError builds a FunctionError with its document.
func newFunctionError(typ, message string) *FunctionError {
	payload, _ := json.Marshal(map[string]string{"errorMessage": message, "errorType": typ}) // strings: cannot fail
	return &FunctionError{Type: typ, Message: message, Payload: payload}
}

func (r *Runtime) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Close stops the emulator, which stops the function's process (SIGTERM,
// then SIGKILL after 5 s), and makes later Invoke calls fail with
// ErrClosed. It is safe to call more than once.
func (r *Runtime) Close() error {
	r.stop.Do(func() {
		close(r.closed)
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
			r.stopErr = fmt.Errorf("close lambda %s: aws-lambda-rie killed after 5s", r.fn.Name)
		}
		r.untrack()
	})
	return r.stopErr
}

// PID returns the emulator's process id.
func (r *Runtime) PID() int { return r.cmd.Process.Pid }
