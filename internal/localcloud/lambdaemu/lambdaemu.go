// Package lambdaemu runs a Lambda function's bootstrap (the executable of a
// provided.al2023 function, such as the alarm-dispatch Lambda) as a local
// process behind a local implementation of the Lambda Runtime API, the HTTP
// API that AWS_LAMBDA_RUNTIME_API points the runtime at. moto cannot invoke
// Lambdas without Docker; with this package the local cloud runs the real
// binary, unmodified, with the deployed function's environment.
//
// What is emulated, as the Lambda developer guide describes it ("Using the
// Lambda runtime API for custom runtimes", "Lambda execution environment
// lifecycle", "Defined runtime environment variables"):
//
//   - the four Runtime API calls of version 2018-06-01: GET
//     /runtime/invocation/next with the Lambda-Runtime-Aws-Request-Id,
//     -Deadline-Ms, -Invoked-Function-Arn and -Trace-Id headers; POST
//     /runtime/invocation/{id}/response (with the error trailers of a failed
//     streamed response); POST /runtime/invocation/{id}/error; POST
//     /runtime/init/error;
//   - one execution environment at a time, reused between invocations
//     (warm starts), invocations queued in arrival order;
//   - the reserved environment variables (AWS_LAMBDA_FUNCTION_NAME, _VERSION,
//     _MEMORY_SIZE, AWS_REGION, _HANDLER, LAMBDA_TASK_ROOT, TZ, …) on top of
//     the function's own;
//   - the function timeout (Sandbox.Timedout), a runtime that exits
//     (Runtime.ExitError) or reports an init error: each resets the
//     environment, and the next invocation starts a new process (a cold
//     start), as Lambda does;
//   - the 6 MB limits of a synchronous request and response.
//
// Each execution environment gets its own Runtime API on a new 127.0.0.1
// port (AWS_LAMBDA_RUNTIME_API), so a replaced process can never take an
// invocation meant for its successor. A runtime that has not asked for an
// invocation within Lambda's 10 s init limit plus the function timeout is
// reset as timed out.
//
// Not emulated: memory limits and CPU scaling by MemoryMB (the value is only
// passed on), concurrency beyond one environment, freezing the process
// between invocations, the Extensions and Telemetry APIs, X-Ray, the Invoke
// API's asynchronous retries and destinations (the caller decides), and
// credentials of an execution role (the function's Env supplies them, or
// placeholders are set).
package lambdaemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults and limits, as Lambda has them.
const (
	// DefaultTimeout is Lambda's default function timeout.
	DefaultTimeout = 3 * time.Second
	// DefaultMemoryMB is Lambda's default memory size.
	DefaultMemoryMB = 128
	// DefaultHandler is the handler name of a provided.al2023 function
	// built as a single bootstrap executable.
	DefaultHandler = "bootstrap"
	// MaxPayloadBytes limits a synchronous invocation's request and
	// response payloads.
	MaxPayloadBytes = 6 << 20
	// initLimit bounds the init phase: the runtime must ask for its first
	// invocation within it.
	initLimit = 10 * time.Second
	// defaultRegion is used when neither the ARN nor Env names one.
	defaultRegion = "us-east-1"
	// defaultAccount fills the ARN of a function given by name only; it is
	// the account id moto_server uses by default.
	defaultAccount = "123456789012"
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

// Function describes the function to run. Bootstrap is required; every other
// field works at its zero value.
type Function struct {
	// Name is AWS_LAMBDA_FUNCTION_NAME. Default: the function name in Arn.
	Name string
	// Arn is the Lambda-Runtime-Invoked-Function-Arn of every invocation,
	// and its region becomes AWS_REGION. Default:
	// arn:aws:lambda:<region>:123456789012:function:<Name>.
	Arn string
	// Bootstrap is the path of the executable; its directory is the
	// working directory and LAMBDA_TASK_ROOT. Required.
	Bootstrap string
	// Handler is _HANDLER. Default: DefaultHandler.
	Handler string
	// Env is the function's environment (its Environment.Variables), plus
	// whatever the emulator should pass, such as AWS_ENDPOINT_URL and the
	// credentials the execution role would supply. Lambda's reserved
	// variables set by the emulator take precedence over Env, except the
	// credentials. The process inherits nothing else from the caller.
	Env map[string]string
	// Timeout is the function timeout. Default: DefaultTimeout.
	Timeout time.Duration
	// MemoryMB is AWS_LAMBDA_FUNCTION_MEMORY_SIZE (not enforced). Default:
	// DefaultMemoryMB.
	MemoryMB int
	// Output receives the process's stdout and stderr (one goroutine
	// writes at a time). Default: discarded.
	Output io.Writer
	// Track, when set, is called with the PID of each bootstrap process
	// (the leader of its own process group) as soon as it has started; the
	// func it returns is called once the group has been killed and the
	// process reaped. A caller records them so that they can be stopped
	// even if this process dies. Default: none.
	Track func(pid int) (untrack func())
}

// withDefaults fills unset fields and checks the required ones.
func (f Function) withDefaults() (Function, error) {
	if f.Bootstrap == "" {
		return f, errors.New("function: Bootstrap is required")
	}
	abs, err := filepath.Abs(f.Bootstrap)
	if err != nil {
		return f, fmt.Errorf("function: bootstrap path %s: %w", f.Bootstrap, err)
	}
	f.Bootstrap = abs
	if f.Name == "" {
		if i := strings.LastIndex(f.Arn, ":function:"); i >= 0 {
			f.Name, _, _ = strings.Cut(f.Arn[i+len(":function:"):], ":")
		}
	}
	if f.Name == "" {
		return f, errors.New("function: Name or Arn is required")
	}
	if f.Arn == "" {
		f.Arn = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", f.region(), defaultAccount, f.Name)
	}
	if f.Handler == "" {
		f.Handler = DefaultHandler
	}
	if f.Timeout <= 0 {
		f.Timeout = DefaultTimeout
	}
	if f.MemoryMB <= 0 {
		f.MemoryMB = DefaultMemoryMB
	}
	if f.Output == nil {
		f.Output = io.Discard
	}
	return f, nil
}

// region is the ARN's region, else Env's AWS_REGION, else defaultRegion.
func (f Function) region() string {
	if parts := strings.Split(f.Arn, ":"); len(parts) > 3 && parts[3] != "" {
		return parts[3]
	}
	if r := f.Env["AWS_REGION"]; r != "" {
		return r
	}
	return defaultRegion
}

// environ builds the process environment for a Runtime API at addr.
func (f Function) environ(addr, logStream string) []string {
	vars := map[string]string{
		// Unreserved: Lambda sets them, the function may override them.
		"PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
		"LANG": "en_US.UTF-8",
		// Credentials are reserved in Lambda, where the execution role
		// supplies them; here Env does, or placeholders keep the SDK from
		// probing instance metadata.
		"AWS_ACCESS_KEY_ID":     "test",
		"AWS_SECRET_ACCESS_KEY": "test",
	}
	for k, v := range f.Env {
		vars[k] = v
	}
	region := f.region()
	dir := filepath.Dir(f.Bootstrap)
	for k, v := range map[string]string{
		"_HANDLER":                        f.Handler,
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              region,
		"AWS_LAMBDA_FUNCTION_NAME":        f.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(f.MemoryMB),
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + f.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      logStream,
		"AWS_LAMBDA_RUNTIME_API":          addr,
		"LAMBDA_TASK_ROOT":                dir,
		"LAMBDA_RUNTIME_DIR":              dir,
		"TZ":                              ":UTC",
	} {
		vars[k] = v
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// FunctionError is an invocation that ran and failed: the handler returned
// an error or panicked, the runtime exited, the function timed out, or init
// failed. Lambda's Invoke API reports these with status 200 and an
// X-Amz-Function-Error header; Payload is the error document it returns.
type FunctionError struct {
	// RequestID is the invocation's request id.
	RequestID string
	// Type is errorType: the handler's error type name as the runtime
	// reports it, or Sandbox.Timedout, Runtime.ExitError,
	// Runtime.ResponseError or Function.ResponseSizeTooLarge from the
	// emulator.
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

// errorDoc is the error document of the Runtime API and the Invoke API.
type errorDoc struct {
	Message    string          `json:"errorMessage"`
	Type       string          `json:"errorType"`
	StackTrace json.RawMessage `json:"stackTrace,omitempty"`
}

// newFunctionError builds a FunctionError the emulator itself reports.
func newFunctionError(requestID, typ, message string) *FunctionError {
	payload, _ := json.Marshal(errorDoc{Message: message, Type: typ}) // strings only: cannot fail
	return &FunctionError{RequestID: requestID, Type: typ, Message: message, Payload: payload}
}

// Runtime is a running function: a local Runtime API and the bootstrap
// process of its current execution environment. Its methods are safe for
// concurrent use.
type Runtime struct {
	fn  Function
	log *slog.Logger

	turn      chan struct{} // holds one token while an invocation runs
	closed    chan struct{}
	closeOnce sync.Once

	mu  sync.Mutex
	env *environment // nil until started or after a reset
}

// Start serves a Runtime API on a loopback port and starts fn's bootstrap
// in its own process group with the function's environment (see Function).
// ctx bounds only the start; the process runs until Close or until an
// invocation resets it. Start fails if the bootstrap cannot be started; a
// function whose init fails starts fine and reports the failure on its
// first invocation, as Lambda does. logger receives the emulator's own
// logs (nil: none).
func Start(ctx context.Context, fn Function, logger *slog.Logger) (*Runtime, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	fn, err := fn.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("start lambda: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{
		fn:     fn,
		log:    logger.With("function_name", fn.Name),
		turn:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	env, err := startEnvironment(fn, r.log)
	if err != nil {
		return nil, fmt.Errorf("start lambda %s: %w", fn.Name, err)
	}
	r.env = env
	return r, nil
}

// Invoke runs one synchronous invocation with payload (a JSON document) and
// returns the function's response. Invocations run one at a time, in the
// order they arrive; each has the function's timeout from the moment the
// runtime receives it. A failed invocation returns a *FunctionError.
// Canceling ctx while the function runs abandons the invocation and resets
// the environment (the process is killed).
func (r *Runtime) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayloadBytes {
		return nil, fmt.Errorf("invoke %s: %d bytes: %w", r.fn.Name, len(payload), ErrPayloadTooLarge)
	}
	if !json.Valid(payload) {
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrInvalidPayload)
	}
	select {
	case r.turn <- struct{}{}:
		defer func() { <-r.turn }()
	case <-ctx.Done():
		return nil, fmt.Errorf("invoke %s: waiting for the function: %w", r.fn.Name, ctx.Err())
	case <-r.closed:
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
	requestID := newUUID()
	began := time.Now()
	result, err := r.invoke(ctx, requestID, bytes.Clone(payload))
	attrs := []any{"request_id", requestID, "duration_ms", time.Since(began).Milliseconds()}
	var fe *FunctionError
	switch {
	case errors.As(err, &fe):
		r.log.Info("lambda invocation failed", append(attrs, "error_type", fe.Type, "error", fe.Message)...)
	case err != nil:
		r.log.Info("lambda invocation abandoned", append(attrs, "error", err.Error())...)
	default:
		r.log.Info("lambda invocation done", append(attrs, "response_bytes", len(result))...)
	}
	return result, err
}

// invoke hands inv to an execution environment and waits for its outcome.
// An environment that finished its init and has since exited (after a
// panic, say) is replaced once, silently, as Lambda would; one that exits
// during init reports its init failure.
func (r *Runtime) invoke(ctx context.Context, requestID string, payload []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		env, err := r.environment()
		if err != nil {
			return nil, err
		}
		// A fresh invocation per attempt: a handler of a replaced
		// environment may still hold the previous one.
		result, retry, err := r.invokeIn(ctx, env, newInvocation(requestID, payload))
		if retry && attempt == 0 {
			continue
		}
		return result, err
	}
}

// environment returns the current execution environment, starting a new
// one (a cold start) if there is none.
func (r *Runtime) environment() (*environment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosed() {
		return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
	if r.env == nil {
		env, err := startEnvironment(r.fn, r.log)
		if err != nil {
			return nil, fmt.Errorf("invoke %s: %w", r.fn.Name, err)
		}
		r.env = env
	}
	return r.env, nil
}

// reset discards env (if it is still the current one) and stops it.
func (r *Runtime) reset(env *environment, reason string) {
	r.mu.Lock()
	if r.env == env {
		r.env = nil
	}
	r.mu.Unlock()
	r.log.Info("lambda environment reset", "pid", env.pid, "reason", reason)
	if err := env.stop(); err != nil {
		r.log.Warn("lambda environment did not stop", "pid", env.pid, "error", err.Error())
	}
}

// invokeIn runs inv in env. retry reports that env had finished its init
// and then exited without taking inv, so a fresh environment should take it
// (err is then the exit, for when there is no second chance).
func (r *Runtime) invokeIn(ctx context.Context, env *environment, inv *invocation) (result []byte, retry bool, err error) {
	// Hand the invocation to the runtime's GET /next.
	pickup := time.NewTimer(initLimit + r.fn.Timeout)
	defer pickup.Stop()
	select {
	case env.next <- inv:
	case <-env.exited:
		return r.lost(env, inv)
	case <-env.initFailed:
		r.reset(env, "init error")
		return nil, false, env.initError(inv.id)
	case <-pickup.C:
		r.reset(env, "init timed out")
		return nil, false, timeoutError(inv.id, initLimit+r.fn.Timeout)
	case <-ctx.Done():
		return nil, false, fmt.Errorf("invoke %s: waiting for the runtime: %w", r.fn.Name, ctx.Err())
	case <-r.closed:
		return nil, false, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
	<-inv.accepted // closed by the GET /next handler right after receiving inv
	if inv.undelivered {
		// The request that took it came from a process already gone.
		return r.lost(env, inv)
	}
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	select {
	case out := <-inv.done:
		return out.result, false, out.err
	case <-env.exited:
		// A runtime may answer and then exit (aws-lambda-go does after a
		// panic): the answer counts.
		select {
		case out := <-inv.done:
			return out.result, false, out.err
		default:
		}
		if r.isClosed() {
			return nil, false, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
		}
		r.reset(env, "runtime exited during the invocation")
		return nil, false, exitError(inv.id, env.exitErr)
	case <-timer.C:
		r.reset(env, "function timed out")
		return nil, false, timeoutError(inv.id, r.fn.Timeout)
	case <-ctx.Done():
		r.reset(env, "invocation abandoned by the caller")
		return nil, false, fmt.Errorf("invoke %s: %w", r.fn.Name, ctx.Err())
	case <-r.closed:
		return nil, false, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
}

// lost handles an environment whose process exited before inv reached it:
// after a finished init the environment is replaced and inv retried;
// during init, inv fails with the init error or the exit status.
func (r *Runtime) lost(env *environment, inv *invocation) (result []byte, retry bool, err error) {
	if r.isClosed() {
		return nil, false, fmt.Errorf("invoke %s: %w", r.fn.Name, ErrClosed)
	}
	polled := env.hasPolled()
	r.reset(env, "runtime exited")
	if polled {
		return nil, true, exitError(inv.id, env.exitErr)
	}
	if fe := env.initError(inv.id); fe != nil {
		return nil, false, fe
	}
	return nil, false, exitError(inv.id, env.exitErr)
}

// timeoutError is what Lambda reports when the function runs past its
// timeout.
func timeoutError(requestID string, timeout time.Duration) *FunctionError {
	return newFunctionError(requestID, "Sandbox.Timedout",
		fmt.Sprintf("RequestId: %s Error: Task timed out after %.2f seconds", requestID, timeout.Seconds()))
}

// exitError is what Lambda reports when the runtime process exits during
// init or an invocation.
func exitError(requestID string, waitErr error) *FunctionError {
	msg := "Runtime exited without providing a reason"
	if waitErr != nil {
		msg = "Runtime exited with error: " + waitErr.Error()
	}
	return newFunctionError(requestID, "Runtime.ExitError", fmt.Sprintf("RequestId: %s Error: %s", requestID, msg))
}

// isClosed reports whether Close has been called.
func (r *Runtime) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// Close kills the process group of the current execution environment by
// its PID, stops the Runtime API, and makes later Invoke calls fail with
// ErrClosed. It is safe to call more than once.
func (r *Runtime) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.closed)
		r.mu.Lock()
		env := r.env
		r.env = nil
		r.mu.Unlock()
		if env != nil {
			if err = env.stop(); err != nil {
				err = fmt.Errorf("close lambda %s: %w", r.fn.Name, err)
			}
		}
	})
	return err
}

// PID returns the process id of the current execution environment's
// bootstrap, or 0 if there is none (between a reset and the next
// invocation).
func (r *Runtime) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.env == nil {
		return 0
	}
	return r.env.pid
}
