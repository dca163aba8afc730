package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// topFixture is a reading of an alarm-service stack with work waiting.
func topFixture() topSnapshot {
	at := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	return topSnapshot{
		Stack: names.StackAlarmService, Where: "AWS eu-west-1", Arch: stackview.AlarmService, At: at, Interval: 5 * time.Second,
		Queue: stackview.QueueDepth{Visible: 3, InFlight: 1}, Oldest: 4 * time.Minute, HasOldest: true,
		DLQ: 1, DeliveryDLQ: 0, HasDeliveryDLQ: true, Running: 0, Starting: 1, Desired: 1, HasDesired: true,
		Alarms: []topAlarm{{"EdpAlarmService-backlog", "ALARM"}, {"EdpAlarmService-dead-letters", "OK"}},
		Runs: []runrecord.Entry{
			{RunID: "0123456789abcdef0123456789abcdef", Key: "configs/a.yaml", Status: runrecord.StatusRunning, StartedAt: at.Add(-42 * time.Second)},
			{RunID: "fedcba9876543210fedcba9876543210", Key: "configs/b.yaml", Status: runrecord.StatusSucceeded, StartedAt: at.Add(-3 * time.Minute), DurationMS: 3210},
		},
		Why:       "1 task(s) starting (provisioning/pending)",
		Dashboard: "https://console.example/cloudwatch/dashboards/edp",
		QueueHist: []int{0, 1, 2, 4, 8, 3}, TaskHist: []int{0, 0, 1, 1, 0, 0},
	}
}

// A frame shows every part of a reading, each line within the width.
func TestTopRender(t *testing.T) {
	t.Parallel()
	got := render(topFixture(), 100)
	want := `edp top — EdpAlarmService (alarm-service) in AWS eu-west-1 · 10:30:00 · every 5s · q quits, p pauses

queue     3 visible · 1 in flight · oldest 4m0s                ▁▁▂▄█▃
tasks     0 running · 1 starting · desired 1                   ▁▁██▁▁
dlq       1 dead letters · 0 undelivered events
waiting   1 task(s) starting (provisioning/pending)

alarms    ALARM             EdpAlarmService-backlog
          OK                EdpAlarmService-dead-letters

RUN           CONFIG                                  STATUS    DURATION  AGE
0123456789ab  configs/a.yaml                          running   42s…      42s
fedcba987654  configs/b.yaml                          succeeded 3.21s     3m0s

dashboard https://console.example/cloudwatch/dashboards/edp
`
	if diff := cmp.Diff(strings.Split(want, "\n"), strings.Split(got, "\n")); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	for _, l := range strings.Split(render(topFixture(), 40), "\n") {
		if n := len([]rune(l)); n > 40 {
			t.Errorf("line of %d characters at width 40: %q", n, l)
		}
	}
	paused := topFixture()
	paused.Paused = true
	if !strings.Contains(render(paused, 200), "PAUSED (p resumes)") {
		t.Error("a paused frame does not say so")
	}
}

// The plain mode prints one line per reading, without escape codes.
func TestTopPlain(t *testing.T) {
	t.Parallel()
	s := topFixture()
	want := "10:30:00 EdpAlarmService queue 3 visible / 1 in flight (oldest 4m0s) · dlq 1 · undelivered 0 · tasks 0 running, 1 starting (desired 1)" +
		" · in alarm: EdpAlarmService-backlog · last run 0123456789ab running 42s… · waiting: 1 task(s) starting (provisioning/pending)"
	if got := plainLine(s); got != want {
		t.Errorf("plain line\n got %q\nwant %q", got, want)
	}
	// Three readings, three lines, nothing but text.
	n := 0
	read := func(context.Context) topSnapshot {
		n++
		s := topFixture()
		s.Queue.Visible = n
		s.Why = ""
		return s
	}
	ctx, cancel := context.WithCancel(t.Context())
	var out syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- topLoop(ctx, topConfig{interval: 10 * time.Millisecond, plain: true, width: func() int { return 80 }}, read, nil, &out)
	}()
	for strings.Count(out.String(), "\n") < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, l := range lines[:3] {
		if strings.Contains(l, "\x1b") {
			t.Errorf("line %d has an escape code: %q", i, l)
		}
		if want := "queue " + string(rune('1'+i)) + " visible"; !strings.Contains(l, want) {
			t.Errorf("line %d %q lacks %q", i, l, want)
		}
	}
}

// q quits; p pauses the readings and resumes them.
func TestTopKeys(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	reads := 0
	read := func(context.Context) topSnapshot {
		mu.Lock()
		defer mu.Unlock()
		reads++
		return topFixture()
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return reads }
	keys, press := io.Pipe()
	var out syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- topLoop(t.Context(), topConfig{interval: 5 * time.Millisecond, width: func() int { return 120 }}, read, keys, &out)
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitFor("two readings", func() bool { return count() >= 2 })
	press.Write([]byte("p"))
	waitFor("the paused frame", func() bool { return strings.Contains(out.String(), "PAUSED") })
	before := count()
	time.Sleep(50 * time.Millisecond)
	if after := count(); after != before {
		t.Errorf("%d readings while paused", after-before)
	}
	press.Write([]byte("p"))
	waitFor("readings after resume", func() bool { return count() > before })
	press.Write([]byte("q"))
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after q, want 0", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("q did not quit")
	}
	if s := out.String(); !strings.HasPrefix(s, "\x1b[?1049h") || !strings.HasSuffix(s, "\x1b[?25h\x1b[?1049l") {
		t.Errorf("the terminal is not given back: output ends %q", s[max(0, len(s)-40):])
	}
	// Ctrl-C is a key in raw mode: it quits too.
	keys2, press2 := io.Pipe()
	done2 := make(chan int)
	go func() {
		done2 <- topLoop(t.Context(), topConfig{interval: time.Hour, width: func() int { return 80 }}, read, keys2, io.Discard)
	}()
	press2.Write([]byte{ctrlC})
	select {
	case <-done2:
	case <-time.After(5 * time.Second):
		t.Fatal("Ctrl-C did not quit")
	}
}

func TestTopSparkline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    []int
		width int
		want  string
	}{
		{nil, 5, ""},
		{[]int{0, 0}, 5, "▁▁"},
		{[]int{0, 7, 14}, 5, "▁▄█"},
		{[]int{9, 1, 2, 3}, 3, "▃▅█"},
	} {
		if got := sparkline(tc.in, tc.width); got != tc.want {
			t.Errorf("sparkline(%v, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
		}
	}
}

var sharedAssembly struct {
	once      sync.Once
	root, dir string
	err       error
}

// assemblyForTests synthesizes the stacks once for every test of the
// package that needs them; the directory is removed by TestMain.
func assemblyForTests(t *testing.T) string {
	t.Helper()
	sharedAssembly.once.Do(func() {
		dir, err := os.MkdirTemp("", "edp-cmd-assembly-")
		if err != nil {
			sharedAssembly.err = err
			return
		}
		sharedAssembly.root = dir
		sharedAssembly.dir, sharedAssembly.err = localcloud.Synthesize(context.Background(), localcloud.SynthOptions{
			RepoRoot: filepath.Join("..", ".."), OutDir: filepath.Join(dir, "cdk.out"),
		})
	})
	if sharedAssembly.err != nil {
		t.Fatal(sharedAssembly.err)
	}
	return sharedAssembly.dir
}

// removeSharedAssembly removes what assemblyForTests made.
func removeSharedAssembly() {
	if sharedAssembly.root != "" {
		os.RemoveAll(sharedAssembly.root)
	}
}

// edp top -local -plain against a local cloud: after an upload, its
// lines show the queue, the tasks, the run and the runtime's alarms.
func TestTopLocal(t *testing.T) {
	t.Parallel()
	cloud := upCloud(t, assemblyForTests(t), names.StackOneOff)
	workDir := cloud.WorkDir()
	writeLocalState(t, cloud, workDir)
	bucket := cloud.Stack().Outputs[names.OutputBucket]
	if _, err := cloud.Clients().S3.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("configs/top.yaml"), Body: strings.NewReader(string(readConfig(t))),
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr syncbuf.Buffer
	done := make(chan int)
	go func() {
		done <- cmdTop(ctx, []string{"-local", "-work-dir", workDir, "-plain", "-interval", "300ms"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(stdout.String(), "succeeded") {
		if time.Now().After(deadline) {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("edp top ended early with %d: %s", code, stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d, stderr %s", code, stderr.String())
	}
	out := stdout.String()
	t.Logf("edp top -local -plain:\n%s", out)
	for _, want := range []string{names.StackOneOff + " queue ", " visible / ", " · dlq 0", " · undelivered 0", "tasks 1 running", "last run ", " succeeded "} {
		if !strings.Contains(out, want) {
			t.Errorf("the lines lack %q", want)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Contains(out, " · ! ") {
		t.Error("the plain lines have an escape code or a failed read")
	}
}
