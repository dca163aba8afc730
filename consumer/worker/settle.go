package worker

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// callTimeout bounds one settle call (and the attempts of one delete
// batch). The ctx a settle path is given ends at the stop deadline at the
// latest, never at the stop signal: a release is needed most then.
const callTimeout = 10 * time.Second

// The settle paths below are called by the holder of the lease's claim
// (openLeases.claim: the job's goroutine, or the stop path), which closes
// the lease once they return; releaseAll claims and closes its leases
// itself.

// succeed deletes l's message after a successful (or duplicate) job.
func (c *Consumer) succeed(ctx context.Context, l *lease, res Result) {
	outcome := OutcomeSucceeded
	if res.Duplicate {
		outcome = OutcomeDuplicate
	}
	j := l.job()
	l.logger().InfoContext(ctx, "job done", "outcome", outcome, "duration_ms", j.duration.Milliseconds(), "receive_count", l.receiveCount())
	c.count(func(s *Stats) {
		s.Succeeded++
		if res.Duplicate {
			s.Duplicates++
		}
	})
	c.metrics(outcome, l)
	c.deleter.add(ctx, l)
}

// skip deletes l's message, which asked for no work.
func (c *Consumer) skip(ctx context.Context, l *lease, why string) {
	l.logger().InfoContext(ctx, "message skipped", "outcome", OutcomeSkipped, "reason", why)
	c.count(func(s *Stats) { s.Skipped++ })
	c.deleter.add(ctx, l)
}

// retry hides l's message for the retry delay after a transient failure.
func (c *Consumer) retry(ctx context.Context, l *lease, cause error) {
	delay := retryDelay(c.cfg.RetryDelay, c.cfg.VisibilityTimeout, l.receiveCount())
	l.logger().WarnContext(ctx, "job failed; will retry", "outcome", OutcomeRetry, "error", cause.Error(),
		"duration_ms", l.job().duration.Milliseconds(), "receive_count", l.receiveCount(), "retry_in_ms", delay.Milliseconds())
	c.count(func(s *Stats) { s.Retried++ })
	c.metrics(OutcomeRetry, l)
	c.changeVisibility(ctx, l, delay)
}

// deadLetter copies l's message to the DLQ with the reason, then deletes
// it. If the copy fails the message is left to reappear after the retry
// delay (and to be redriven by the queue), never deleted.
func (c *Consumer) deadLetter(ctx context.Context, l *lease, cause error) {
	reason := textlimit.Clip(cause.Error(), MaxReasonBytes)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := c.sqs.SendMessage(cctx, &sqs.SendMessageInput{
		QueueUrl:    aws.String(c.cfg.DLQURL),
		MessageBody: l.msg.Body,
		MessageAttributes: map[string]types.MessageAttributeValue{
			AttrReason:            {DataType: aws.String("String"), StringValue: aws.String(reason)},
			AttrOriginalMessageID: {DataType: aws.String("String"), StringValue: aws.String(l.id())},
			AttrReceiveCount:      {DataType: aws.String("Number"), StringValue: aws.String(strconv.Itoa(l.receiveCount()))},
			AttrFailedAt:          {DataType: aws.String("String"), StringValue: aws.String(time.Now().UTC().Format(time.RFC3339))},
		},
	})
	log := l.logger()
	if err != nil {
		delay := retryDelay(c.cfg.RetryDelay, c.cfg.VisibilityTimeout, l.receiveCount())
		log.ErrorContext(ctx, "move message to dead-letter queue; will retry", "outcome", OutcomeRetry,
			"error", err.Error(), "reason", reason, "retry_in_ms", delay.Milliseconds())
		c.count(func(s *Stats) { s.Retried++ })
		c.changeVisibility(ctx, l, delay)
		return
	}
	log.ErrorContext(ctx, "job failed permanently; moved to dead-letter queue", "outcome", OutcomeDeadLettered,
		"error", reason, "duration_ms", l.job().duration.Milliseconds(), "receive_count", l.receiveCount())
	c.count(func(s *Stats) { s.DeadLettered++ })
	c.metrics(OutcomeDeadLettered, l)
	c.deleter.add(ctx, l)
}

// release makes l's message visible again at once: its job was cancelled
// at the end of the grace, and another consumer should take it now rather
// than after the visibility timeout.
func (c *Consumer) release(ctx context.Context, l *lease, why string) {
	l.logger().InfoContext(ctx, "releasing message", "outcome", OutcomeReleased, "reason", why)
	c.count(func(s *Stats) { s.Released++ })
	c.changeVisibility(ctx, l, 0)
}

// changeVisibility hides l's message for delay from now (0: visible now)
// to settle it.
func (c *Consumer) changeVisibility(ctx context.Context, l *lease, delay time.Duration) {
	if err := c.setVisibility(ctx, l, delay); err != nil {
		// The message reappears when its current visibility runs out.
		l.logger().WarnContext(ctx, "change message visibility", "error", err.Error())
	}
}

// setVisibility hides l's message for d from now, in one call of at most
// callTimeout. A part of a second rounds up, never down to 0.
func (c *Consumer) setVisibility(ctx context.Context, l *lease, d time.Duration) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := c.sqs.ChangeMessageVisibility(cctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl:          aws.String(c.cfg.QueueURL),
		ReceiptHandle:     l.msg.ReceiptHandle,
		VisibilityTimeout: int32((d + time.Second - 1) / time.Second),
	})
	return err
}

// retryDelay doubles base for every earlier receive, capped at max.
func retryDelay(base, max time.Duration, receiveCount int) time.Duration {
	d := base
	for i := 1; i < receiveCount && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// metrics emits l's job's EMF line (names.ConsumerMetrics: the dashboards
// chart these names).
func (c *Consumer) metrics(outcome string, l *lease) {
	j := l.job()
	ok := 0.0
	if outcome == OutcomeSucceeded || outcome == OutcomeDuplicate {
		ok = 1
	}
	ms := []emf.Metric{
		{Name: names.MetricJobsSucceeded, Unit: emf.Count, Value: ok},
		{Name: names.MetricJobsFailed, Unit: emf.Count, Value: 1 - ok},
	}
	if j.duration > 0 {
		ms = append(ms, emf.Metric{Name: names.MetricJobDuration, Unit: emf.Milliseconds, Value: float64(j.duration.Milliseconds())})
	}
	if j.wait > 0 {
		ms = append(ms, emf.Metric{Name: names.MetricQueueWait, Unit: emf.Milliseconds, Value: float64(j.wait.Milliseconds())})
	}
	props := map[string]any{"outcome": outcome, "message_id": l.id()}
	for _, f := range j.fields {
		props[f.Key] = f.Value.Resolve().Any()
	}
	if j.runID != "" {
		props["run_id"] = j.runID
	}
	if err := c.cfg.Metrics.Emit(ms, props); err != nil {
		c.log.Warn("emit metrics", "error", err.Error())
	}
}
