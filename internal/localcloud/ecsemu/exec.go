package ecsemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/edp-pipelines/edp/internal/procgroup"
)

// pipeGrace bounds how long a process's exit waits for its output to be
// copied when something it started still holds the pipes open.
const pipeGrace = 2 * time.Second

// ExecLauncher is a Launcher that runs each task as a child process, the
// way a container runs its entrypoint: Entrypoint followed by the task's
// command, with the task's environment, in a session and process group of
// its own. SIGTERM goes to the main process only (as `docker stop` sends
// it to PID 1); Kill, and the main process's exit, end the whole session —
// the task's group and the groups it made, such as a command job's — as
// the end of a container does. Processes are addressed by PID, never by
// name.
type ExecLauncher struct {
	// Entrypoint is the program and its leading arguments, e.g. the path
	// of the consumer binary. Required.
	Entrypoint []string
	// Dir is the working directory. Default: this process's.
	Dir string
	// BaseEnv ("KEY=value" entries) comes before the task's environment,
	// which wins a clash. Default: none, so a task sees only its own
	// environment, as in a container; put PATH or HOME here if needed.
	BaseEnv []string
	// Output returns where a task's stdout and stderr go. Default, and for
	// nil writers: discarded.
	Output func(spec ProcessSpec) (stdout, stderr io.Writer)
	// Track, when set, is called with the PID of each task's process group
	// leader as soon as it has started; the func it returns is called once
	// the group has been ended. A caller records them so that the tasks
	// can be stopped even if this process dies. Default: none.
	Track func(spec ProcessSpec, pid int) (untrack func())
}

// Launch starts the task's process; it does not wait for it.
func (l *ExecLauncher) Launch(ctx context.Context, spec ProcessSpec) (Process, error) {
	if len(l.Entrypoint) == 0 {
		return nil, errors.New("launch task: ExecLauncher.Entrypoint is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch task %s: %w", spec.TaskArn, err)
	}
	args := append(append([]string(nil), l.Entrypoint[1:]...), spec.Command...)
	// Not CommandContext: the process outlives ctx and is stopped by signals.
	cmd := exec.Command(l.Entrypoint[0], args...)
	cmd.Dir = l.Dir
	cmd.Env = append([]string{}, l.BaseEnv...)
	for _, k := range sortedKeys(spec.Env) {
		cmd.Env = append(cmd.Env, k+"="+spec.Env[k]) // later entries win
	}
	if l.Output != nil {
		cmd.Stdout, cmd.Stderr = l.Output(spec)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = pipeGrace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("launch task %s: %w", spec.TaskArn, err)
	}
	p := &execProcess{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), untrack: func() {}}
	if l.Track != nil {
		p.untrack = l.Track(spec, p.pid)
	}
	go p.wait()
	return p, nil
}

// execProcess is one task process started by ExecLauncher; its process
// group ID is its PID.
type execProcess struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{}
	code int // set before done is closed
	// untrack forgets the group once it has been ended.
	untrack func()
}

func (p *execProcess) wait() {
	err := p.cmd.Wait()
	p.code = exitCode(p.cmd.ProcessState, err)
	// What the main process started goes with it, as in a container.
	procgroup.KillSession(p.pid)
	p.untrack()
	close(p.done)
}

// exitCode is the status ECS would report: the exit code, or 128+n for
// death by signal n.
func exitCode(st *os.ProcessState, err error) int {
	if st == nil {
		if err != nil {
			return -1
		}
		return 0
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// Signal sends sig to the main process; a process that has exited is not
// an error.
func (p *execProcess) Signal(sig os.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", p.pid, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and every process of its session.
func (p *execProcess) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := syscall.Kill(-p.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", p.pid, err)
	}
	procgroup.KillSession(p.pid)
	return nil
}

// Done is closed once the process has exited and its output is copied.
func (p *execProcess) Done() <-chan struct{} { return p.done }

// ExitCode is the exit status once Done is closed, -1 before.
func (p *execProcess) ExitCode() int {
	select {
	case <-p.done:
		return p.code
	default:
		return -1
	}
}
