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
// cost one call. A failed delete only means a redelivery, which the job's
// idempotency absorbs, so failures are logged, not retried.
type deleter struct {
	sqs      SQSAPI
	queueURL string
	log      *slog.Logger

	mu      sync.Mutex
	pending []*delivery
	timer   *time.Timer
	wg      sync.WaitGroup // batches being sent
}

func (dl *deleter) add(ctx context.Context, d *delivery) {
	dl.mu.Lock()
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
		bg := context.WithoutCancel(ctx)
		dl.timer = time.AfterFunc(deleteLinger, func() { dl.flushPending(bg) })
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

// flush sends what is pending and waits for every batch in progress.
func (dl *deleter) flush(ctx context.Context) {
	dl.flushPending(ctx)
	dl.wg.Wait()
}

func (dl *deleter) send(ctx context.Context, batch []*delivery) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(batch))
	for i, d := range batch {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: d.msg.ReceiptHandle}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	out, err := dl.sqs.DeleteMessageBatch(cctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(dl.queueURL), Entries: entries})
	if err != nil {
		for _, d := range batch {
			dl.log.WarnContext(ctx, "delete message; it will be delivered again", "message_id", d.id(), "error", err.Error())
		}
		return
	}
	for _, f := range out.Failed {
		i, _ := strconv.Atoi(aws.ToString(f.Id))
		if i < 0 || i >= len(batch) {
			continue
		}
		dl.log.WarnContext(ctx, "delete message; it will be delivered again", "message_id", batch[i].id(),
			"error", fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message)))
	}
}
