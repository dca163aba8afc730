package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// logBuffer is a log destination the test reads while the job writes.
type logBuffer struct{ syncbuf.Buffer }

// lines returns the JSON log lines with msg.
func (b *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// sh is a Spec running script with /bin/sh.
func sh(script string) Spec {
	return Spec{Argv: []string{"/bin/sh", "-c", script}}
}

func run(t *testing.T, ctx context.Context, s Spec, inv Invocation) (Outcome, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if inv.Dir == "" {
		inv.Dir = t.TempDir()
	}
	inv.Log = slog.New(slog.NewJSONHandler(logs, nil)).With("run_id", "r1")
	inv.Env = append(inv.Env, "PATH="+os.Getenv("PATH"))
	o, err := s.Run(ctx, inv)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return o, logs
}

// Every line of both streams reaches the log with the run's fields, and
// the tail keeps the end of the output.
func TestRunLogsLinesAndKeepsTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	o, logs := run(t, context.Background(), sh(`echo "cwd=$(pwd)"; echo "var=$GREETING"; echo oops >&2; printf 'no newline'; exit 3`),
		Invocation{Dir: dir, Env: []string{"GREETING=hello"}})
	if o.ExitCode != 3 || o.Signal != "" || o.TimedOut || o.Stopped || o.Killed {
		t.Errorf("outcome %+v, want exit status 3 and nothing else", o)
	}
	if Classify(o) != Transient {
		t.Errorf("exit 3 is %v, want Transient", Classify(o))
	}
	got := map[string]string{}
	for _, l := range logs.lines(t, "job output") {
		if l["run_id"] != "r1" {
			t.Errorf("line %v lacks the run id", l)
		}
		got[l["line"].(string)] = l["stream"].(string)
	}
	real, _ := filepath.EvalSymlinks(dir)
	want := map[string]string{"cwd=" + real: "stdout", "var=hello": "stdout", "oops": "stderr", "no newline": "stdout"}
	for line, stream := range want {
		if got[line] != stream {
			t.Errorf("line %q: stream %q, want %q (all: %v)", line, got[line], stream, got)
		}
	}
	if !strings.Contains(o.Tail, "no newline") || !strings.Contains(o.Tail, "oops\n") || !strings.Contains(o.Tail, "var=hello\n") {
		t.Errorf("tail %q", o.Tail)
	}
}

// The tail is the last TailBytes of output, cut at a character; a line
// longer than MaxLineBytes is logged in pieces.
func TestTailIsBoundedAndCutAtACharacter(t *testing.T) {
	t.Parallel()
	s := sh(`i=0; while [ $i -lt 3000 ]; do printf 'é'; i=$((i+1)); done; echo; echo last`)
	s.TailBytes = 101
	o, logs := run(t, context.Background(), s, Invocation{})
	if len(o.Tail) > 101 || !strings.HasSuffix(o.Tail, "last\n") || !strings.HasPrefix(o.Tail, "…") {
		t.Errorf("tail %q (%d bytes), want at most 101 bytes ending in last", o.Tail, len(o.Tail))
	}
	if strings.ContainsRune(o.Tail, '\uFFFD') {
		t.Errorf("tail %q was cut inside a character", o.Tail)
	}
	var total int
	for _, l := range logs.lines(t, "job output") {
		n := len(l["line"].(string))
		if n > MaxLineBytes {
			t.Errorf("logged line of %d bytes, want at most %d", n, MaxLineBytes)
		}
		total += n
	}
	if total < 6000 {
		t.Errorf("logged %d bytes of output, want all 6000 of the long line", total)
	}
}

// gone waits up to 5 s for pid to end (a signal is delivered
// asynchronously) and reports whether it did.
func gone(pid int) bool {
	for range 500 {
		if !alive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i < 0 || i+2 >= len(st) || st[i+2] != 'Z'
}

// readPID waits for a pid file the job writes.
func readPID(t *testing.T, path string) int {
	t.Helper()
	for range 200 {
		b, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err == nil {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// A job that ignores SIGTERM past its timeout is killed after the kill
// grace, with the children it started: nothing of it is left.
func TestTimeoutKillsTheGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	s := sh(`trap '' TERM; sleep 300 & echo $! > ` + pidFile + `; while :; do sleep 1; done`)
	s.KillGrace = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	o, logs := run(t, ctx, s, Invocation{Dir: dir})
	if !o.TimedOut || !o.Killed || o.Signal != "killed" {
		t.Errorf("outcome %+v, want timed out and killed", o)
	}
	if Classify(o) != Transient {
		t.Errorf("a timeout is %v, want Transient", Classify(o))
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Run took %v", d)
	}
	if pid := readPID(t, pidFile); !gone(pid) {
		t.Errorf("the job's child %d outlived it", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if len(logs.lines(t, "job timed out: SIGTERM to the job")) != 1 || len(logs.lines(t, "job did not stop after SIGTERM: SIGKILL")) != 1 {
		t.Errorf("the log does not say SIGTERM then SIGKILL")
	}
}

// A job that handles SIGTERM at its timeout ends without SIGKILL.
func TestTimeoutSIGTERMFirst(t *testing.T) {
	t.Parallel()
	s := sh(`trap 'echo got TERM; exit 143' TERM; while :; do sleep 0.05; done`)
	s.KillGrace = time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	o, _ := run(t, ctx, s, Invocation{})
	if !o.TimedOut || o.Killed || o.ExitCode != 143 || !strings.Contains(o.Tail, "got TERM") {
		t.Errorf("outcome %+v, want a timed-out job that exited 143 after SIGTERM", o)
	}
	if got := Describe(o, "300ms"); got != "timed out after 300ms; exit status 143" {
		t.Errorf("Describe = %q", got)
	}
}

// When the consumer starts to stop, the job gets SIGTERM at once; a job
// that exits then is Stopped.
func TestStopForwardsSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	stop := make(chan struct{})
	go func() {
		for range 500 {
			if _, err := os.Stat(ready); err == nil {
				close(stop)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	o, _ := run(t, context.Background(), sh(`trap 'echo stopping; exit 143' TERM; touch `+ready+`; while :; do sleep 0.05; done`), Invocation{Dir: dir, Stop: stop})
	if !o.Stopped || o.TimedOut || o.Killed || o.ExitCode != 143 || !strings.Contains(o.Tail, "stopping") {
		t.Errorf("outcome %+v, want stopped after SIGTERM with exit 143", o)
	}
	if Classify(o) != Stopped {
		t.Errorf("class %v, want Stopped", Classify(o))
	}
}

// A job that ignores the stop's SIGTERM is killed when its context is
// cancelled (the consumer's grace ended).
func TestStopThenCancelKills(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	stop := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range 500 {
			if _, err := os.Stat(ready); err == nil {
				close(stop)
				time.AfterFunc(300*time.Millisecond, cancel)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	o, _ := run(t, ctx, sh(`trap '' TERM; touch `+ready+`; while :; do sleep 0.05; done`), Invocation{Dir: dir, Stop: stop})
	if !o.Stopped || !o.Killed || o.Signal != "killed" {
		t.Errorf("outcome %+v, want stopped and killed", o)
	}
}

// What a job leaves running in its group when it exits is killed.
func TestExitKillsLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	// The child's output is redirected so that it does not hold the pipes.
	o, _ := run(t, context.Background(), sh(`sleep 300 >/dev/null 2>&1 & echo $! > `+pidFile+`; exit 0`), Invocation{Dir: dir})
	if o.ExitCode != 0 || Classify(o) != Succeeded {
		t.Fatalf("outcome %+v", o)
	}
	if pid := readPID(t, pidFile); !gone(pid) {
		t.Errorf("child %d outlived the job", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// A process that leaves the group (setsid) and keeps the output open
// cannot hold Run: the output is closed after pipeWait.
func TestEscapedProcessDoesNotHoldRun(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/setsid"); err != nil {
		t.Fatalf("setsid(1) is part of util-linux on every Debian: %v", err)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "escaped.pid")
	start := time.Now()
	o, _ := run(t, context.Background(), sh(`/usr/bin/setsid sh -c 'echo $$ > `+pidFile+`; sleep 300' & sleep 0.2; exit 0`), Invocation{Dir: dir})
	pid := readPID(t, pidFile)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if o.ExitCode != 0 {
		t.Errorf("outcome %+v", o)
	}
	if d := time.Since(start); d > pipeWait+5*time.Second {
		t.Errorf("Run took %v, want about pipeWait (%v)", d, pipeWait)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		o    Outcome
		want Class
	}{
		{Outcome{ExitCode: 0}, Succeeded},
		{Outcome{ExitCode: 65}, Permanent},
		{Outcome{ExitCode: 64}, Permanent},
		{Outcome{ExitCode: 66}, Permanent},
		{Outcome{ExitCode: 78}, Permanent},
		{Outcome{ExitCode: 1}, Transient},
		{Outcome{ExitCode: 75}, Transient},
		{Outcome{ExitCode: -1, Signal: "segmentation fault"}, Transient},
		{Outcome{ExitCode: 65, TimedOut: true}, Transient},
		{Outcome{ExitCode: 0, TimedOut: true}, Transient},
		{Outcome{ExitCode: 143, Stopped: true}, Stopped},
		{Outcome{ExitCode: -1, Signal: "killed", Stopped: true, Killed: true}, Stopped},
		// Work finished, or found impossible, while stopping counts as such.
		{Outcome{ExitCode: 0, Stopped: true}, Succeeded},
		{Outcome{ExitCode: 65, Stopped: true}, Permanent},
	}
	for _, tt := range tests {
		if got := Classify(tt.o); got != tt.want {
			t.Errorf("Classify(%+v) = %v, want %v", tt.o, got, tt.want)
		}
	}
	if got := PermanentCodesText(); got != "64, 65, 66, 78" {
		t.Errorf("PermanentCodesText = %q", got)
	}
}

func TestArgsResolvesDotSlashAgainstJobDir(t *testing.T) {
	t.Parallel()
	got, err := Spec{Argv: []string{"python3", "./train.py", "--out", "./x", "plain", "../up"}, JobDir: "/job"}.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"python3", "/job/train.py", "--out", "/job/x", "plain", "../up"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("Args = %q, want %q", got, want)
	}
	if _, err := (Spec{}).Args(); err == nil {
		t.Error("an empty command was accepted")
	}
}

func TestRunReportsAProgramThatCannotStart(t *testing.T) {
	t.Parallel()
	_, err := Spec{Argv: []string{"./no-such-program"}, JobDir: t.TempDir()}.Run(context.Background(), Invocation{Dir: t.TempDir()})
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("err = %v, want a start error matching os.ErrNotExist", err)
	}
}
