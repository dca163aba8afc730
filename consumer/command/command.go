// Package command runs a command job's process: the stack's fixed argv
// (never through a shell) in a process group of its own, in a work
// directory, with the job's environment. Its stdout and stderr go to the
// log line by line, tagged with the run, and the last few KiB are kept for
// the run record. A job that outlives its timeout gets SIGTERM, then
// SIGKILL after a grace; a job whose consumer starts to stop gets SIGTERM
// at once, and SIGKILL when the consumer's own grace ends. Whatever the job
// started in its group is killed when the job ends, so no process outlives
// its run.
//
// What the exit status means (success, permanent, transient) is Classify's;
// what the output directory may hold is Collect's.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Defaults of Spec fields left at their zero value.
const (
	DefaultKillGrace = 10 * time.Second
	// DefaultTailBytes is how much of the job's last output the record
	// keeps.
	DefaultTailBytes = 4 << 10
	// MaxLineBytes bounds one logged line; a longer line is logged in
	// pieces of this size.
	MaxLineBytes = 16 << 10
)

// pipeWait bounds how long the end of a job waits for its output after
// its process group was killed: a process that left the group (setsid)
// may still hold the pipes.
const pipeWait = 2 * time.Second

// Spec is the command of a stack: the same for every run.
type Spec struct {
	// Argv is the program and its arguments (required). An element that
	// starts with "./" names a file of JobDir and is made absolute; the
	// program is looked up in PATH when it has no slash.
	Argv []string
	// JobDir is the job's own directory (EDP_JOB_DIR). Default: this
	// process's working directory.
	JobDir string
	// KillGrace is the time from SIGTERM to SIGKILL when the job times out.
	// Default DefaultKillGrace.
	KillGrace time.Duration
	// TailBytes is how much of the last output Outcome.Tail keeps. Default
	// DefaultTailBytes.
	TailBytes int
}

// Invocation is one run of a Spec.
type Invocation struct {
	// Dir is the working directory (required).
	Dir string
	// Env is the job's whole environment, "KEY=value" entries.
	Env []string
	// Log receives the job's output lines (msg "job output", attributes
	// stream and line) and the signals sent. Default: discard.
	Log *slog.Logger
	// Stop, when closed, means the consumer is stopping: the job gets
	// SIGTERM at once. Nil: never.
	Stop <-chan struct{}
}

// Outcome is how a job ended.
type Outcome struct {
	// ExitCode is the exit status, or -1 when a signal ended the job.
	ExitCode int
	// Signal names the signal that ended the job ("terminated",
	// "killed"), "" when it exited.
	Signal string
	// TimedOut: the job was still running at its context's deadline and
	// was stopped.
	TimedOut bool
	// Stopped: the consumer started to stop while the job ran, and the job
	// was sent SIGTERM.
	Stopped bool
	// Killed: the job did not end within its grace and got SIGKILL.
	Killed bool
	// Duration is from the start to the end of the process.
	Duration time.Duration
	// Tail is the end of the job's output, stdout and stderr interleaved
	// as they came, at most Spec.TailBytes of UTF-8, cut at a character.
	Tail string
}

// Status describes how the job ended: "exit status 3", "signal killed".
func (o Outcome) Status() string {
	if o.Signal != "" {
		return "signal " + o.Signal
	}
	return fmt.Sprintf("exit status %d", o.ExitCode)
}

// Args returns the argv as it runs: "./" elements resolved against JobDir.
func (s Spec) Args() ([]string, error) {
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return nil, errors.New("command: the command is empty")
	}
	dir, err := s.Dir()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(s.Argv))
	for i, a := range s.Argv {
		if strings.HasPrefix(a, "./") {
			a = filepath.Join(dir, a)
		}
		out[i] = a
	}
	return out, nil
}

// Dir is the job directory: JobDir, else this process's working
// directory.
func (s Spec) Dir() (string, error) {
	if s.JobDir != "" {
		return s.JobDir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("command: job directory: %w", err)
	}
	return wd, nil
}

// Run runs the job and waits for it and for every process of its group to
// end. The error is for a job that could not start (a missing program, a
// bad work directory), never for how it ended: that is the Outcome's.
//
// When ctx ends: at its deadline (the job timeout) the group gets SIGTERM,
// then SIGKILL after KillGrace; when it is cancelled otherwise (the
// consumer's grace ended) the group gets SIGKILL at once.
func (s Spec) Run(ctx context.Context, inv Invocation) (Outcome, error) {
	args, err := s.Args()
	if err != nil {
		return Outcome{}, err
	}
	log := inv.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out, err := newOutput(log, s.tailBytes())
	if err != nil {
		return Outcome{}, err
	}
	defer out.close()

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = inv.Dir
	cmd.Env = inv.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // nil would mean this process's environment
	}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out.stdoutW, out.stderrW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Outcome{}, fmt.Errorf("start %s: %w", args[0], err)
	}
	out.started() // the child holds the write ends now
	g := group(cmd.Process.Pid)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var o Outcome
	waitErr := s.supervise(ctx, inv.Stop, g, exited, &o, log)
	o.Duration = time.Since(start)
	// What the job started and left behind goes with it.
	g.signal(syscall.SIGKILL)
	out.wait(pipeWait)
	o.Tail = out.tail()
	o.ExitCode, o.Signal = status(cmd.ProcessState, waitErr)
	return o, nil
}

// supervise waits for the job's exit, signalling its group as ctx and stop
// demand; it returns cmd.Wait's error.
func (s Spec) supervise(ctx context.Context, stop <-chan struct{}, g group, exited <-chan error, o *Outcome, log *slog.Logger) error {
	select {
	case err := <-exited:
		return err
	case <-stop:
		o.Stopped = true
		log.InfoContext(ctx, "consumer stopping: SIGTERM to the job")
		g.signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-ctx.Done():
			// The consumer's grace (or the job timeout) ran out.
			o.Killed = true
			log.WarnContext(ctx, "job did not stop in time: SIGKILL")
			g.signal(syscall.SIGKILL)
			return <-exited
		}
	case <-ctx.Done():
	}
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Cancelled: the consumer's grace ended; no time is left.
		o.Killed = true
		g.signal(syscall.SIGKILL)
		return <-exited
	}
	o.TimedOut = true
	grace := s.killGrace()
	log.WarnContext(ctx, "job timed out: SIGTERM to the job", "kill_grace_ms", grace.Milliseconds())
	g.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		o.Killed = true
		log.WarnContext(ctx, "job did not stop after SIGTERM: SIGKILL")
		g.signal(syscall.SIGKILL)
		return <-exited
	}
}

func (s Spec) killGrace() time.Duration {
	if s.KillGrace <= 0 {
		return DefaultKillGrace
	}
	return s.KillGrace
}

func (s Spec) tailBytes() int {
	if s.TailBytes <= 0 {
		return DefaultTailBytes
	}
	return s.TailBytes
}

// group is a process group, named by its leader's PID.
type group int

// signal sends sig to every process of the group; a group that is gone
// already is not an error.
func (g group) signal(sig syscall.Signal) {
	_ = syscall.Kill(-int(g), sig)
}

// status is the exit code and signal name of a finished process.
func status(st *os.ProcessState, err error) (int, string) {
	if st == nil {
		if err != nil {
			return -1, "unknown"
		}
		return 0, ""
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal().String()
	}
	return st.ExitCode(), ""
}
