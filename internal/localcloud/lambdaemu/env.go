package lambdaemu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// stopWait bounds how long stop waits for a killed process to be reaped.
const stopWait = 5 * time.Second

// environment is one execution environment: a bootstrap process and the
// Runtime API it talks to. Each environment has its own listener, so a
// request from a process that has been replaced can never take an
// invocation meant for its successor.
type environment struct {
	fn      Function
	log     *slog.Logger
	srv     *http.Server
	cmd     *exec.Cmd
	pid     int
	started time.Time
	untrack func() // forgets the process group once stop has ended it

	next       chan *invocation // taken by GET /next
	exited     chan struct{}    // closed once the process has been reaped
	exitErr    error            // the process's exit status; set before exited closes
	initFailed chan struct{}    // closed when the runtime reports an init error
	stopping   chan struct{}    // closed by stop; ends waiting GET /next requests
	stopOnce   sync.Once
	stopErr    error

	mu      sync.Mutex
	polled  bool        // the runtime asked for an invocation: init is done
	current *invocation // handed to the runtime and not yet answered
	initErr *errorDoc   // what /runtime/init/error reported
}

// invocation is one Invoke request on its way through an environment.
type invocation struct {
	id          string
	payload     []byte
	accepted    chan struct{} // closed by GET /next once it has taken the invocation
	deadline    time.Time     // set before accepted closes
	undelivered bool          // set before accepted closes: the process had already exited
	done        chan outcome  // the runtime's answer (buffered: first answer wins)
}

// outcome is the runtime's answer to an invocation.
type outcome struct {
	result []byte
	err    error // nil or a *FunctionError
}

func newInvocation(id string, payload []byte) *invocation {
	return &invocation{
		id:       id,
		payload:  payload,
		accepted: make(chan struct{}),
		done:     make(chan outcome, 1),
	}
}

// startEnvironment serves a Runtime API on a loopback port and starts the
// bootstrap pointed at it.
func startEnvironment(fn Function, log *slog.Logger) (*environment, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the runtime API: %w", err)
	}
	e := &environment{
		fn:         fn,
		next:       make(chan *invocation),
		exited:     make(chan struct{}),
		initFailed: make(chan struct{}),
		stopping:   make(chan struct{}),
	}
	e.srv = &http.Server{Handler: e.routes(), ReadHeaderTimeout: 10 * time.Second}

	cmd := exec.Command(fn.Bootstrap)
	cmd.Dir = filepath.Dir(fn.Bootstrap)
	cmd.Env = fn.environ(ln.Addr().String(), logStreamName())
	cmd.Stdout = fn.Output
	cmd.Stderr = fn.Output
	cmd.WaitDelay = time.Second // a grandchild holding the output pipe cannot block Wait
	setProcessGroup(cmd)
	e.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("start bootstrap %s: %w", fn.Bootstrap, err)
	}
	e.cmd = cmd
	e.pid = cmd.Process.Pid
	e.untrack = func() {}
	if fn.Track != nil {
		e.untrack = fn.Track(e.pid)
	}
	e.log = log.With("pid", e.pid)
	e.log.Info("lambda environment started", "runtime_api", ln.Addr().String())
	// Serve only now that every field is set; until then the runtime's
	// first requests wait in the listener's backlog.
	go func() { _ = e.srv.Serve(ln) }() // returns ErrServerClosed after stop
	go func() {
		e.exitErr = cmd.Wait()
		close(e.exited)
	}()
	return e, nil
}

// hasPolled reports whether the runtime has finished its init.
func (e *environment) hasPolled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.polled
}

// initError returns the init error the runtime reported, as the error of
// the invocation that was waiting for it, or nil.
func (e *environment) initError(requestID string) *FunctionError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.initErr == nil {
		return nil
	}
	payload, _ := marshalErrorDoc(*e.initErr)
	return &FunctionError{RequestID: requestID, Type: e.initErr.Type, Message: e.initErr.Message, Payload: payload}
}

// stop kills the process group, waits for the process to be reaped and
// closes the Runtime API. It is idempotent.
func (e *environment) stop() error {
	e.stopOnce.Do(func() {
		close(e.stopping)
		// Kill the whole group even if the bootstrap itself has exited:
		// children it started must not outlive the environment.
		if err := killProcessGroup(e.cmd.Process); err != nil {
			select {
			case <-e.exited: // gone already
			default:
				e.stopErr = fmt.Errorf("kill process group %d: %w", e.pid, err)
			}
		}
		select {
		case <-e.exited:
			e.untrack()
		case <-time.After(stopWait):
			e.stopErr = errors.Join(e.stopErr, fmt.Errorf("process %d not reaped within %v", e.pid, stopWait))
		}
		_ = e.srv.Close()
	})
	return e.stopErr
}

// logStreamName mimics Lambda's "yyyy/mm/dd/[$LATEST]<instance id>".
func logStreamName() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + hex.EncodeToString(b[:])
}

// newUUID returns a random (version 4) UUID, the shape of Lambda request ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newTraceID returns an X-Ray trace header with a new root and parent.
func newTraceID(now time.Time) string {
	var b [20]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0", now.Unix(), h[:24], h[24:40])
}
