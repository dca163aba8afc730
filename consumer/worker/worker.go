// Package worker consumes one SQS queue: it long-polls for messages, hands
// each to a Processor on a bounded pool, and settles every message exactly
// one way — deleted after success, copied to the dead-letter queue and then
// deleted after a permanent failure, or made visible again after a
// transient failure or an interrupted stop. Nothing is dropped: a message
// the consumer cannot settle (a crash, SIGKILL) reappears after its
// visibility timeout.
//
// The package is a plain SQS consumer. It knows nothing of what a message
// asks for: the Processor decodes the body, decides, and does the work;
// it marks a message that no retry can make processable with
// failure.Permanent (or an error wrapping failure.ErrPermanent).
//
// The parts, one file each:
//   - loop.go: receive only as many messages as there are free workers
//     (back-pressure) and start a job for each; drain.go decides when a
//     drain is finished.
//   - lease.go: a lease is one received message from its receive to its
//     settle: the message, its log fields, and the right to settle it,
//     which exactly one party wins. settle.go holds the ways to settle it
//     (delete, release with a delay, dead-letter with a reason), each
//     taking (ctx, lease).
//   - process.go: run the Processor for a lease, a panic becoming a
//     permanent failure, and settle the lease by its answer.
//   - heartbeat.go: keep a running job's message hidden, no longer than the
//     job's timeout.
//   - deleter.go: batch the deletes, retrying once what may succeed.
//   - stop.go: the stop protocol under one deadline derived from
//     names.StopTimeout, and the batched release of what is left.
//   - config.go: Config, its defaults and its validation.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/names"
)

// Processor does what one message asks for. It must be idempotent: SQS
// delivers at least once, so the same message may arrive again after it
// succeeded. Its answer settles the message: nil deletes it (Result.Skip
// says it asked for no work), an error matching failure.ErrPermanent moves
// it to the dead-letter queue at once, any other error is transient and
// makes it visible again after Config.RetryDelay (the queue's redrive
// policy ends endless retries). A panic in Process is recovered and treated as a permanent
// failure (the stack goes to the log); the other jobs go on.
type Processor interface {
	Process(ctx context.Context, m *Message) (Result, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, m *Message) (Result, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, m *Message) (Result, error) { return f(ctx, m) }

// Result is what the consumer needs to know about a message whose
// processing succeeded.
type Result struct {
	// RunID identifies the run (logged and put on metrics lines).
	RunID string
	// Duplicate is true when the run had already succeeded before (a
	// redelivered message): nothing was rewritten.
	Duplicate bool
	// Skip, when set, says why the message asked for no work (an S3 test
	// event, say): it is deleted and counted as skipped, with no job and no
	// metrics line.
	Skip string
}

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
	OutcomeSkipped      = "skipped"
)

// Stats counts what a run did with the messages it received.
type Stats struct {
	Received, Succeeded, Duplicates, DeadLettered, Retried, Released, Skipped int
}

// ErrNotDrained is wrapped by the error Drain returns when the queue still
// held messages (visible, in flight or delayed), or its counts could not be
// read, for the whole wait after the receives came back empty.
var ErrNotDrained = errors.New("queue not drained")

// Consumer consumes one queue. Create it with New; Drain or Serve it once.
type Consumer struct {
	cfg     Config
	sqs     SQSAPI
	proc    Processor
	log     *slog.Logger
	open    *openLeases
	deleter *deleter
	// stopping is closed when the run's stop signal comes (StopSignal); set
	// by run before its loop starts.
	stopping <-chan struct{}

	mu    sync.Mutex
	stats Stats
}

// New applies cfg's defaults (SetDefaults), validates it (Validate) and
// returns a consumer.
func New(cfg Config, client SQSAPI, proc Processor) (*Consumer, error) {
	cfg.SetDefaults()
	err := cfg.Validate()
	if client == nil || proc == nil {
		err = errors.Join(err, errors.New("an SQS client and a processor are required"))
	}
	if err != nil {
		return nil, fmt.Errorf("invalid consumer settings: %w", err)
	}
	return &Consumer{
		cfg: cfg, sqs: client, proc: proc, log: cfg.Logger, open: newOpenLeases(),
		deleter: &deleter{sqs: client, queueURL: cfg.QueueURL, log: cfg.Logger},
	}, nil
}

// Concurrency is the number of jobs the consumer runs at once (after
// defaults).
func (c *Consumer) Concurrency() int { return c.cfg.Concurrency }

// Drain consumes until the queue is drained, Config.MaxRunTime, or ctx is
// cancelled; it waits for the jobs in flight (within the stop protocol
// once ctx is cancelled, see stop.go) and returns.
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

// run is one Drain or Serve: the receive loop on its own goroutine, and
// the stop protocol on this one.
func (c *Consumer) run(ctx context.Context, drain bool) (Stats, error) {
	// The calls that settle received messages must work after the stop
	// signal (that is when a release matters most); they end with run, at
	// the latest at the stop deadline.
	calls, endCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer endCalls()
	// Jobs outlive the signal by up to the grace.
	jobs, cancelJobs := context.WithCancel(calls)
	defer cancelJobs()
	// The stop's deadline counts from the signal, not from the end of a
	// long poll that was under way then.
	signalled := make(chan time.Time, 1)
	defer context.AfterFunc(ctx, func() { signalled <- time.Now() })()

	receive := ctx
	if drain && c.cfg.MaxRunTime > 0 {
		var cancel context.CancelFunc
		receive, cancel = context.WithTimeout(ctx, c.cfg.MaxRunTime)
		defer cancel()
	}
	protect := c.cfg.Protection
	if drain {
		protect = nil // one-off tasks are not in a service: nothing scales them in
	}
	c.stopping = ctx.Done()
	looped := make(chan error, 1)
	go func() { looped <- c.loop(receive, calls, jobs, drain, protect) }()

	s := &shutdown{c: c, signalled: signalled, looped: looped, cancelJobs: cancelJobs, endCalls: endCalls, protect: protect}
	err := s.run(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats, err
}

// count updates the run's stats.
func (c *Consumer) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}
