package worker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// deleter batches message deletes: a full batch of ten goes at once, a
// partial one after deleteLinger, so concurrent jobs finishing together
// cost one call. A failed call, and entries that failed through no fault
// of the request (throttling, an SQS error), are retried once within
// callTimeout: a lost delete means a redelivery and, for a dead-lettered
// message, a second copy in the DLQ. What still fails is logged; the job's
// idempotency absorbs the redelivery.
type deleter struct {
	sqs      SQSAPI
	queueURL string
	log      *slog.Logger

	mu      sync.Mutex
	pending []*delivery
	timer   *time.Timer
	closed  bool           // flush ran: later deletes go out on their own
	wg      sync.WaitGroup // batches being sent
}

func (dl *deleter) add(ctx context.Context, d *delivery) {
	// Deletes must go out even after the job's context was cancelled.
	ctx = context.WithoutCancel(ctx)
	dl.mu.Lock()
	if dl.closed {
		// Nobody will flush again, and wg must not grow while flush waits.
		dl.mu.Unlock()
		dl.send(ctx, []*delivery{d})
		return
	}
	dl.pending = append(dl.pending, d)
	var batch []*delivery
	if len(dl.pending) >= maxBatch {
		batch, dl.pending = dl.pending, nil
		if dl.timer != nil {
			dl.timer.Stop()
			dl.timer = nil
		}
		dl.wg.Add(1)
	} else if dl.timer == nil {
		dl.timer = time.AfterFunc(deleteLinger, func() { dl.flushPending(ctx) })
	}
	dl.mu.Unlock()
	if batch != nil {
		defer dl.wg.Done()
		dl.send(ctx, batch)
	}
}

// flushPending sends whatever is pending now.
func (dl *deleter) flushPending(ctx context.Context) {
	dl.mu.Lock()
	batch := dl.pending
	dl.pending = nil
	if dl.timer != nil {
		dl.timer.Stop()
		dl.timer = nil
	}
	if len(batch) > 0 {
		dl.wg.Add(1)
	}
	dl.mu.Unlock()
	if len(batch) > 0 {
		defer dl.wg.Done()
		dl.send(ctx, batch)
	}
}

// flush sends what is pending and waits, until ctx ends, for every batch in
// progress. Deletes added afterwards are sent at once, one by one.
func (dl *deleter) flush(ctx context.Context) {
	dl.mu.Lock()
	dl.closed = true
	dl.mu.Unlock()
	dl.flushPending(ctx)
	sent := make(chan struct{})
	go func() { dl.wg.Wait(); close(sent) }()
	select {
	case <-sent:
	case <-ctx.Done():
	}
}

// send deletes batch, retrying once what may succeed on a second try. ctx
// must not be cancelled before its deadline; the attempts share callTimeout.
func (dl *deleter) send(ctx context.Context, batch []*delivery) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if retry := dl.try(cctx, batch, false); len(retry) > 0 {
		dl.try(cctx, retry, true)
	}
}

// try makes one DeleteMessageBatch call and returns the messages worth
// another attempt; on the last attempt it logs them instead.
func (dl *deleter) try(ctx context.Context, batch []*delivery, last bool) (retry []*delivery) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
	for i, d := range batch {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: d.msg.ReceiptHandle}
	}
	fail := func(d *delivery, why string, again bool) {
		if again && !last && ctx.Err() == nil {
			retry = append(retry, d)
			return
		}
		dl.log.WarnContext(ctx, "delete message; it will be delivered again", "message_id", d.id(), "error", why)
	}
	out, err := dl.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(dl.queueURL), Entries: entries})
	if err != nil {
		for _, d := range batch {
			fail(d, err.Error(), true)
		}
		return retry
	}
	for _, f := range out.Failed {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		if i < 0 || i >= len(batch) {
			continue
		}
		// A sender fault (an invalid or expired receipt handle) fails the
		// same way again.
		fail(batch[i], fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)), !f.SenderFault)
	}
	return retry
}
