// Package worker consumes the edp work queue: it long-polls SQS, runs one
// job per config-object message on a bounded pool, and settles every
// message exactly one way — deleted after success, moved to the
// dead-letter queue (then deleted) after a permanent failure, or made
// visible again after a transient failure or an interrupted stop. Nothing
// is dropped: a message the consumer cannot settle (a crash, SIGKILL)
// reappears after its visibility timeout.
//
// While a job runs, a heartbeat extends its message's visibility every half
// of the visibility timeout, so a job longer than the timeout is not
// delivered twice; the heartbeat ends at the job's Config.JobTimeout, so a
// job that overruns it loses its hold on the message. The consumer
// receives only as many messages as it has free workers (back-pressure).
// On a stop signal it starts no new receive (the long poll under way ends
// normally and what it brings is released), lets in-flight jobs finish
// within Config.Grace of the signal, then cancels them and releases their
// messages (visibility 0) for another consumer; the calls after the grace
// are bounded (about 13 s in all).
//
// The job itself is a Processor; the package knows nothing about configs
// or models.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/consumer/event"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// ErrPermanent marks a Processor error that retrying cannot fix: the
// message goes to the dead-letter queue at once. Any other error is
// transient and the message is retried after Config.RetryDelay (the queue's
// redrive policy ends endless retries).
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent (errors.Is(result, ErrPermanent))
// without changing its message. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// Job is one config object to process.
type Job struct {
	// Bucket and Key name the config object.
	Bucket, Key string
	// VersionID and ETag identify its content when the event carried them.
	VersionID, ETag string
	// Sequencer is the S3 event's sequencer, when it has one: with the ETag
	// it identifies an upload to a bucket without versions, and it orders
	// the uploads of one key.
	Sequencer string
	// EventTime is when the upload happened, from the event; for a message
	// without one (a manual submit), when the message was sent.
	EventTime time.Time
	// MessageID is the SQS message id (for logs).
	MessageID string
}

// Result is what the consumer needs to know about a successful job.
type Result struct {
	// RunID identifies the run (logged and put on metrics lines).
	RunID string
	// Duplicate is true when the run had already succeeded before (a
	// redelivered message): nothing was rewritten.
	Duplicate bool
}

// Processor runs one job. It must be idempotent: SQS delivers at least
// once, so the same Job may arrive again after it succeeded. A panic in
// Process is recovered and treated as a permanent failure (the message goes
// to the dead-letter queue, the stack to the log); the other jobs go on.
type Processor interface {
	Process(ctx context.Context, j Job) (Result, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, j Job) (Result, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, j Job) (Result, error) { return f(ctx, j) }

// SQSAPI is the part of *sqs.Client the consumer uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	// GetQueueAttributes tells a drain whether the queue still holds
	// messages, visible or in flight.
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Message attributes set on every copy moved to the dead-letter queue
// (names.Attr*, where they are documented).
const (
	AttrReason            = names.AttrFailureReason
	AttrOriginalMessageID = names.AttrOriginalMessageID
	AttrReceiveCount      = names.AttrReceiveCount
	AttrFailedAt          = names.AttrFailedAt
)

// MaxReasonBytes bounds the AttrReason of a dead-lettered message: at most
// this many bytes of UTF-8, cut at a character boundary and marked with
// "…" when cut (textlimit.Clip).
const MaxReasonBytes = 1000

// Outcomes, as logged in the "outcome" field and put on metrics lines.
const (
	OutcomeSucceeded    = "succeeded"
	OutcomeDuplicate    = "duplicate"
	OutcomeDeadLettered = "dead_lettered"
	OutcomeRetry        = "retry"
	OutcomeReleased     = "released"
	OutcomeTestEvent    = "test_event"
)

// Stats counts what a run did with the messages it received.
type Stats struct {
	Received, Succeeded, Duplicates, DeadLettered, Retried, Released, TestEvents int
}

// Consumer consumes one queue. Create it with New; Drain or Serve it once.
type Consumer struct {
	cfg  Config
	sqs  SQSAPI
	proc Processor
	log  *slog.Logger

	inflight atomic.Int64
	mu       sync.Mutex
	stats    Stats
	open     map[*delivery]struct{} // received and not yet settled
	settling sync.WaitGroup         // settles that won their claim and are still running
	deleter  *deleter

	// Waits, as fields so tests can shorten them.
	receiveBackoff time.Duration // after a failed receive, times the failures in a row
	releaseWait    time.Duration // after the grace: time for cancelled jobs to return
	stopBudget     time.Duration // the calls after that: releases, deletes, protection
}

// New validates cfg and returns a consumer.
func New(cfg Config, client SQSAPI, proc Processor) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("invalid consumer settings: %w", err)
	}
	if client == nil || proc == nil {
		return nil, errors.New("invalid consumer settings: SQS client and processor are required")
	}
	c := &Consumer{
		cfg: cfg, sqs: client, proc: proc, log: cfg.Logger, open: map[*delivery]struct{}{},
		receiveBackoff: time.Second, releaseWait: 5 * time.Second, stopBudget: stopBudget,
	}
	c.deleter = &deleter{sqs: client, queueURL: cfg.QueueURL, log: cfg.Logger}
	return c, nil
}

// Concurrency is the number of jobs the consumer runs at once (after
// defaults).
func (c *Consumer) Concurrency() int { return c.cfg.Concurrency }

// ErrNotDrained is wrapped by the error Drain returns when the queue still
// held messages (visible, in flight or delayed), or its counts could not be
// read, for the whole wait after the receives came back empty.
var ErrNotDrained = errors.New("queue not drained")

// Drain consumes until the queue is drained, Config.MaxRunTime, or ctx is
// cancelled, waits for the jobs in flight (within Config.Grace once ctx is
// cancelled) and returns.
//
// Drained means: Config.EmptyReceives empty receives in a row with no job
// of this consumer in flight, and then the queue's attributes showing
// nothing visible, nothing in flight and nothing delayed on two checks in a
// row (the counts are approximate). Empty receives are not enough: a
// receive whose response was lost, or a message waiting out its retry
// delay, leaves messages hidden that no receive can see yet. While the
// counts are not zero the drain keeps receiving, for up to the visibility
// timeout plus drainMargin (by then a stranded message has reappeared and
// been received; what is still hidden is held by another consumer), then
// returns an error wrapping ErrNotDrained. It also returns an error when
// the queue cannot be read at all.
func (c *Consumer) Drain(ctx context.Context) (Stats, error) { return c.run(ctx, true) }

// Serve consumes until ctx is cancelled, then stops like Drain. In serve
// mode the consumer holds ECS task scale-in protection while busy.
func (c *Consumer) Serve(ctx context.Context) (Stats, error) { return c.run(ctx, false) }

func (c *Consumer) run(ctx context.Context, drain bool) (Stats, error) {
	// Jobs outlive the stop signal by up to the grace period, so they get
	// their own context, cancelled only when the grace runs out.
	jobCtx, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	recvCtx := ctx
	if drain && c.cfg.MaxRunTime > 0 {
		var cancel context.CancelFunc
		recvCtx, cancel = context.WithTimeout(ctx, c.cfg.MaxRunTime)
		defer cancel()
	}
	protect := c.cfg.Protection
	if drain {
		protect = nil // one-off tasks are not in a service: nothing scales them in
	}

	// The grace counts from the stop signal, not from the end of a long
	// poll that was under way then.
	stoppedAt := make(chan time.Time, 1)
	defer context.AfterFunc(ctx, func() { stoppedAt <- time.Now() })()

	var wg sync.WaitGroup
	err := c.receiveLoop(recvCtx, jobCtx, drain, protect, &wg)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.waitInFlight(jobCtx, cancelJobs, done, <-stoppedAt)
	}
	// What is left shares one deadline, so a stop ends within the grace
	// plus releaseWait plus stopBudget (100 s + 5 s + 8 s by default, inside
	// ECS's 120 s stopTimeout).
	fin, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.stopBudget)
	defer cancel()
	var idle sync.WaitGroup
	idle.Go(func() { protect.Stop(fin) })
	c.releaseStuck(fin)
	c.waitSettles(fin)
	c.deleter.flush(fin)
	idle.Wait()

	c.mu.Lock()
	st := c.stats
	c.mu.Unlock()
	return st, err
}

// receiveLoop receives and dispatches until recvCtx ends or, in drain
// mode, the queue stays empty.
func (c *Consumer) receiveLoop(recvCtx, jobCtx context.Context, drain bool, protect *ecsprotect.Guard, wg *sync.WaitGroup) error {
	slots := make(chan struct{}, c.cfg.Concurrency) // one token per running job
	empties, failures := 0, 0
	watch := &drainWatch{c: c}
	for {
		// Back-pressure: block until a worker is free, then ask for at most
		// as many messages as there are free workers.
		select {
		case slots <- struct{}{}:
		case <-recvCtx.Done():
			return nil
		}
		if recvCtx.Err() != nil { // select picks at random when both were ready
			return nil
		}
		n := 1
		for n < maxBatch {
			select {
			case slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		msgs, err := c.receive(recvCtx, n)
		for range n - len(msgs) {
			<-slots
		}
		if recvCtx.Err() != nil {
			// The stop came during the long poll: start nothing, and hand
			// back at once whatever it brought.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(recvCtx), callTimeout)
			c.count(func(s *Stats) { s.Received += len(msgs) })
			c.handBack(rctx, msgs, "received after the stop signal")
			cancel()
			return nil
		}
		if err != nil {
			failures++
			c.log.ErrorContext(recvCtx, "receive messages", "error", err.Error(), "attempt", failures)
			if failures >= maxReceiveErrors {
				return fmt.Errorf("receive messages: %d attempts in a row failed: %w", failures, err)
			}
			select {
			case <-time.After(min(time.Duration(failures)*c.receiveBackoff, 10*c.receiveBackoff)):
			case <-recvCtx.Done():
				return nil
			}
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			if c.inflight.Load() == 0 {
				empties++
				protect.Idle()
				if drain {
					if done, err := watch.idle(recvCtx, empties); done || err != nil {
						return err
					}
				}
			}
			continue
		}
		empties = 0
		watch.reset()
		// Never blocks: the Guard talks to the agent on its own goroutine,
		// so a slow or hung agent delays neither receives nor jobs.
		protect.Busy()
		for _, m := range msgs {
			d := c.track(m)
			// Counted before the goroutine starts, so the next receive
			// cannot see "nothing in flight" and drop protection or end a
			// drain while this job is about to run.
			c.inflight.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				defer c.inflight.Add(-1)
				c.handle(jobCtx, d)
			}()
		}
	}
}

// receive long-polls for up to n messages. The call does not end with ctx:
// SQS may hand messages to a connection the client dropped, and they would
// stay hidden for the whole visibility timeout. The caller hands back what
// arrives after ctx ended.
func (c *Consumer) receive(ctx context.Context, n int) ([]types.Message, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.WaitTime+5*time.Second)
	defer cancel()
	out, err := c.sqs.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(c.cfg.QueueURL),
		MaxNumberOfMessages: int32(n),
		WaitTimeSeconds:     int32(c.cfg.WaitTime / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	})
	if err != nil {
		return nil, err
	}
	// A well-behaved queue never returns more than asked; if one did, the
	// extra messages would have no worker, so hand them straight back.
	if len(out.Messages) > n {
		c.count(func(s *Stats) { s.Received += len(out.Messages) - n })
		c.handBack(rctx, out.Messages[n:], "more messages than asked for")
		return out.Messages[:n], nil
	}
	return out.Messages, nil
}

// drainMargin is how long past the visibility timeout a drain waits for
// messages in flight: time for a message that reappeared to be received (a
// long poll is at most 20 s) and for the queue's counts to catch up.
const drainMargin = 30 * time.Second

// queueCounts are the queue's approximate message counts.
type queueCounts struct{ visible, inFlight, delayed int }

func (q queueCounts) total() int { return q.visible + q.inFlight + q.delayed }

func (q queueCounts) attrs() []any {
	return []any{"visible", q.visible, "in_flight", q.inFlight, "delayed", q.delayed}
}

// countMessages reads the queue's approximate message counts.
func (c *Consumer) countMessages(ctx context.Context) (queueCounts, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	attrNames := []types.QueueAttributeName{
		types.QueueAttributeNameApproximateNumberOfMessages,
		types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
	}
	out, err := c.sqs.GetQueueAttributes(cctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(c.cfg.QueueURL), AttributeNames: attrNames})
	if err != nil {
		return queueCounts{}, fmt.Errorf("read queue message counts: %w", err)
	}
	var n [3]int
	for i, name := range attrNames {
		v, err := strconv.Atoi(out.Attributes[string(name)])
		if err != nil {
			return queueCounts{}, fmt.Errorf("read queue message counts: attribute %s is %q", name, out.Attributes[string(name)])
		}
		n[i] = v
	}
	return queueCounts{visible: n[0], inFlight: n[1], delayed: n[2]}, nil
}

// drainWatch decides when an idle drain is finished (see Drain).
type drainWatch struct {
	c     *Consumer
	zeros int         // checks in a row that found the queue empty
	since time.Time   // when the drain began waiting for messages in flight
	last  queueCounts // what the previous check found, to log changes only
}

// reset is called when a receive brought messages: the wait starts over.
func (w *drainWatch) reset() { w.zeros, w.since = 0, time.Time{} }

// idle is called after each empty receive with no job in flight; empties
// counts them. It reports whether the drain is finished, or returns an
// error wrapping ErrNotDrained when the wait for messages in flight is
// over. The counts are read from the second-to-last empty receive on, so
// that a queue that is empty costs no receive more than EmptyReceives
// (unless that is 1).
func (w *drainWatch) idle(ctx context.Context, empties int) (done bool, err error) {
	c := w.c
	if empties < c.cfg.EmptyReceives-1 {
		return false, nil
	}
	counts, cerr := c.countMessages(ctx)
	switch {
	case ctx.Err() != nil:
		return false, nil // stopping anyway
	case cerr != nil:
		w.zeros = 0
		c.log.WarnContext(ctx, "drain: cannot tell whether the queue is empty", "error", cerr.Error())
	case counts.total() == 0:
		w.zeros++
	default:
		w.zeros = 0
	}
	if empties < c.cfg.EmptyReceives || w.zeros == 1 {
		return false, nil // one more look first
	}
	if w.zeros >= 2 {
		c.log.InfoContext(ctx, "queue is empty: nothing visible, nothing in flight", "empty_receives", empties, "checks", w.zeros)
		return true, nil
	}
	limit := c.cfg.VisibilityTimeout + drainMargin
	now := time.Now()
	switch {
	case w.since.IsZero():
		w.since = now
		c.log.InfoContext(ctx, "drain: receives are empty but the queue still holds messages; waiting for them to reappear",
			append(counts.attrs(), "wait_limit_ms", limit.Milliseconds(),
				"why", "messages in flight or delayed: a receive whose answer was lost, a retry delay, or another consumer's jobs")...)
	case cerr == nil && counts != w.last:
		c.log.InfoContext(ctx, "drain: still waiting for messages in flight", append(counts.attrs(), "waited_ms", now.Sub(w.since).Milliseconds())...)
	}
	if cerr == nil {
		w.last = counts
	}
	if now.Sub(w.since) < limit {
		return false, nil
	}
	if cerr != nil {
		return false, fmt.Errorf("%w: waited %v: %w", ErrNotDrained, limit, cerr)
	}
	return false, fmt.Errorf("%w: after waiting %v the queue still holds %d visible, %d in flight and %d delayed messages (held by another consumer, or delayed)",
		ErrNotDrained, limit, counts.visible, counts.inFlight, counts.delayed)
}

// waitInFlight runs after the stop signal: it waits for in-flight jobs
// until the grace (counted from stoppedAt) is over, then cancels them and
// gives them releaseWait to return.
func (c *Consumer) waitInFlight(jobCtx context.Context, cancelJobs context.CancelFunc, done <-chan struct{}, stoppedAt time.Time) {
	n := c.inflight.Load()
	if n > 0 {
		c.log.InfoContext(jobCtx, "stopping: waiting for jobs in flight", "in_flight", n, "grace_ms", c.cfg.Grace.Milliseconds())
	}
	grace := time.NewTimer(time.Until(stoppedAt.Add(c.cfg.Grace)))
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	}
	c.log.WarnContext(jobCtx, "grace period over: cancelling jobs in flight", "in_flight", c.inflight.Load())
	cancelJobs()
	wait := time.NewTimer(c.releaseWait)
	defer wait.Stop()
	select {
	case <-done:
	case <-wait.C:
	}
}

// releaseStuck hands every message still unsettled (its job ignored
// cancellation) to another consumer now rather than after its visibility
// timeout. A job that returns later finds its message settled.
func (c *Consumer) releaseStuck(ctx context.Context) {
	c.mu.Lock()
	var stuck []types.Message
	for d := range c.open {
		d.settled = true
		delete(c.open, d)
		stuck = append(stuck, d.msg)
	}
	c.mu.Unlock()
	c.handBack(ctx, stuck, "job did not stop after cancellation")
}

// waitSettles waits, until ctx ends, for settles under way, so that their
// deletes reach the final flush. None can start later: every message is
// settled by now, so later claims fail.
func (c *Consumer) waitSettles(ctx context.Context) {
	settled := make(chan struct{})
	go func() { c.settling.Wait(); close(settled) }()
	select {
	case <-settled:
	case <-ctx.Done():
	}
}

// handBack makes msgs visible again at once, in batches of ten sent in
// parallel, all bounded by ctx.
func (c *Consumer) handBack(ctx context.Context, msgs []types.Message, why string) {
	if len(msgs) == 0 {
		return
	}
	c.count(func(s *Stats) { s.Released += len(msgs) })
	var wg sync.WaitGroup
	for batch := range slices.Chunk(msgs, maxBatch) {
		wg.Go(func() {
			entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
			for i, m := range batch {
				c.log.InfoContext(ctx, "releasing message", "message_id", aws.ToString(m.MessageId), "outcome", OutcomeReleased, "reason", why)
				entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
			}
			out, err := c.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(c.cfg.QueueURL), Entries: entries})
			if err != nil {
				// They reappear when their current visibility runs out.
				c.log.WarnContext(ctx, "release messages", "messages", len(batch), "error", err.Error())
				return
			}
			for _, f := range out.Failed {
				if i, _ := strconv.Atoi(aws.ToString(f.Id)); i >= 0 && i < len(batch) {
					c.log.WarnContext(ctx, "release message", "message_id", aws.ToString(batch[i].MessageId),
						"error", fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
				}
			}
		})
	}
	wg.Wait()
}

// delivery is one received message on its way to being settled.
type delivery struct {
	msg      types.Message
	received time.Time
	settled  bool // guarded by Consumer.mu
}

func (d *delivery) id() string { return aws.ToString(d.msg.MessageId) }

func (d *delivery) receiveCount() int {
	n, _ := strconv.Atoi(d.msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

func (d *delivery) sentAt() time.Time {
	ms, err := strconv.ParseInt(d.msg.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (c *Consumer) track(m types.Message) *delivery {
	d := &delivery{msg: m, received: c.cfg.Now()}
	c.mu.Lock()
	c.open[d] = struct{}{}
	c.stats.Received++
	c.mu.Unlock()
	return d
}

// settle runs f unless d was settled already, so a message is deleted,
// dead-lettered or released exactly once even when the stop path and a
// late job race. The claim and its count in c.settling are one step under
// c.mu, so the stop path, once it has settled every open message, knows
// that every settle it must wait for is counted.
func (c *Consumer) settle(d *delivery, f func()) {
	c.mu.Lock()
	won := !d.settled
	if won {
		d.settled = true
		delete(c.open, d)
		c.settling.Add(1)
	}
	c.mu.Unlock()
	if !won {
		return
	}
	defer c.settling.Done()
	f()
}

func (c *Consumer) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// handle parses, runs and settles one message.
func (c *Consumer) handle(ctx context.Context, d *delivery) {
	log := c.log.With("message_id", d.id())

	m, err := event.Parse([]byte(aws.ToString(d.msg.Body)))
	if err == nil && m.Kind == event.KindConfig {
		err = c.accept(m)
	}
	if err != nil {
		c.settle(d, func() { c.deadLetter(ctx, log, d, "", Result{}, err, 0, time.Time{}) })
		return
	}
	if m.Kind == event.KindTestEvent {
		c.settle(d, func() {
			log.InfoContext(ctx, "dropping S3 test event", "bucket", m.Bucket, "outcome", OutcomeTestEvent)
			c.count(func(s *Stats) { s.TestEvents++ })
			c.deleter.add(ctx, d)
		})
		return
	}
	log = log.With("s3_key", m.Key)
	eventTime := m.Time
	if eventTime.IsZero() {
		eventTime = d.sentAt()
	}

	j := Job{
		Bucket: m.Bucket, Key: m.Key, VersionID: m.VersionID, ETag: m.ETag, Sequencer: m.Sequencer,
		EventTime: eventTime, MessageID: d.id(),
	}
	start := c.cfg.Now()
	log.InfoContext(ctx, "job started", "receive_count", d.receiveCount(), "format", string(m.Format), "queue_wait_ms", since(start, eventTime).Milliseconds())
	runCtx, cancel := context.WithTimeout(ctx, c.cfg.JobTimeout)
	stopHeartbeat := c.heartbeat(runCtx, log, d)
	res, err := c.process(runCtx, log, j)
	cancel()
	stopHeartbeat()
	dur := c.cfg.Now().Sub(start)
	if res.RunID != "" {
		log = log.With("run_id", res.RunID)
	}

	switch {
	case err == nil:
		c.settle(d, func() {
			outcome := OutcomeSucceeded
			if res.Duplicate {
				outcome = OutcomeDuplicate
			}
			log.InfoContext(ctx, "job done", "outcome", outcome, "duration_ms", dur.Milliseconds(), "receive_count", d.receiveCount())
			c.count(func(s *Stats) {
				s.Succeeded++
				if res.Duplicate {
					s.Duplicates++
				}
			})
			c.metrics(outcome, j.Key, d, res.RunID, dur, since(start, eventTime))
			c.deleter.add(ctx, d)
		})
	case errors.Is(err, ErrPermanent):
		c.settle(d, func() { c.deadLetter(ctx, log, d, j.Key, res, err, dur, eventTime) })
	case ctx.Err() != nil:
		// The grace ran out: hand the message to another consumer now
		// rather than after its visibility timeout.
		c.settle(d, func() { c.release(ctx, d, 0, OutcomeReleased, err.Error()) })
	default:
		delay := retryDelay(c.cfg.RetryDelay, c.cfg.VisibilityTimeout, d.receiveCount())
		c.settle(d, func() {
			log.WarnContext(ctx, "job failed; will retry", "outcome", OutcomeRetry, "error", err.Error(),
				"duration_ms", dur.Milliseconds(), "receive_count", d.receiveCount(), "retry_in_ms", delay.Milliseconds())
			c.count(func(s *Stats) { s.Retried++ })
			c.metrics(OutcomeRetry, j.Key, d, res.RunID, dur, since(start, eventTime))
			c.changeVisibility(ctx, d, delay)
		})
	}
}

// process runs the Processor with a panic turned into a permanent failure:
// the panic is a bug a retry would hit again, and it must not end the
// process and every other job in it. The message goes to the DLQ with the
// panic as its reason; the stack goes to the log.
func (c *Consumer) process(ctx context.Context, log *slog.Logger, j Job) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			log.ErrorContext(ctx, "job panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res, err = Result{}, Permanent(fmt.Errorf("panic: %v", v))
		}
	}()
	return c.proc.Process(ctx, j)
}

// accept rejects config messages the consumer must not act on.
func (c *Consumer) accept(m event.Message) error {
	if m.Bucket != c.cfg.Bucket {
		return fmt.Errorf("%w: bucket %q is not the pipeline bucket %q", event.ErrPoison, m.Bucket, c.cfg.Bucket)
	}
	if !strings.HasPrefix(m.Key, c.cfg.ConfigPrefix) || !hasConfigSuffix(m.Key) {
		return fmt.Errorf("%w: key %q is not a config (%s*{%s})", event.ErrPoison, m.Key, c.cfg.ConfigPrefix, strings.Join(names.ConfigSuffixes, ","))
	}
	return nil
}

func hasConfigSuffix(key string) bool {
	for _, s := range names.ConfigSuffixes {
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

// since is t-from, or 0 when from is unknown.
func since(t, from time.Time) time.Duration {
	if from.IsZero() {
		return 0
	}
	return t.Sub(from)
}

// retryDelay doubles base for every earlier receive, capped at max.
func retryDelay(base, max time.Duration, receiveCount int) time.Duration {
	d := base
	for i := 1; i < receiveCount && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// heartbeat keeps d hidden while its job runs, but no longer than the
// job's own deadline (runCtx): a job that ignores its timeout loses its hold
// on the message, which reappears for another consumer (jobs are
// idempotent). The returned stop waits for the heartbeat to end, so no
// extension can follow the settle.
func (c *Consumer) heartbeat(runCtx context.Context, log *slog.Logger, d *delivery) (stop func()) {
	vt := c.cfg.VisibilityTimeout
	t := c.cfg.NewTicker(vt / 2)
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-runCtx.Done():
				if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
					log.WarnContext(runCtx, "job past its timeout: no longer extending message visibility", "job_timeout_ms", c.cfg.JobTimeout.Milliseconds())
				}
				return
			case <-t.C():
				if errors.Is(runCtx.Err(), context.DeadlineExceeded) {
					continue // the case above ends the heartbeat
				}
				// Detached from runCtx so that an extension under way
				// finishes before stop returns rather than racing the settle.
				cctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), callTimeout)
				_, err := c.sqs.ChangeMessageVisibility(cctx, &sqs.ChangeMessageVisibilityInput{
					QueueUrl:          aws.String(c.cfg.QueueURL),
					ReceiptHandle:     d.msg.ReceiptHandle,
					VisibilityTimeout: int32(vt / time.Second),
				})
				cancel()
				if err != nil {
					// The next tick tries again; if the message reappears
					// meanwhile, the job's idempotency absorbs the duplicate.
					log.WarnContext(runCtx, "extend message visibility", "error", err.Error())
				}
			}
		}
	}()
	return func() { close(quit); <-exited }
}

// deadLetter copies the message to the DLQ with the reason, then deletes it.
// If the copy fails the message is left to reappear (and to be redriven by
// the queue), never deleted.
func (c *Consumer) deadLetter(ctx context.Context, log *slog.Logger, d *delivery, key string, res Result, cause error, dur time.Duration, eventTime time.Time) {
	reason := textlimit.Clip(cause.Error(), MaxReasonBytes)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	_, err := c.sqs.SendMessage(cctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(c.cfg.DLQURL),
		MessageBody: d.msg.Body,
		MessageAttributes: map[string]types.MessageAttributeValue{
			AttrReason:            {DataType: aws.String("String"), StringValue: aws.String(reason)},
			AttrOriginalMessageID: {DataType: aws.String("String"), StringValue: aws.String(d.id())},
			AttrReceiveCount:      {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(d.receiveCount()))},
			AttrFailedAt:          {DataType: aws.String("String"), StringValue: aws.String(c.cfg.Now().UTC().Format(time.RFC3339))},
		},
	})
	if err != nil {
		delay := retryDelay(c.cfg.RetryDelay, c.cfg.VisibilityTimeout, d.receiveCount())
		log.ErrorContext(ctx, "move message to dead-letter queue; will retry", "outcome", OutcomeRetry,
			"error", err.Error(), "reason", reason, "retry_in_ms", delay.Milliseconds())
		c.count(func(s *Stats) { s.Retried++ })
		c.changeVisibility(ctx, d, delay)
		return
	}
	log.ErrorContext(ctx, "job failed permanently; moved to dead-letter queue", "outcome", OutcomeDeadLettered,
		"error", reason, "duration_ms", dur.Milliseconds(), "receive_count", d.receiveCount())
	c.count(func(s *Stats) { s.DeadLettered++ })
	c.metrics(OutcomeDeadLettered, key, d, res.RunID, dur, since(d.received, eventTime))
	c.deleter.add(ctx, d)
}

// release makes d visible again after delay.
func (c *Consumer) release(ctx context.Context, d *delivery, delay time.Duration, outcome, why string) {
	c.log.InfoContext(ctx, "releasing message", "message_id", d.id(), "outcome", outcome, "reason", why)
	c.count(func(s *Stats) { s.Released++ })
	c.changeVisibility(ctx, d, delay)
}

func (c *Consumer) changeVisibility(ctx context.Context, d *delivery, delay time.Duration) {
	// Settling must work after the job's context was cancelled (that is
	// when a release is needed most).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	_, err := c.sqs.ChangeMessageVisibility(cctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(c.cfg.QueueURL),
		ReceiptHandle:     d.msg.ReceiptHandle,
		VisibilityTimeout: int32((delay + time.Second - 1) / time.Second), // never round a delay down to 0
	})
	if err != nil {
		// The message reappears when its current visibility runs out.
		c.log.WarnContext(ctx, "change message visibility", "message_id", d.id(), "error", err.Error())
	}
}

func (c *Consumer) metrics(outcome, key string, d *delivery, runID string, dur, wait time.Duration) {
	ok := 0.0
	if outcome == OutcomeSucceeded || outcome == OutcomeDuplicate {
		ok = 1
	}
	ms := []emf.Metric{
		{Name: "JobsSucceeded", Unit: emf.Count, Value: ok},
		{Name: "JobsFailed", Unit: emf.Count, Value: 1 - ok},
	}
	if dur > 0 {
		ms = append(ms, emf.Metric{Name: "JobDuration", Unit: emf.Milliseconds, Value: float64(dur.Milliseconds())})
	}
	if wait > 0 {
		ms = append(ms, emf.Metric{Name: "QueueWait", Unit: emf.Milliseconds, Value: float64(wait.Milliseconds())})
	}
	props := map[string]any{"outcome": outcome, "message_id": d.id()}
	if key != "" {
		props["s3_key"] = key
	}
	if runID != "" {
		props["run_id"] = runID
	}
	if err := c.cfg.Metrics.Emit(ms, props); err != nil {
		c.log.Warn("emit metrics", "error", err.Error())
	}
}
