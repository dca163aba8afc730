// Package e2e tests the queue consumer end to end against moto_server (a
// real AWS wire-protocol emulator): uploads go through S3 -> EventBridge ->
// SQS exactly as in AWS, and the consumer runs either in-process (with a
// wrapper around the real job runner) or as the real binary in a child
// process (for SIGTERM and SIGKILL).
//
// TestMain starts one moto_server for the package and builds the consumer
// binary once; every test makes its own bucket, queues and rule, so tests
// run in parallel against the one server.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

var (
	moto        *motoserver.Server
	consumerBin string // the real consumer binary, built once
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	s, err := motoserver.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer s.Stop()
	moto = s
	dir, err := os.MkdirTemp("", "edp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	consumerBin = filepath.Join(dir, "consumer")
	build := exec.Command("go", "build", "-o", consumerBin, "github.com/edp-pipelines/edp/consumer")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build consumer:", err)
		return 1
	}
	return m.Run()
}

// awsConfig points the SDK at the package's moto_server.
func awsConfig() aws.Config {
	return aws.Config{
		Region:       motoserver.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(moto.Endpoint),
	}
}

// pipeline is one isolated copy of the infrastructure: a versioned bucket
// sending events to EventBridge, a rule for config uploads, a work queue
// that redrives to a DLQ after maxReceiveCount receives.
type pipeline struct {
	bucket, queueURL, queueArn, dlqURL string
	s3                                 *s3.Client
	sqs                                *sqs.Client
}

var seq atomic.Int64

func newPipeline(t testing.TB, visibilityTimeout, maxReceiveCount int) *pipeline {
	t.Helper()
	ctx := context.Background()
	cfg := awsConfig()
	p := &pipeline{
		s3:  s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }),
		sqs: sqs.NewFromConfig(cfg),
	}
	eb := eventbridge.NewFromConfig(cfg)
	name := fmt.Sprintf("edp-e2e-%d-%d", os.Getpid(), seq.Add(1))
	p.bucket = name

	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := p.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	must("create bucket", err)
	_, err = p.s3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket: aws.String(name), VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	})
	must("enable versioning", err)
	_, err = p.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket:                    aws.String(name),
		NotificationConfiguration: &s3types.NotificationConfiguration{EventBridgeConfiguration: &s3types.EventBridgeConfiguration{}},
	})
	must("enable EventBridge notifications", err)

	dlq, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name + "-dlq")})
	must("create DLQ", err)
	p.dlqURL = aws.ToString(dlq.QueueUrl)
	dlqArn := queueArn(t, p.sqs, p.dlqURL)
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": dlqArn, "maxReceiveCount": strconv.Itoa(maxReceiveCount)})
	q, err := p.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			"VisibilityTimeout": strconv.Itoa(visibilityTimeout),
			"RedrivePolicy":     string(redrive),
		},
	})
	must("create queue", err)
	p.queueURL = aws.ToString(q.QueueUrl)
	p.queueArn = queueArn(t, p.sqs, p.queueURL)

	// The very pattern the stacks deploy.
	pattern, _ := json.Marshal(names.ConfigEventPattern(name))
	_, err = eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(name), EventPattern: aws.String(string(pattern))})
	must("put rule", err)
	_, err = eb.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String(name), Targets: []ebtypes.Target{{Id: aws.String("queue"), Arn: aws.String(p.queueArn)}},
	})
	must("put target", err)
	return p
}

func queueArn(t testing.TB, c *sqs.Client, url string) string {
	t.Helper()
	out, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn},
	})
	if err != nil {
		t.Fatalf("queue ARN: %v", err)
	}
	return out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
}

func (p *pipeline) put(t testing.TB, key, body string) {
	t.Helper()
	_, err := p.s3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(p.bucket), Key: aws.String(key), Body: strings.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// putConfigs uploads n decision-tree configs, configs/<name>/cNNN.yaml with
// version <name>-NNN, from 8 goroutines.
func (p *pipeline) putConfigs(t testing.TB, name string, n int) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				p.put(t, fmt.Sprintf("configs/%s/c%03d.yaml", name, i), treeConfig(fmt.Sprintf("%s-%03d", name, i)))
			}
		})
	}
	wg.Wait()
}

// assertQueueEmpty fails the test if the work queue holds any message,
// visible or in flight.
func (p *pipeline) assertQueueEmpty(t testing.TB) {
	t.Helper()
	if v, f := p.queueDepth(t, p.queueURL); v+f != 0 {
		t.Errorf("queue still holds %d+%d (visible+in flight) messages", v, f)
	}
}

// assertDLQEmpty fails the test if anything reached the dead-letter queue.
func (p *pipeline) assertDLQEmpty(t testing.TB) {
	t.Helper()
	if d := p.drainDLQ(t); len(d) != 0 {
		t.Errorf("DLQ holds %d messages", len(d))
	}
}

func (p *pipeline) get(t testing.TB, key string) ([]byte, bool) {
	t.Helper()
	out, err := p.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(p.bucket), Key: aws.String(key)})
	if err != nil {
		var nf *s3types.NoSuchKey
		if errors.As(err, &nf) {
			return nil, false
		}
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, true
}

// keys lists the bucket's keys under prefix.
func (p *pipeline) keys(t testing.TB, prefix string) []string {
	t.Helper()
	return p.list(t, &s3.ListObjectsV2Input{Bucket: aws.String(p.bucket), Prefix: aws.String(prefix)})
}

// recordKeys lists the run records: the keys right under runs/ (the
// recent-runs index is a folder there).
func (p *pipeline) recordKeys(t testing.TB) []string {
	t.Helper()
	return p.list(t, &s3.ListObjectsV2Input{Bucket: aws.String(p.bucket), Prefix: aws.String(names.RecordPrefix), Delimiter: aws.String("/")})
}

func (p *pipeline) list(t testing.TB, in *s3.ListObjectsV2Input) []string {
	t.Helper()
	prefix := aws.ToString(in.Prefix)
	var ks []string
	pg := s3.NewListObjectsV2Paginator(p.s3, in)
	for pg.HasMorePages() {
		out, err := pg.NextPage(context.Background())
		if err != nil {
			t.Fatalf("list %s: %v", prefix, err)
		}
		for _, o := range out.Contents {
			ks = append(ks, aws.ToString(o.Key))
		}
	}
	return ks
}

// record is the part of a run record the tests look at.
type record struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Source struct {
		Bucket    string `json:"bucket"`
		Key       string `json:"key"`
		VersionID string `json:"version_id"`
	} `json:"source"`
	Version string `json:"version"`
}

// records reads every run record, keyed by source key.
func (p *pipeline) records(t testing.TB) map[string][]record {
	t.Helper()
	out := map[string][]record{}
	for _, k := range p.recordKeys(t) {
		b, ok := p.get(t, k)
		if !ok {
			t.Fatalf("record %s vanished", k)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("record %s: %v", k, err)
		}
		out[r.Source.Key] = append(out[r.Source.Key], r)
	}
	return out
}

// queueDepth is the number of visible plus in-flight messages of url.
func (p *pipeline) queueDepth(t testing.TB, url string) (visible, inFlight int) {
	t.Helper()
	out, err := p.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		t.Fatalf("queue depth: %v", err)
	}
	visible, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)])
	inFlight, _ = strconv.Atoi(out.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible)])
	return visible, inFlight
}

// waitQueued polls until the work queue holds n messages (events arrive
// asynchronously from EventBridge).
func (p *pipeline) waitQueued(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, f := p.queueDepth(t, p.queueURL)
		if v+f >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d+%d messages after %v, want %d", v, f, timeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDone polls until key has a run record and the work queue is empty
// (the message was settled after the record was written).
func (p *pipeline) waitDone(t testing.TB, key string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := p.records(t)[key]
		if v, f := p.queueDepth(t, p.queueURL); len(recs) > 0 && v+f == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not done after %v (records %+v)", key, timeout, recs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dlqMessage is one message found in the DLQ.
type dlqMessage struct {
	Body  string
	Attrs map[string]string
}

// drainDLQ receives (and deletes) everything in the DLQ.
func (p *pipeline) drainDLQ(t testing.TB) []dlqMessage {
	t.Helper()
	var out []dlqMessage
	for empty := 0; empty < 2; {
		r, err := p.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(p.dlqURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			t.Fatalf("receive DLQ: %v", err)
		}
		if len(r.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range r.Messages {
			attrs := map[string]string{}
			for k, v := range m.MessageAttributes {
				attrs[k] = aws.ToString(v.StringValue)
			}
			out = append(out, dlqMessage{Body: aws.ToString(m.Body), Attrs: attrs})
			_, _ = p.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(p.dlqURL), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return out
}

// env is the child consumer's environment for this pipeline.
func (p *pipeline) env(extra ...string) []string {
	e := append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, moto.Env()...)
	e = append(e,
		names.EnvQueueURL+"="+p.queueURL,
		names.EnvDLQURL+"="+p.dlqURL,
		names.EnvBucket+"="+p.bucket,
		names.EnvWaitSeconds+"=1",
	)
	return append(e, extra...)
}

// child is a running consumer binary.
type child struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startChild(t testing.TB, env []string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(consumerBin, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	c.cmd.Env = env
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start consumer: %v", err)
	}
	go func() { c.err = c.cmd.Wait(); close(c.done) }()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("consumer %v stderr:\n%s", args, c.stderr.String())
		}
	})
	return c
}

// wait waits for the child to exit and returns its exit code.
func (c *child) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("consumer still running after %v", timeout)
	}
	if c.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("consumer: %v", c.err)
	return -1
}

// waitLog polls the child's log (stderr) until a line contains all of parts.
func (c *child) waitLog(t testing.TB, timeout time.Duration, parts ...string) {
	t.Helper()
	c.waitLine(t, c.stderr, "log", timeout, parts)
}

// waitMetric polls the child's stdout (its EMF lines) until a line contains
// all of parts.
func (c *child) waitMetric(t testing.TB, timeout time.Duration, parts ...string) {
	t.Helper()
	c.waitLine(t, c.stdout, "metrics", timeout, parts)
}

func (c *child) waitLine(t testing.TB, out *syncBuffer, what string, timeout time.Duration, parts []string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, l := range strings.Split(out.String(), "\n") {
			if containsAll(l, parts) {
				return
			}
		}
		select {
		case <-c.done:
			t.Fatalf("consumer exited before writing a %s line with %q", what, parts)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s line with %q after %v", what, parts, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// syncBuffer is written by a child process and read by the test.
type syncBuffer = syncbuf.Buffer

// envVia is env with every AWS call going through endpoint (a proxy).
func (p *pipeline) envVia(endpoint string, extra ...string) []string {
	// exec uses the last of duplicate keys, so this overrides moto's.
	return append(p.env(extra...), "AWS_ENDPOINT_URL="+endpoint)
}

// slowS3 is a proxy to moto that holds every artifact upload until
// released: a slow S3, and a reliable "the job is mid-way" signal.
type slowS3 struct {
	URL      string
	held     chan struct{}
	heldOnce sync.Once
	released chan struct{}
	relOnce  sync.Once
}

func newSlowS3(t testing.TB) *slowS3 {
	t.Helper()
	target, err := url.Parse(moto.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	// Requests of a killed consumer end in errors that are expected here.
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	s := &slowS3{held: make(chan struct{}), released: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/"+names.ArtifactPrefix) {
			s.heldOnce.Do(func() { close(s.held) })
			select {
			case <-s.released:
			case <-r.Context().Done(): // the client gave up or was killed
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	s.URL = srv.URL
	t.Cleanup(func() { s.release(); srv.Close() })
	return s
}

// waitHeld waits until an artifact upload is being held.
func (s *slowS3) waitHeld(t testing.TB, timeout time.Duration) {
	t.Helper()
	select {
	case <-s.held:
	case <-time.After(timeout):
		t.Fatalf("no artifact upload within %v", timeout)
	}
}

// release lets held and later uploads through.
func (s *slowS3) release() { s.relOnce.Do(func() { close(s.released) }) }

// fakeAgent is the ECS agent's task-protection endpoint.
type fakeAgent struct {
	URL     string
	mu      sync.Mutex
	calls   []string
	refusal string // when set, the answer to every request (HTTP 200)
}

func newFakeAgent(t testing.TB) *fakeAgent {
	t.Helper()
	a := &fakeAgent{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ProtectionEnabled bool
			ExpiresInMinutes  *int
		}
		if r.Method != http.MethodPut || !strings.HasSuffix(r.URL.Path, "/task-protection/v1/state") || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		state := "off"
		if body.ProtectionEnabled {
			state = "on"
			if body.ExpiresInMinutes != nil {
				state += " " + strconv.Itoa(*body.ExpiresInMinutes)
			}
		}
		a.mu.Lock()
		a.calls = append(a.calls, state)
		refusal := a.refusal
		a.mu.Unlock()
		if refusal != "" {
			_, _ = io.WriteString(w, refusal)
			return
		}
		fmt.Fprintf(w, `{"protection":{"ProtectionEnabled":%v,"TaskArn":"arn:aws:ecs:us-east-1:123456789012:task/edp/1"}}`, body.ProtectionEnabled)
	}))
	t.Cleanup(srv.Close)
	a.URL = srv.URL
	return a
}

// refuse makes the agent answer every request with body, as the real agent
// does when its call to ECS fails.
func (a *fakeAgent) refuse(body string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refusal = body
}

// states lists the protection states asked for so far ("on <minutes>" or
// "off").
func (a *fakeAgent) states() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.calls...)
}
