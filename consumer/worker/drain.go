package worker

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

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
