package e2e

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/settings"
)

// goMemLimit is the GOMEMLIMIT the task definition gives the consumer at
// the default task memory (edp:memoryMiB); the benchmarks run the binary
// with it, as ECS would.
var goMemLimit = "GOMEMLIMIT=" + settings.GoMemLimit(settings.Defaults().MemoryMiB)

// firstReceive is a proxy to moto that notes when the first SQS
// ReceiveMessage call arrives.
type firstReceive struct {
	URL       string
	once      sync.Once
	at        chan time.Time
	firstOnce sync.Once
	first     chan time.Time // first request of any kind
}

func newFirstReceive(b *testing.B) *firstReceive {
	target, _ := url.Parse(moto.Endpoint)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0) // the long poll is cut by SIGTERM
	f := &firstReceive{at: make(chan time.Time, 1), first: make(chan time.Time, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		f.firstOnce.Do(func() { f.first <- now })
		if r.Header.Get("X-Amz-Target") == "AmazonSQS.ReceiveMessage" {
			now := time.Now()
			f.once.Do(func() { f.at <- now })
		}
		proxy.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// BenchmarkServeStartup measures, for the real binary in serve mode, the
// time from process start to its first ReceiveMessage (settings, AWS
// config, the queue-attribute check included) and its resident memory
// while idle on an empty queue.
func BenchmarkServeStartup(b *testing.B) {
	p := newPipeline(b, 30, 3)
	var total, toFirst time.Duration
	var rssKB int
	for range b.N {
		fr := newFirstReceive(b)
		cmd := childCmd(p.envVia(fr.URL, goMemLimit), "serve")
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-fr.at:
			total += at.Sub(start)
			toFirst += (<-fr.first).Sub(start)
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			b.Fatal("no ReceiveMessage within 30s")
		}
		time.Sleep(time.Second) // idle in its long poll
		rssKB = max(rssKB, vmRSSKB(cmd.Process.Pid))
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("consumer exit: %v", err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-first-receive")
	b.ReportMetric(float64(toFirst.Microseconds())/1000/float64(b.N), "ms-to-first-request")
	if rssKB > 0 {
		b.ReportMetric(float64(rssKB)/1024, "idle-RSS-MB")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDrain200 drains 200 uploaded configs with the real binary and,
// in the same run, measures the emulator's own ceiling: a bare
// receive-and-delete loop over 200 messages with no work at all. CPU time is
// the consumer process's own (user+system from its rusage), so moto's CPU
// is excluded. Peak RSS is the consumer's high-water mark (rusage maxrss),
// with GOMEMLIMIT as the task definition sets it.
func BenchmarkDrain200(b *testing.B) {
	const n = 200
	for range b.N {
		p := newPipeline(b, 300, 3)
		p.putConfigs(b, "bench", n)
		p.waitQueued(b, n, 2*time.Minute)

		// The emulator's ceiling: the same number of messages, received and
		// deleted in batches of ten with nothing else done.
		ceiling := bareReceiveDelete(b, p, n)

		var requests atomic.Int64
		target, _ := url.Parse(moto.Endpoint)
		proxy := httputil.NewSingleHostReverseProxy(target)
		counter := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			proxy.ServeHTTP(w, r)
		}))
		cmd := childCmd(p.envVia(counter.URL, "EDP_EMPTY_RECEIVES=1", goMemLimit), "drain")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("drain: %v\n%s", err, out)
		}
		wall := time.Since(start)
		counter.Close()
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		runs := len(p.recordKeys(b))
		if runs != n {
			b.Fatalf("%d run records, want %d", runs, n)
		}
		// The drain ends with one empty 1 s long poll; it is part of the wall time.
		b.ReportMetric(wall.Seconds(), "drain-s")
		b.ReportMetric(float64(n)/wall.Seconds(), "jobs/s")
		b.ReportMetric(ceiling, "bare-msgs/s")
		b.ReportMetric(float64(cpu.Microseconds())/1000/n, "cpu-ms/job")
		if kb := maxRSSKB(cmd.ProcessState); kb > 0 {
			b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
		}
		// Every job costs the emulator S3 and SQS calls; this relates the
		// jobs/s to the emulator's request rate.
		b.ReportMetric(float64(requests.Load())/n, "requests/job")
		b.ReportMetric(float64(requests.Load())/wall.Seconds(), "requests/s")
	}
	b.ReportMetric(0, "ns/op")
}

// bareReceiveDelete copies n messages to a scratch queue and times a plain
// receive+batch-delete loop over them; it returns messages per second.
func bareReceiveDelete(b *testing.B, p *pipeline, n int) float64 {
	ctx := context.Background()
	q, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(p.bucket + "-bare")})
	if err != nil {
		b.Fatal(err)
	}
	body := aws.String(treeConfig("bare"))
	for i := 0; i < n; i += 10 {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for j := i; j < min(i+10, n); j++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: body})
		}
		if _, err := p.sqs.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	for done := 0; done < n; {
		r, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			b.Fatal(err)
		}
		if len(r.Messages) == 0 {
			b.Fatalf("scratch queue empty after %d of %d", done, n)
		}
		var entries []sqstypes.DeleteMessageBatchRequestEntry
		for i, m := range r.Messages {
			entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
		}
		if _, err := p.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
			b.Fatal(err)
		}
		done += len(r.Messages)
	}
	return float64(n) / time.Since(start).Seconds()
}

func childCmd(env []string, args ...string) *exec.Cmd {
	c := exec.Command(consumerBin, args...)
	c.Env = env
	return c
}

// maxRSSKB is an ended process's peak resident set size in KiB (Linux
// rusage); 0 when unavailable.
func maxRSSKB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return int64(ru.Maxrss)
	}
	return 0
}

// vmRSSKB reads a process's resident set size from /proc (Linux); 0 when
// unavailable.
func vmRSSKB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}
