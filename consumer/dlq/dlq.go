// Package dlq reads and redrives edp's dead-letter queue, counting the
// copies of one message as one.
//
// A message can reach the DLQ more than once. The consumer copies a message
// that failed permanently with SendMessage and then deletes it; when the
// answer of that SendMessage is lost, the SDK's retries and the consumer's
// own retry (the message reappears) send it again, and once the message has
// been received maxReceiveCount times the queue's redrive policy moves the
// original too: 5 bad configs made 50 DLQ messages at 100 % loss of answers.
// Every copy the consumer sends carries the original's message id in the
// attribute names.AttrOriginalMessageID, and a message SQS redrove keeps its
// own id, so a message's identity in the DLQ is that attribute, else its
// message id. Scan groups by it; Redrive sends each original back once.
//
// Reading a queue takes its messages out of sight: Scan holds each message
// hidden while it reads (so none is counted twice), and Release, or
// Redrive, ends that.
package dlq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/names"
)

// SQSAPI is the part of *sqs.Client the package uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Defaults of Reader fields left at zero.
const (
	DefaultHold        = 5 * time.Minute
	DefaultMaxMessages = 10000
)

const (
	maxBatch      = 10
	emptyReceives = 2 // empty receives in a row that end a scan
	waitSeconds   = 1
)

// Reader reads one dead-letter queue.
type Reader struct {
	// SQS is the client (required).
	SQS SQSAPI
	// QueueURL is the dead-letter queue (required).
	QueueURL string
	// Hold is how long each message stays hidden from the moment a scan
	// receives it; default 5 min. A scan that takes longer sees messages
	// again (and still counts them once).
	Hold time.Duration
	// MaxMessages bounds the messages a scan reads; default 10,000.
	MaxMessages int
	// Logger receives warnings about calls that failed; default: discard.
	Logger *slog.Logger
}

// Entry is one original message and all its copies in the DLQ.
type Entry struct {
	// OriginalID is the work-queue message id the copies share.
	OriginalID string
	// Body is the message body (the same in every copy).
	Body string
	// Copies is how many messages in the DLQ are this one.
	Copies int
	// Reason is the consumer's failure reason (the latest copy's); empty when
	// only SQS's redrive moved it (a transient failure, retried until
	// maxReceiveCount).
	Reason string
	// FailedAt is the latest copy's failure time as the consumer wrote it.
	FailedAt string
	// ReceiveCount is the highest work-queue receive count a copy of the
	// consumer's recorded (0 when SQS's redrive moved the only copy).
	ReceiveCount int
	// RedrivenBySQS is true when one of the copies is the original, moved by
	// the queue's redrive policy.
	RedrivenBySQS bool

	handles map[string]string // receipt handle by message id, of the copies the scan holds hidden
}

// Scan is what one pass over the DLQ found. Its messages stay hidden until
// Release or Redrive, or until Reader.Hold runs out.
type Scan struct {
	// Entries has one entry per original message, by first failure time
	// (then id).
	Entries []*Entry
	// Messages is how many DLQ messages the entries stand for.
	Messages int
	// Truncated is true when the scan stopped at MaxMessages.
	Truncated bool

	r *Reader
}

// Scan receives every message in the DLQ (up to MaxMessages) and groups the
// copies of each original message.
func (r *Reader) Scan(ctx context.Context) (*Scan, error) {
	if r.SQS == nil || r.QueueURL == "" {
		return nil, errors.New("scan dead-letter queue: SQS client and queue URL are required")
	}
	hold, limit := r.hold(), r.MaxMessages
	if limit <= 0 {
		limit = DefaultMaxMessages
	}
	s := &Scan{r: r}
	byID := map[string]*Entry{}
	seen := map[string]*Entry{} // by message id: a message seen again (Hold ran out) counts once
	for empty := 0; empty < emptyReceives && s.Messages < limit; {
		out, err := r.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:              aws.String(r.QueueURL),
			MaxNumberOfMessages:   int32(min(maxBatch, limit-s.Messages)),
			WaitTimeSeconds:       waitSeconds,
			VisibilityTimeout:     int32((hold + time.Second - 1) / time.Second),
			MessageAttributeNames: []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{
				types.MessageSystemAttributeNameApproximateReceiveCount,
			},
		})
		if err != nil {
			s.Release(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("scan dead-letter queue %s: %w", r.QueueURL, err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		empty = 0
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			if e, ok := seen[id]; ok {
				// Only the latest receipt handle of a message is good.
				e.handles[id] = aws.ToString(m.ReceiptHandle)
				continue
			}
			orig := attr(m, names.AttrOriginalMessageID)
			if orig == "" {
				orig = id
			}
			e := byID[orig]
			if e == nil {
				e = &Entry{OriginalID: orig, Body: aws.ToString(m.Body), handles: map[string]string{}}
				byID[orig] = e
				s.Entries = append(s.Entries, e)
			}
			seen[id] = e
			e.handles[id] = aws.ToString(m.ReceiptHandle)
			e.add(m)
			s.Messages++
		}
	}
	s.Truncated = s.Messages >= limit
	slices.SortStableFunc(s.Entries, func(a, b *Entry) int {
		return cmp.Or(cmp.Compare(a.firstFailed(), b.firstFailed()), cmp.Compare(a.OriginalID, b.OriginalID))
	})
	return s, nil
}

func (e *Entry) add(m types.Message) {
	e.Copies++
	if attr(m, names.AttrOriginalMessageID) == "" {
		e.RedrivenBySQS = true
		return
	}
	if failedAt := attr(m, names.AttrFailedAt); e.FailedAt == "" || failedAt >= e.FailedAt {
		e.FailedAt, e.Reason = failedAt, attr(m, names.AttrFailureReason)
	}
	n, _ := strconv.Atoi(attr(m, names.AttrReceiveCount))
	e.ReceiveCount = max(e.ReceiveCount, n)
}

// takeHandles returns the receipt handles the scan holds for e, sorted,
// and forgets them: they are settled once.
func (e *Entry) takeHandles() []string {
	hs := slices.Sorted(maps.Values(e.handles))
	e.handles = nil
	return hs
}

// firstFailed orders entries; an entry without a failure time sorts last.
func (e *Entry) firstFailed() string {
	if e.FailedAt == "" {
		return "~"
	}
	return e.FailedAt
}

func attr(m types.Message, name string) string {
	if v, ok := m.MessageAttributes[name]; ok {
		return aws.ToString(v.StringValue)
	}
	return ""
}

// Release makes every message of the scan visible again at once. Failures
// are logged (the messages reappear when Hold runs out).
func (s *Scan) Release(ctx context.Context) {
	var handles []string
	for _, e := range s.Entries {
		handles = append(handles, e.takeHandles()...)
	}
	s.r.release(ctx, handles)
}

// RedriveResult counts what Redrive did.
type RedriveResult struct {
	// Sent is the originals sent back to the work queue, once each.
	Sent int
	// Deleted is the DLQ messages deleted after their original was sent.
	Deleted int
	// Failed is the originals whose send failed; their copies are released.
	Failed int
}

// Redrive sends each original message of the scan once to queueURL (the
// work queue) and then deletes all its copies from the DLQ. An original
// whose send fails keeps its copies (released). A send whose answer is
// lost may still put the message on the work queue twice; the consumer's
// jobs are idempotent, so the second is a duplicate, not a second run.
func (s *Scan) Redrive(ctx context.Context, queueURL string) (RedriveResult, error) {
	var res RedriveResult
	var errs []error
	var keep []string
	for _, e := range s.Entries {
		handles := e.takeHandles()
		if ctx.Err() != nil {
			keep = append(keep, handles...)
			continue
		}
		_, err := s.r.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(queueURL), MessageBody: aws.String(e.Body)})
		if err != nil {
			res.Failed++
			errs = append(errs, fmt.Errorf("send %s back to %s: %w", e.OriginalID, queueURL, err))
			keep = append(keep, handles...)
			continue
		}
		res.Sent++
		res.Deleted += s.r.delete(ctx, handles)
	}
	s.r.release(context.WithoutCancel(ctx), keep)
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// delete deletes handles in batches and returns how many went.
func (r *Reader) delete(ctx context.Context, handles []string) int {
	n := 0
	for batch := range slices.Chunk(handles, maxBatch) {
		out, err := r.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.QueueURL), Entries: deleteEntries(batch)})
		if err != nil {
			r.logger().WarnContext(ctx, "delete DLQ copies; they reappear", "messages", len(batch), "error", err.Error())
			continue
		}
		n += len(out.Successful)
		for _, f := range out.Failed {
			r.logger().WarnContext(ctx, "delete DLQ copy; it reappears", "error", aws.ToString(f.Code)+": "+aws.ToString(f.Message))
		}
	}
	return n
}

// release makes handles visible again, ten at a time in parallel.
func (r *Reader) release(ctx context.Context, handles []string) {
	var wg sync.WaitGroup
	for batch := range slices.Chunk(handles, maxBatch) {
		wg.Go(func() {
			entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
			for i, h := range batch {
				entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h)}
			}
			out, err := r.SQS.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(r.QueueURL), Entries: entries})
			if err != nil {
				r.logger().WarnContext(ctx, "release DLQ messages; they reappear when the hold ends", "messages", len(batch), "error", err.Error())
				return
			}
			for _, f := range out.Failed {
				r.logger().WarnContext(ctx, "release DLQ message; it reappears when the hold ends", "error", aws.ToString(f.Code)+": "+aws.ToString(f.Message))
			}
		})
	}
	wg.Wait()
}

func deleteEntries(handles []string) []types.DeleteMessageBatchRequestEntry {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(handles))
	for i, h := range handles {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: aws.String(h)}
	}
	return entries
}

func (r *Reader) hold() time.Duration {
	if r.Hold > 0 {
		return r.Hold
	}
	return DefaultHold
}

func (r *Reader) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.New(slog.DiscardHandler)
}
