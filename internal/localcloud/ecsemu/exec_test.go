package ecsemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// These tests run real processes: they need sh and sleep, and wait on the
// processes themselves (bounded by eventually), since no fake clock
// governs them.

// trapScript exits 0 on SIGTERM once it has said it is ready.
const trapScript = `trap "exit 0" TERM; echo ready; while :; do sleep 0.1; done`

// deafScript ignores SIGTERM.
const deafScript = `trap "" TERM; echo ready; while :; do sleep 0.1; done`

// syncBuffer is an output buffer safe to read while a process writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func shLauncher(t *testing.T, out *syncBuffer) *ExecLauncher {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh on PATH")
	}
	return &ExecLauncher{
		Entrypoint: []string{"sh", "-c"},
		BaseEnv:    []string{"PATH=" + os.Getenv("PATH")},
		Output: func(ProcessSpec) (io.Writer, io.Writer) {
			if out == nil {
				return nil, nil
			}
			return out, out
		},
	}
}

func waitDone(t *testing.T, p Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit")
	}
}

// groupGone reports whether no process is left in the process group.
func groupGone(pgid int) bool {
	return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH)
}

// A task that traps SIGTERM exits 0 when signalled, and nothing of its
// process group outlives it.
func TestExecLauncherStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := shLauncher(t, &out)
	p, err := l.Launch(context.Background(), ProcessSpec{TaskArn: "task/1", Command: []string{trapScript}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the trap to be set", func() bool { return strings.Contains(out.String(), "ready") })
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if code := p.ExitCode(); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	pgid := p.(*execProcess).pid
	eventually(t, "the process group to be gone", func() bool { return groupGone(pgid) })
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal after exit: %v", err)
	}
	if err := p.Kill(); err != nil {
		t.Errorf("kill after exit: %v", err)
	}
}

// Kill ends a task that ignores SIGTERM, reported as ECS reports SIGKILL.
func TestExecLauncherKill(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := shLauncher(t, &out)
	p, err := l.Launch(context.Background(), ProcessSpec{TaskArn: "task/2", Command: []string{deafScript}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the trap to be set", func() bool { return strings.Contains(out.String(), "ready") })
	if code := p.ExitCode(); code != -1 {
		t.Errorf("exit code while running = %d, want -1", code)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if code := p.ExitCode(); code != 137 {
		t.Errorf("exit code = %d, want 137", code)
	}
	pgid := p.(*execProcess).pid
	eventually(t, "the process group to be gone", func() bool { return groupGone(pgid) })
}

// The process gets the task's environment over BaseEnv and nothing of
// this process's environment, and its exit code is reported.
func TestExecLauncherEnvironment(t *testing.T) { // not parallel: it sets this process's environment
	var out syncBuffer
	l := shLauncher(t, &out)
	l.BaseEnv = append(l.BaseEnv, "EDP_A=base", "EDP_B=base")
	t.Setenv("EDP_C", "parent") // not inherited
	p, err := l.Launch(context.Background(), ProcessSpec{
		TaskArn: "task/3",
		Command: []string{`echo "$EDP_A|$EDP_B|$EDP_C"; exit 3`},
		Env:     map[string]string{"EDP_B": "task"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "base|task|" {
		t.Errorf("output %q, want %q", got, "base|task|")
	}
	if code := p.ExitCode(); code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if _, err := (&ExecLauncher{}).Launch(context.Background(), ProcessSpec{}); err == nil {
		t.Error("launch without an entrypoint: want an error")
	}
}

// End to end with real processes: StopTask through the SDK stops a
// process that traps SIGTERM (exit 0) and kills one that ignores it once
// its stop timeout has passed (exit 137).
func TestEmulatorStopsRealProcesses(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	l := shLauncher(t, &out)
	polite := TaskDefinition{Family: "polite", Command: []string{trapScript}, StopTimeout: 10 * time.Second}
	deaf := TaskDefinition{Family: "deaf", Command: []string{deafScript}, StopTimeout: 200 * time.Millisecond}
	e := newEmulator(t, l, func(c *Config) { c.TaskDefinitions = TaskDefinitionsOf(polite, deaf) })
	_, client := serve(t, e)
	ctx := context.Background()

	for i, tt := range []struct {
		family string
		exit   int32
	}{{"polite", 0}, {"deaf", 137}} {
		in := dispatchRunTask("edp-real-"+tt.family, 1)
		in.TaskDefinition, in.Overrides = aws.String(tt.family), nil
		run, err := client.RunTask(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		arn := arns(run.Tasks)[0]
		eventually(t, "the trap to be set", func() bool { return strings.Count(out.String(), "ready") == i+1 })
		if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("edp"), Task: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
		var exit int32 = -1
		eventually(t, tt.family+" task to stop", func() bool {
			d, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("edp"), Tasks: []string{arn}})
			if err != nil || aws.ToString(d.Tasks[0].LastStatus) != StatusStopped {
				return false
			}
			exit = aws.ToInt32(d.Tasks[0].Containers[0].ExitCode)
			return true
		})
		if exit != tt.exit {
			t.Errorf("%s task: exit code %d, want %d", tt.family, exit, tt.exit)
		}
	}
}

// TestHelperTask is not a test: run by the tests below as a task's
// process (EXEC_HELPER set), it starts `sleep 300` in a process group of
// its own, as the consumer starts a command job, prints its pid, then
// waits ("wait") or exits after a moment ("exit").
func TestHelperTask(t *testing.T) {
	mode := os.Getenv("EXEC_HELPER")
	if mode == "" {
		return
	}
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	fmt.Printf("child %d\nready\n", cmd.Process.Pid)
	if mode == "exit" {
		time.Sleep(300 * time.Millisecond)
		os.Exit(0)
	}
	select {}
}

// A task's processes in process groups of their own (a command job) end
// with the task, as a container's processes do: when the task is killed
// and when its main process exits.
func TestExecLauncherEndsTheTasksOtherGroups(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mode string
		end  func(p Process) error
	}{
		{"wait", func(p Process) error { return p.Kill() }},
		{"exit", func(Process) error { return nil }},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			l := &ExecLauncher{
				Entrypoint: []string{os.Args[0], "-test.run=^TestHelperTask$"},
				BaseEnv:    []string{"PATH=" + os.Getenv("PATH"), "EXEC_HELPER=" + tc.mode},
				Output:     func(ProcessSpec) (io.Writer, io.Writer) { return &out, &out },
			}
			p, err := l.Launch(context.Background(), ProcessSpec{TaskArn: "task/" + tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the child to start", func() bool { return strings.Contains(out.String(), "ready") })
			var child int
			for _, line := range strings.Split(out.String(), "\n") {
				if v, ok := strings.CutPrefix(line, "child "); ok {
					child, _ = strconv.Atoi(v)
				}
			}
			if child == 0 {
				t.Fatalf("no child pid in %q", out.String())
			}
			defer syscall.Kill(child, syscall.SIGKILL)
			if pgid, _ := syscall.Getpgid(child); pgid == p.(*execProcess).pid {
				t.Fatalf("the child is in the task's group %d: the test needs it in a group of its own", pgid)
			}
			if err := tc.end(p); err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			eventually(t, "the child in its own group to be gone", func() bool {
				return errors.Is(syscall.Kill(child, 0), syscall.ESRCH) || zombie(child)
			})
		})
	}
}

// zombie reports whether pid has exited and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}
