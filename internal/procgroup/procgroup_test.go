//go:build unix

package procgroup

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startGroup starts script under sh as the leader of a process group of its
// own (as every starter of the local cloud does) and reaps it in the
// background, as its starter would. It prints the PIDs the script echoes.
func startGroup(t *testing.T, script string) (*exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	// The script echoes its background PIDs on one line, then closes stdout.
	var line [256]byte
	n, _ := out.Read(line[:])
	var pids []int
	for _, f := range strings.Fields(string(line[:n])) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("script printed %q", line[:n])
		}
		pids = append(pids, pid)
	}
	go func() { _ = cmd.Wait() }()
	return cmd, pids
}

func waitRunning(t *testing.T, pid int, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for Of(pid).Running() != want {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d running = %v, want %v", pid, !want, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A sweep stops every recorded group: one that goes on SIGTERM, one that
// ignores it (and is killed after the grace), and one whose leader has
// exited but whose member still runs. Afterwards no PID runs and the file
// is gone.
func TestSweepStopsEveryGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "procs.json")
	r, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	polite, politeKids := startGroup(t, `sleep 60 & echo $!; exec >&-; wait`)
	stubborn, stubbornKids := startGroup(t, `trap "" TERM; sleep 60 & echo $!; exec >&-; wait`)
	orphaned, orphanedKids := startGroup(t, `sleep 60 & echo $!; exit 0`)
	for name, cmd := range map[string]*exec.Cmd{"polite": polite, "stubborn": stubborn, "orphaned": orphaned} {
		if _, err := r.Track(name, cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
	}
	waitRunning(t, orphaned.Process.Pid, false)

	start := time.Now()
	stopped, err := Sweep(t.Context(), path, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	var got []string
	for _, g := range stopped {
		got = append(got, g.Name)
	}
	slices.Sort(got)
	if want := []string{"orphaned", "polite", "stubborn"}; !slices.Equal(got, want) {
		t.Errorf("stopped %v, want %v", got, want)
	}
	for _, pid := range []int{polite.Process.Pid, politeKids[0], stubborn.Process.Pid, stubbornKids[0], orphanedKids[0]} {
		waitRunning(t, pid, false)
	}
	if took < 500*time.Millisecond {
		t.Errorf("sweep took %s: the group ignoring SIGTERM must have had its grace", took)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registry file after the sweep: %v, want it removed", err)
	}
}

// A record whose PID now belongs to another process (another start time)
// is not signalled.
func TestSweepSparesAReusedPID(t *testing.T) {
	other, _ := startGroup(t, `echo; exec >&-; sleep 60`)
	path := filepath.Join(t.TempDir(), "procs.json")
	p := Of(other.Process.Pid)
	p.Start += "0" // recorded at another start time
	raw, _ := json.Marshal(File{Owner: Process{PID: 0}, Groups: []Group{{Process: p, Name: "not ours"}}})
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	stopped, err := Sweep(t.Context(), path, time.Second)
	if err != nil || len(stopped) != 0 {
		t.Fatalf("Sweep = %v, %v; want nothing stopped", stopped, err)
	}
	if !Of(other.Process.Pid).Running() {
		t.Fatal("the process holding the reused PID was stopped")
	}
}

// While the owner runs, its groups are its own: Sweep and New refuse.
// Untracked groups leave the file; Close removes it once empty.
func TestOwnerRunning(t *testing.T) {
	owner, _ := startGroup(t, `echo; exec >&-; sleep 60`)
	path := filepath.Join(t.TempDir(), "procs.json")
	raw, _ := json.Marshal(File{Owner: Of(owner.Process.Pid)})
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(t.Context(), path, time.Second); !errors.Is(err, ErrOwnerRunning) {
		t.Errorf("Sweep: %v, want ErrOwnerRunning", err)
	}
	if _, err := New(path); !errors.Is(err, ErrOwnerRunning) {
		t.Errorf("New: %v, want ErrOwnerRunning", err)
	}
	_ = syscall.Kill(-owner.Process.Pid, syscall.SIGKILL)
	waitRunning(t, owner.Process.Pid, false)

	r, err := New(path)
	if err != nil {
		t.Fatal(err)
	}
	untrack, err := r.Track("x", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err == nil {
		t.Error("Close with a tracked group: want an error naming it")
	}
	f, err := Read(path)
	if err != nil || len(f.Groups) != 1 || f.Owner != Self() {
		t.Fatalf("file %+v, %v: want the owner and one group", f, err)
	}
	untrack()
	untrack()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("registry file after Close: %v, want it removed", err)
	}
}

// A zombie (exited, not reaped: PID 1 of a container may never reap) is
// not running.
func TestZombieIsNotRunning(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := Of(cmd.Process.Pid)
	if !p.Running() {
		t.Fatal("a running sleep is not running")
	}
	_ = cmd.Process.Kill() // dead, and not reaped until Wait
	waitRunning(t, p.PID, false)
	_ = cmd.Wait()
}
