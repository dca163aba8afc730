//go:build unix

package lambdaemu

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCloseKillsProcessGroup: Close kills the bootstrap and the processes
// it started (its process group), and later invocations fail with
// ErrClosed.
func TestCloseKillsProcessGroup(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	resp, err := call(t, r, "spawn")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ChildPID == 0 || resp.PID != r.PID() {
		t.Fatalf("spawn answered %+v (runtime PID %d)", resp, r.PID())
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, pid := range []int{resp.PID, resp.ChildPID} {
		if err := waitGone(pid, 5*time.Second); err != nil {
			t.Error(err)
		}
	}
	if _, err := r.Invoke(t.Context(), []byte(`{"action":"echo"}`)); !errors.Is(err, ErrClosed) {
		t.Errorf("Invoke after Close: %v, want ErrClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestEnvironmentDiesWhileIdle: a runtime that exits between invocations
// is replaced without failing the next invocation, as Lambda replaces an
// execution environment.
func TestEnvironmentDiesWhileIdle(t *testing.T) {
	t.Parallel()
	r, _ := startFn(t, Function{})
	first, err := call(t, r, "exit-after")
	if err != nil {
		t.Fatal(err)
	}
	if err := waitGone(first.PID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := call(t, r, "echo")
	if err != nil {
		t.Fatalf("invocation after the idle exit: %v", err)
	}
	if resp.PID == first.PID || resp.Count != 1 {
		t.Errorf("served by process %d (invocation %d), want a new process's first", resp.PID, resp.Count)
	}
}

// waitGone waits until pid no longer runs: it does not exist, or it is a
// zombie waiting for a parent other than us to reap it.
func waitGone(pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("process %d still runs %v after Close", pid, limit)
}
