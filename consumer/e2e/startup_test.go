package e2e

import (
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// silentEndpoint accepts TCP connections and never answers on them: a hung
// emulator, proxy or load balancer. Accepted is closed at the first
// connection.
type silentEndpoint struct {
	URL      string
	Accepted chan struct{}
}

func newSilentEndpoint(t testing.TB) *silentEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentEndpoint{URL: "http://" + ln.Addr().String(), Accepted: make(chan struct{})}
	var (
		mu    sync.Mutex
		conns []net.Conn // held open, never read or written
		once  sync.Once
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			once.Do(func() { close(s.Accepted) })
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return s
}

// An endpoint that accepts the connection but never answers the start-up
// GetQueueAttributes: the real binary gives up after its start-up deadline
// (10 s) and exits 1 with an error naming the queue, instead of hanging.
func TestStartUpGivesUpOnSilentQueueEndpoint(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	silent := newSilentEndpoint(t)

	c := startChild(t, p.envVia(silent.URL), "drain")
	if code := c.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	c.waitLog(t, time.Second, `"level":"INFO"`, `"msg":"start-up check"`, `"check":"queue"`, `"queue_url":"`+p.queueURL+`"`)
	c.waitLog(t, time.Second, `"level":"ERROR"`, "queue "+p.queueURL+": no answer within 10s")
}

// SIGTERM while a start-up call hangs: the consumer stops at once and
// exits 0 like any stop by signal; it has taken no message.
func TestSIGTERMDuringStartUp(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	silent := newSilentEndpoint(t)

	c := startChild(t, p.envVia(silent.URL), "serve")
	select {
	case <-silent.Accepted: // the start-up call is under way
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer never connected")
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM during start-up, want 0", code)
	}
	c.waitLog(t, time.Second, `"msg":"stopped during start-up"`)
}

// The same for S3: the queue answers, the bucket's endpoint does not. The
// bucket check gives up after its own deadline, naming the bucket.
func TestStartUpGivesUpOnSilentS3Endpoint(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	silent := newSilentEndpoint(t)

	c := startChild(t, p.env("AWS_ENDPOINT_URL_S3="+silent.URL), "drain")
	if code := c.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	c.waitLog(t, time.Second, `"msg":"start-up check passed"`, `"check":"queue"`)
	c.waitLog(t, time.Second, `"level":"ERROR"`, "bucket "+p.bucket+": no answer within 10s")
}

// A mistyped bucket: before, every valid event named "another bucket" and
// went to the DLQ as poison within seconds. Now the consumer refuses to
// start, and the queue's messages stay where they are, visible, for a
// consumer with the right setting.
func TestWrongBucketRefused(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	p.putConfigs(t, "wrong-bucket", 3)
	p.waitQueued(t, 3, 30*time.Second)

	wrong := p.bucket + "-typo"
	c := startChild(t, p.env(names.EnvBucket+"="+wrong), "drain")
	if code := c.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	c.waitLog(t, time.Second, `"level":"ERROR"`, "bucket "+wrong+": not found", names.EnvBucket)
	if v, f := p.queueDepth(t, p.queueURL); v != 3 || f != 0 {
		t.Errorf("queue holds %d visible + %d in flight, want the 3 messages untouched and visible", v, f)
	}
	if v, f := p.queueDepth(t, p.dlqURL); v+f != 0 {
		t.Errorf("DLQ holds %d+%d messages, want none", v, f)
	}
}

// The right bucket passes the check (logged) and the drain does the work.
func TestRightBucketStarts(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	p.put(t, "configs/right.yaml", treeConfig("right-bucket"))
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.env(), "drain")
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	c.waitLog(t, time.Second, `"msg":"start-up check passed"`, `"check":"bucket"`, `"bucket":"`+p.bucket+`"`)
	if recs := p.records(t)["configs/right.yaml"]; len(recs) != 1 || recs[0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want one succeeded", recs)
	}
	p.assertQueueEmpty(t)
	p.assertDLQEmpty(t)
}
