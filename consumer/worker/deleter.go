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

// deleteLinger is how long a delete waits for others to share its call.
const deleteLinger = 20 * time.Millisecond

// deleter batches message deletes: a full batch of ten goes at once, a
// partial one after deleteLinger, so concurrent jobs finishing together
// cost one call. A failed call, and entries that failed through no fault
// of the request (throttling, an SQS error), are retried once within
// callTimeout: a lost delete means a redelivery and, for a dead-lettered
// message, a second copy in the DLQ. What still fails is logged; the job's
// idempotency absorbs the redelivery.
//
// The ctx given to add bounds the calls that send it; a settle's ctx ends
// at the stop deadline at the latest, not at the stop signal.
type deleter struct {
	sqs      SQSAPI
	queueURL string
	log      *slog.Logger

	mu      sync.Mutex
	pending []*lease
	timer   *time.Timer
	closed  bool           // flush ran: later deletes go out on their own
	wg      sync.WaitGroup // batches being sent
}

func (dl *deleter) add(ctx context.Context, l *lease) {
	dl.mu.Lock()
	if dl.closed {
		// Nobody will flush again, and wg must not grow while flush waits.
		dl.mu.Unlock()
		dl.send(ctx, []*lease{l})
		return
	}
	dl.pending = append(dl.pending, l)
	var batch []*lease
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
// bounds both attempts, which share callTimeout.
func (dl *deleter) send(ctx context.Context, batch []*lease) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if retry := dl.try(cctx, batch, false); len(retry) > 0 {
		dl.try(cctx, retry, true)
	}
}

// try makes one DeleteMessageBatch call and returns the messages worth
// another attempt; on the last attempt it logs them instead.
func (dl *deleter) try(ctx context.Context, batch []*lease, last bool) (retry []*lease) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
	for i, l := range batch {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: l.msg.ReceiptHandle}
	}
	fail := func(l *lease, why string, again bool) {
		if again && !last && ctx.Err() == nil {
			retry = append(retry, l)
			return
		}
		dl.log.WarnContext(ctx, "delete message; it will be delivered again", "message_id", l.id(), "error", why)
	}
	out, err := dl.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(dl.queueURL), Entries: entries})
	if err != nil {
		for _, l := range batch {
			fail(l, err.Error(), true)
		}
		return retry
	}
	for _, f := range out.Failed {
		if i, ok := failedEntry(f, len(batch)); ok {
			// A sender fault (an invalid or expired receipt handle) fails
			// the same way again.
			fail(batch[i], entryError(f), !f.SenderFault)
		}
	}
	return retry
}

// failedEntry is the index in a batch of n of an entry a batch call
// failed; the entries' ids are their indexes.
func failedEntry(f types.BatchResultErrorEntry, n int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(f.Id))
	return i, err == nil && i >= 0 && i < n
}

// entryError describes why a batch call failed an entry.
func entryError(f types.BatchResultErrorEntry) string {
	return fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
}
