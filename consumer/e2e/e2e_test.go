package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// treeConfig is a small, fast decision-tree config writing to its own
// artifact folder.
func treeConfig(version string) string {
	return fmt.Sprintf("run_config:\n  version: %s\nmodel:\n  type: DecisionTreeClassifier\n  params:\n    max_depth: 3\n", version)
}

// runnerProcessor runs the real pipeline job against p's bucket, as the
// consumer's drain and serve do.
func runnerProcessor(p *pipeline) *job.QueueProcessor {
	objects := store.NewS3(p.s3, p.bucket)
	return &job.QueueProcessor{Runner: &job.Runner{In: objects, Out: objects, Version: "e2e"}, Bucket: p.bucket}
}

func newConsumer(t *testing.T, p *pipeline, cfg worker.Config, proc worker.Processor) *worker.Consumer {
	t.Helper()
	cfg.QueueURL, cfg.DLQURL = p.queueURL, p.dlqURL
	if cfg.WaitTime == 0 {
		cfg.WaitTime = time.Second
	}
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	c, err := worker.New(cfg, p.sqs, proc)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The whole path through the real binary: upload -> EventBridge -> SQS ->
// consumer drain -> artifacts and a succeeded run record.
func TestUploadToArtifacts(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	p.put(t, "configs/team a/iris tree.yaml", treeConfig("upload-1"))
	p.put(t, "configs/notes.txt", "not a config: the rule filters it out")
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.env(names.EnvVisibilityTimeout+"=30"), "drain")
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("drain exit code %d", code)
	}
	recs := p.records(t)
	r := recs["configs/team a/iris tree.yaml"]
	if len(recs) != 1 || len(r) != 1 || r[0].Status != runrecord.StatusSucceeded || r[0].Source.VersionID == "" {
		t.Fatalf("records %+v: want one succeeded record for the upload, with its version id", recs)
	}
	// The version folder's pointer names the run; its files are complete.
	folder := names.VersionFolder(names.ArtifactPrefix, "upload-1")
	ptr, err := job.ReadPointer(context.Background(), store.NewS3(p.s3, p.bucket), folder)
	if err != nil || ptr.RunID != r[0].RunID {
		t.Fatalf("pointer %+v, %v: want it to name run %s", ptr, err, r[0].RunID)
	}
	for _, f := range []string{runrecord.ModelFile, runrecord.MetricsFile, runrecord.RunFile} {
		if _, ok := p.get(t, ptr.FileKey(folder, f)); !ok {
			t.Errorf("artifact %s missing", f)
		}
	}
	p.assertQueueEmpty(t)
	// Logs are JSON with the run's identity; metrics are EMF on stdout.
	c.waitLog(t, time.Second, `"msg":"job done"`, `"outcome":"succeeded"`, `"s3_key":"configs/team a/iris tree.yaml"`, `"run_id":"`+r[0].RunID+`"`)
	if out := c.stdout.String(); !strings.Contains(out, `"JobsSucceeded":1`) || !strings.Contains(out, `"Namespace":"edp/consumer"`) {
		t.Errorf("stdout lacks the EMF line:\n%s", out)
	}
}

// 200 uploads drained by two concurrent consumers: 200 succeeded records,
// none lost, none duplicated.
func TestBatchOf200(t *testing.T) {
	t.Parallel()
	const n = 200
	p := newPipeline(t, 30, 3)
	var wg sync.WaitGroup
	p.putConfigs(t, "batch", n)
	p.waitQueued(t, n, 60*time.Second)

	var total worker.Stats
	var mu sync.Mutex
	for range 2 {
		wg.Go(func() {
			c := newConsumer(t, p, worker.Config{Concurrency: 4, EmptyReceives: 2}, runnerProcessor(p))
			st, err := c.Drain(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.Received += st.Received
			total.Succeeded += st.Succeeded
			total.Duplicates += st.Duplicates
			total.DeadLettered += st.DeadLettered
			mu.Unlock()
		})
	}
	wg.Wait()

	recs := p.records(t)
	if len(recs) != n {
		t.Errorf("%d configs have records, want %d", len(recs), n)
	}
	for k, rs := range recs {
		if len(rs) != 1 || rs[0].Status != runrecord.StatusSucceeded {
			t.Errorf("%s: records %+v, want exactly one succeeded", k, rs)
		}
	}
	// The emulator, like AWS, may deliver an event more than once; a
	// duplicate processed at the same time as its twin also ends
	// "succeeded" (same run id, same bytes, one record — checked above).
	// What must hold: every received message was settled as a success, and
	// at least one success per config.
	if total.Succeeded+total.Duplicates != total.Received || total.Succeeded < n || total.DeadLettered != 0 {
		t.Errorf("stats %+v: want every one of the received messages succeeded or duplicate, at least %d succeeded", total, n)
	}
	if extra := total.Received - n; extra > 0 {
		t.Logf("%d duplicate deliveries, settled idempotently", extra)
	}
	p.assertQueueEmpty(t)
	p.assertDLQEmpty(t)
}

// A duplicated delivery of the same event yields one result.
func TestDuplicateDeliveryIsIdempotent(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	p.put(t, "configs/dup.yaml", treeConfig("dup"))
	p.waitQueued(t, 1, 30*time.Second)
	// Copy the event (as SQS may deliver it twice) and put the original back.
	ctx := context.Background()
	r, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(p.queueURL), MaxNumberOfMessages: 1, WaitTimeSeconds: 5})
	if err != nil || len(r.Messages) != 1 {
		t.Fatalf("receive the event: %v (%d messages)", err, len(r.Messages))
	}
	m := r.Messages[0]
	if _, err := p.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(p.queueURL), MessageBody: m.Body}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sqs.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(p.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	// One worker, so the copies run one after the other.
	c := newConsumer(t, p, worker.Config{Concurrency: 1, EmptyReceives: 2}, runnerProcessor(p))
	st, err := c.Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// At least the copy is a duplicate (the emulator, like SQS, may add
	// another delivery of its own); exactly one run did the work.
	if st.Succeeded-st.Duplicates != 1 || st.Duplicates < 1 || st.Received != st.Succeeded {
		t.Errorf("stats %+v: want one fresh success and the rest duplicates", st)
	}
	if recs := p.recordKeys(t); len(recs) != 1 {
		t.Errorf("records %v, want exactly one", recs)
	}
}

// Poison messages and permanent job failures go to the DLQ at once with a
// reason; a bad config also leaves a failure record.
func TestPoisonAndBadConfigGoToDLQ(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	ctx := context.Background()
	p.put(t, "configs/bad.yaml", "model:\n  type: SupportVectorMachine\n")
	p.waitQueued(t, 1, 30*time.Second)
	for _, body := range []string{
		"hello, queue",
		`{"config": "s3://someone-elses-bucket/configs/x.yaml"}`,
		`{"config": "s3://` + p.bucket + `/configs/missing.yaml"}`,
	} {
		if _, err := p.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(p.queueURL), MessageBody: aws.String(body)}); err != nil {
			t.Fatal(err)
		}
	}
	var calls sync.Map
	proc := runnerProcessor(p)
	counting := worker.ProcessorFunc(func(ctx context.Context, m *worker.Message) (worker.Result, error) {
		n, _ := calls.LoadOrStore(m.ID, new(int))
		*n.(*int)++
		return proc.Process(ctx, m)
	})
	c := newConsumer(t, p, worker.Config{Concurrency: 2, EmptyReceives: 2}, counting)
	st, err := c.Drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.DeadLettered != 4 || st.Retried != 0 {
		t.Errorf("stats %+v: want 4 dead-lettered at once, no retries", st)
	}
	dlq := p.drainDLQ(t)
	reasons := map[string]string{}
	for _, m := range dlq {
		reasons[m.Body] = m.Attrs[worker.AttrReason]
		if m.Attrs[worker.AttrOriginalMessageID] == "" || m.Attrs[worker.AttrReceiveCount] != "1" {
			t.Errorf("DLQ message %q attributes %v: want original id and receive count 1", m.Body, m.Attrs)
		}
	}
	if len(dlq) != 4 {
		t.Fatalf("DLQ holds %d messages, want 4: %v", len(dlq), reasons)
	}
	want := map[string]string{
		"hello, queue": "poison",
		`{"config": "s3://someone-elses-bucket/configs/x.yaml"}`: "not the pipeline bucket",
	}
	for body, reason := range want {
		if !strings.Contains(reasons[body], reason) {
			t.Errorf("DLQ reason for %q = %q, want it to mention %q", body, reasons[body], reason)
		}
	}
	var badReason string
	for body, r := range reasons {
		if strings.Contains(body, `"configs/bad.yaml"`) {
			badReason = r
		}
	}
	if !strings.Contains(badReason, "SupportVectorMachine") {
		t.Errorf("bad config DLQ reason %q: want the unknown model named (reasons: %v)", badReason, reasons)
	}
	recs := p.records(t)
	if r := recs["configs/bad.yaml"]; len(r) != 1 || r[0].Status != runrecord.StatusFailed || !strings.Contains(r[0].Error, "SupportVectorMachine") {
		t.Errorf("bad config records %+v: want one failure record naming the model", r)
	}
	calls.Range(func(k, v any) bool {
		if *v.(*int) != 1 {
			t.Errorf("%v processed %d times, want once (no retries for permanent failures)", k, *v.(*int))
		}
		return true
	})
	p.assertQueueEmpty(t)
}

// A job three times longer than the visibility timeout runs once: the
// heartbeat keeps its message hidden from the second consumer, which keeps
// polling until the job is done. The 5 s timeout (heartbeat every 2.5 s)
// leaves room for a slow emulator call on a loaded machine.
func TestHeartbeatKeepsLongJobHidden(t *testing.T) {
	t.Parallel()
	const visibility = 5 * time.Second
	p := newPipeline(t, int(visibility/time.Second), 3)
	p.put(t, "configs/long.yaml", treeConfig("long"))
	p.waitQueued(t, 1, 30*time.Second)

	var mu sync.Mutex
	var runs []string
	proc := runnerProcessor(p)
	slow := worker.ProcessorFunc(func(ctx context.Context, m *worker.Message) (worker.Result, error) {
		mu.Lock()
		runs = append(runs, m.ID)
		mu.Unlock()
		select {
		case <-time.After(3 * visibility):
		case <-ctx.Done():
			return worker.Result{}, ctx.Err()
		}
		return proc.Process(ctx, m)
	})
	// Both consumers serve until the job is done and its message deleted,
	// so whichever did not get the message polls for the whole job.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for range 2 {
		wg.Go(func() {
			c := newConsumer(t, p, worker.Config{Concurrency: 2, VisibilityTimeout: visibility}, slow)
			if _, err := c.Serve(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	p.waitDone(t, "configs/long.yaml", 90*time.Second)
	stop()
	wg.Wait()
	if len(runs) != 1 {
		t.Errorf("job started %d times (%v), want once", len(runs), runs)
	}
	if recs := p.records(t); len(recs["configs/long.yaml"]) != 1 || recs["configs/long.yaml"][0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want one succeeded", recs)
	}
	p.assertDLQEmpty(t)
}

// SIGTERM while a job is mid-way (its artifact upload held by a slow S3):
// the consumer stops receiving, finishes the job within the grace, deletes
// the message and exits 0.
func TestSIGTERMFinishesInFlightJob(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	slow := newSlowS3(t)
	p.put(t, "configs/term.yaml", treeConfig("term"))
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.envVia(slow.URL, names.EnvVisibilityTimeout+"=30"), "serve", "-grace", "60s")
	slow.waitHeld(t, 60*time.Second) // the job is writing artifacts now
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.waitLog(t, 30*time.Second, "stopping: waiting for jobs in flight")
	slow.release() // S3 answers again, within the grace
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if recs := p.records(t); len(recs["configs/term.yaml"]) != 1 || recs["configs/term.yaml"][0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want the in-flight job finished", recs)
	}
	p.assertQueueEmpty(t)
	// Nothing was received after the signal: one job, one receive count.
	c.waitLog(t, time.Second, `"msg":"stopped"`, `"received":1`, `"succeeded":1`)
}

// SIGTERM when the job cannot finish within the grace: the job is cancelled,
// its message released at once (not after the visibility timeout), the
// process exits 0, and the next consumer completes the job.
func TestSIGTERMReleasesUnfinishedJob(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 300, 3) // a release must not wait for this
	slow := newSlowS3(t)
	p.put(t, "configs/release.yaml", treeConfig("release"))
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.envVia(slow.URL, names.EnvVisibilityTimeout+"=300"), "serve", "-grace", "500ms")
	slow.waitHeld(t, 60*time.Second)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	c.waitLog(t, time.Second, `"msg":"releasing message"`)
	slow.release()

	// Visible again at once: a second consumer (straight to moto) finishes it.
	c2 := startChild(t, p.env(names.EnvVisibilityTimeout+"=300"), "drain", "-empty-receives", "2")
	if code := c2.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("second consumer exit code %d", code)
	}
	recs := p.records(t)["configs/release.yaml"]
	if len(recs) == 0 || recs[len(recs)-1].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want the job completed by the second consumer", recs)
	}
	p.assertQueueEmpty(t)
}

// SIGKILL mid-job loses nothing: the message reappears after its visibility
// timeout and a second consumer completes the job.
func TestSIGKILLJobCompletedBySecondConsumer(t *testing.T) {
	t.Parallel()
	const visibility = 3
	p := newPipeline(t, visibility, 3)
	slow := newSlowS3(t)
	p.put(t, "configs/kill.yaml", treeConfig("kill"))
	p.waitQueued(t, 1, 30*time.Second)

	// One worker: a heartbeat delayed on a loaded machine cannot let this
	// consumer take its own message a second time.
	c := startChild(t, p.envVia(slow.URL, fmt.Sprintf("%s=%d", names.EnvVisibilityTimeout, visibility)), "serve", "-concurrency", "1")
	slow.waitHeld(t, 60*time.Second)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	if !c.cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("consumer was not killed: %v", c.cmd.ProcessState)
	}
	slow.release()
	if recs := p.records(t); len(recs) != 0 && slices.ContainsFunc(recs["configs/kill.yaml"], func(r record) bool { return r.Status == runrecord.StatusSucceeded }) {
		t.Fatalf("job finished before the kill: %+v", recs)
	}

	// The second consumer serves until the job is done (the message comes
	// back within the visibility timeout), however slow the machine.
	c2 := startChild(t, p.env(fmt.Sprintf("%s=%d", names.EnvVisibilityTimeout, visibility)), "serve")
	p.waitDone(t, "configs/kill.yaml", 60*time.Second)
	if err := c2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c2.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("second consumer exit code %d", code)
	}
	recs := p.records(t)["configs/kill.yaml"]
	if len(recs) != 1 || recs[0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want one succeeded record from the second consumer", recs)
	}
	c2.waitLog(t, time.Second, `"msg":"job done"`, `"receive_count":2`)
	p.assertQueueEmpty(t)
	p.assertDLQEmpty(t)
}

// In serve mode on ECS the real binary holds task scale-in protection while
// a job runs and drops it once idle (against a fake ECS agent).
func TestServeHoldsScaleInProtection(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	slow := newSlowS3(t)
	agent := newFakeAgent(t)
	p.put(t, "configs/protect.yaml", treeConfig("protect"))
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.envVia(slow.URL, names.EnvVisibilityTimeout+"=30", "ECS_AGENT_URI="+agent.URL+"/v4/task-1"), "serve")
	slow.waitHeld(t, 60*time.Second)
	// Protection is asked for right after the job is dispatched; the job is
	// held mid-way until released, so this state is seen while it runs.
	for deadline := time.Now().Add(30 * time.Second); len(agent.states()) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := agent.states(); !slices.Equal(got, []string{"on 32"}) {
		t.Errorf("protection mid-job %v, want [on 32] (2 x 15m job timeout + 100s grace, in minutes)", got)
	}
	slow.release()
	// Idle: the job is done and a receive came back empty.
	for deadline := time.Now().Add(30 * time.Second); len(agent.states()) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("protection %v, want it dropped once idle", agent.states())
		}
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got := agent.states(); !slices.Equal(got, []string{"on 32", "off"}) {
		t.Errorf("protection calls %v, want [on 32 off]", got)
	}
	if recs := p.records(t)["configs/protect.yaml"]; len(recs) != 1 || recs[0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want one succeeded", recs)
	}
}

// When the task role lacks ecs:UpdateTaskProtection the agent answers with
// an AccessDeniedException (its documented error body): the real binary says
// so loudly — a warning with the reason and a ProtectionFailures metric —
// and the work still gets done.
func TestServeReportsRefusedProtection(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 30, 3)
	agent := newFakeAgent(t)
	agent.refuse(`{"requestID":"12345-abc","error":{"Arn":"arn:aws:ecs:us-east-1:123456789012:task/edp/1","Code":"AccessDeniedException",` +
		`"Message":"User: arn:aws:sts::123456789012:assumed-role/edp-task/1 is not authorized to perform: ecs:UpdateTaskProtection"}}`)
	p.put(t, "configs/denied.yaml", treeConfig("denied"))
	p.waitQueued(t, 1, 30*time.Second)

	c := startChild(t, p.env(names.EnvVisibilityTimeout+"=30", "ECS_AGENT_URI="+agent.URL+"/v4/task-1"), "serve")
	c.waitLog(t, 30*time.Second, `"level":"WARN"`, `"msg":"task protection not enabled"`,
		`"reason":"AccessDeniedException: User: arn:aws:sts::123456789012:assumed-role/edp-task/1 is not authorized to perform: ecs:UpdateTaskProtection"`)
	c.waitMetric(t, 10*time.Second, `"ProtectionFailures":1`, `"reason":"AccessDeniedException: `, `"Mode":"serve"`)
	p.waitDone(t, "configs/denied.yaml", 60*time.Second)
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := c.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if recs := p.records(t)["configs/denied.yaml"]; len(recs) != 1 || recs[0].Status != runrecord.StatusSucceeded {
		t.Errorf("records %+v, want one succeeded", recs)
	}
}

// A job that keeps failing transiently is retried with a delay, then the
// queue's redrive policy moves it to the DLQ: never retried forever, never
// dropped.
func TestTransientFailuresEndInDLQByRedrive(t *testing.T) {
	t.Parallel()
	const maxReceives = 2
	p := newPipeline(t, 30, maxReceives)
	p.put(t, "configs/flaky.yaml", treeConfig("flaky"))
	p.waitQueued(t, 1, 30*time.Second)

	var mu sync.Mutex
	var attempts []time.Time
	failing := worker.ProcessorFunc(func(context.Context, *worker.Message) (worker.Result, error) {
		mu.Lock()
		attempts = append(attempts, time.Now())
		mu.Unlock()
		return worker.Result{}, errors.New("get object: 503 SlowDown")
	})
	// 30 s visibility, but a transient failure hides the message only for
	// the retry delay (1 s, then 2 s).
	c := newConsumer(t, p, worker.Config{Concurrency: 1, EmptyReceives: 5, RetryDelay: time.Second}, failing)
	st, err := c.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != maxReceives || st.Retried != maxReceives || st.DeadLettered != 0 {
		t.Fatalf("%d attempts, stats %+v: want %d retried attempts", len(attempts), st, maxReceives)
	}
	if gap := attempts[1].Sub(attempts[0]); gap < time.Second || gap > 20*time.Second {
		t.Errorf("retry came %v after the failure, want about the 1 s retry delay, well before the 30 s visibility timeout", gap)
	}
	dlq := p.drainDLQ(t)
	if len(dlq) != 1 || !strings.Contains(dlq[0].Body, "configs/flaky.yaml") {
		t.Fatalf("DLQ %+v, want the event redriven by the queue", dlq)
	}
	if _, ok := dlq[0].Attrs[worker.AttrReason]; ok {
		t.Errorf("redriven message carries %s: the consumer moved it itself", worker.AttrReason)
	}
	p.assertQueueEmpty(t)
}

// A queue whose visibility timeout is 0 would hand every message out again
// at once: the real binary refuses to start on it, naming the attribute.
func TestZeroVisibilityQueueRefused(t *testing.T) {
	t.Parallel()
	p := newPipeline(t, 0, 3)
	c := startChild(t, p.env(), "drain")
	if code := c.wait(t, 60*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	c.waitLog(t, time.Second, `"level":"ERROR"`, `VisibilityTimeout \"0\"`, "at least 2 seconds")
}
