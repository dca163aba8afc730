package worker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// fakeSQS is an in-memory queue recording every call, for tests in fake
// time (testing/synctest). Received messages stay "held" until deleted or
// made visible again. A receive that finds nothing waits out its long
// poll. Like the SDK, every call fails on a cancelled context; a
// receive whose context ends while it runs loses the messages it took: they
// stay held, as SQS keeps messages it handed to a dropped connection.
type fakeSQS struct {
	mu          sync.Mutex
	ready       []types.Message
	held        map[string]types.Message // by receipt handle
	nextHandle  int
	receiveMax  []int32
	received    int      // messages handed out
	deleted     []string // message ids
	deleteCalls int
	visBatches  int // ChangeMessageVisibilityBatch calls
	visibility  []visCall
	dlq         []dlqMsg
	events      []string // ordered log of calls, for ordering assertions
	sendErr     error
	receiveErr  error
	receiveHook func(in *sqs.ReceiveMessageInput) // called at the start of each receive
	// deleteErrs fail whole DeleteMessageBatch calls, one per call, in order.
	deleteErrs []error
	// deleteFails counts, per message id, the delete entries still to fail
	// with a server-side (retryable) error.
	deleteFails map[string]int
	// visBatchHook is called at the start of each ChangeMessageVisibilityBatch.
	visBatchHook func(ctx context.Context)
	// heartbeatSeconds is the visibility a heartbeat sets (the config's
	// visibility timeout); other visibility changes settle a message.
	heartbeatSeconds int32
	// loseReceives is how many receives that take messages lose their
	// answer, as when the response is lost and the SDK's retry finds
	// nothing: the messages stay hidden for the visibility timeout
	// (heartbeatSeconds), then reappear.
	loseReceives int
	lost         []lostMsg
	// countsHook, when set, answers GetQueueAttributes instead of the
	// queue's own counts (visible, in flight, delayed), or fails it.
	countsHook  func() (visible, inFlight, delayed int, err error)
	countChecks int
}

// lostMsg is a message taken by a receive whose answer was lost.
type lostMsg struct {
	msg       types.Message
	reappears time.Time
}

// reappear makes lost messages whose visibility timeout passed visible
// again. f.mu must be held.
func (f *fakeSQS) reappear() {
	now := time.Now()
	kept := f.lost[:0]
	for _, l := range f.lost {
		if now.Before(l.reappears) {
			kept = append(kept, l)
			continue
		}
		n, _ := strconv.Atoi(l.msg.Attributes["ApproximateReceiveCount"])
		l.msg.Attributes = maps.Clone(l.msg.Attributes)
		l.msg.Attributes["ApproximateReceiveCount"] = strconv.Itoa(n + 1)
		f.ready = append(f.ready, l.msg)
	}
	f.lost = kept
}

func (f *fakeSQS) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.countChecks++
	f.reappear()
	visible, inFlight, delayed := len(f.ready), len(f.held)+len(f.lost), 0
	hook := f.countsHook
	f.mu.Unlock()
	if hook != nil {
		var err error
		if visible, inFlight, delayed, err = hook(); err != nil {
			return nil, err
		}
	}
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(visible),
		"ApproximateNumberOfMessagesNotVisible": strconv.Itoa(inFlight),
		"ApproximateNumberOfMessagesDelayed":    strconv.Itoa(delayed),
	}}, nil
}

type visCall struct {
	ID      string
	Seconds int32
}

type dlqMsg struct {
	Body  string
	Attrs map[string]string
}

func newFakeSQS(bodies ...string) *fakeSQS {
	f := &fakeSQS{held: map[string]types.Message{}}
	for i, b := range bodies {
		f.push(fmt.Sprintf("m%d", i), b, 1)
	}
	return f
}

func (f *fakeSQS) push(id, body string, receiveCount int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ready = append(f.ready, types.Message{
		MessageId: aws.String(id), Body: aws.String(body),
		Attributes: map[string]string{
			"ApproximateReceiveCount": strconv.Itoa(receiveCount),
			"SentTimestamp":           strconv.FormatInt(time.Now().UnixMilli(), 10),
		},
	})
}

func (f *fakeSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.receiveHook != nil {
		f.receiveHook(in)
	}
	f.mu.Lock()
	f.receiveMax = append(f.receiveMax, in.MaxNumberOfMessages)
	f.events = append(f.events, "receive")
	if f.receiveErr != nil {
		err := f.receiveErr
		f.mu.Unlock()
		return nil, err
	}
	f.reappear()
	n := min(int(in.MaxNumberOfMessages), len(f.ready))
	if n > 0 && f.loseReceives > 0 {
		f.loseReceives--
		for _, m := range f.ready[:n] {
			f.lost = append(f.lost, lostMsg{msg: m, reappears: time.Now().Add(time.Duration(f.heartbeatSeconds) * time.Second)})
		}
		f.ready = f.ready[n:]
		n = 0
	}
	var out []types.Message
	for _, m := range f.ready[:n] {
		f.nextHandle++
		m.ReceiptHandle = aws.String(fmt.Sprintf("%s#%d", aws.ToString(m.MessageId), f.nextHandle))
		f.held[*m.ReceiptHandle] = m
		out = append(out, m)
	}
	f.ready = f.ready[n:]
	f.received += len(out)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err // the messages are held, and nobody knows their handles
	}
	if len(out) == 0 {
		// A long poll that finds nothing waits its whole time, as on SQS
		// (in the fake time of the tests).
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(in.WaitTimeSeconds) * time.Second):
		}
	}
	return &sqs.ReceiveMessageOutput{Messages: out}, nil
}

func (f *fakeSQS) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Like the SDK, a cancelled context fails the call.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.deleteCalls++
	if len(f.deleteErrs) > 0 {
		err := f.deleteErrs[0]
		f.deleteErrs = f.deleteErrs[1:]
		return nil, err
	}
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		m, ok := f.held[aws.ToString(e.ReceiptHandle)]
		if !ok {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true})
			continue
		}
		if id := aws.ToString(m.MessageId); f.deleteFails[id] > 0 {
			f.deleteFails[id]--
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("InternalError")})
			continue
		}
		delete(f.held, aws.ToString(e.ReceiptHandle))
		f.deleted = append(f.deleted, aws.ToString(m.MessageId))
		f.events = append(f.events, "delete "+aws.ToString(m.MessageId))
	}
	return out, nil
}

func (f *fakeSQS) ChangeMessageVisibility(ctx context.Context, in *sqs.ChangeMessageVisibilityInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, ok := f.held[aws.ToString(in.ReceiptHandle)]
	if !ok {
		return nil, errors.New("ReceiptHandleIsInvalid")
	}
	id := aws.ToString(m.MessageId)
	f.visibility = append(f.visibility, visCall{ID: id, Seconds: in.VisibilityTimeout})
	f.events = append(f.events, fmt.Sprintf("visibility %s %d", id, in.VisibilityTimeout))
	// A heartbeat keeps the message; any other change settles it.
	if in.VisibilityTimeout != f.heartbeatSeconds {
		delete(f.held, aws.ToString(in.ReceiptHandle))
	}
	return &sqs.ChangeMessageVisibilityOutput{}, nil
}

func (f *fakeSQS) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	if f.visBatchHook != nil {
		f.visBatchHook(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(in.Entries) > 10 {
		return nil, errors.New("AWS.SimpleQueueService.TooManyEntriesInBatchRequest")
	}
	f.mu.Lock()
	f.visBatches++
	f.mu.Unlock()
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		_, err := f.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{ReceiptHandle: e.ReceiptHandle, VisibilityTimeout: e.VisibilityTimeout})
		if err != nil {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String(err.Error()), SenderFault: true})
			continue
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (f *fakeSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	attrs := map[string]string{}
	for k, v := range in.MessageAttributes {
		attrs[k] = aws.ToString(v.StringValue)
	}
	f.dlq = append(f.dlq, dlqMsg{Body: aws.ToString(in.MessageBody), Attrs: attrs})
	f.events = append(f.events, "dlq "+attrs[AttrOriginalMessageID])
	return &sqs.SendMessageOutput{MessageId: aws.String("dlq-" + attrs[AttrOriginalMessageID])}, nil
}

// snapshot returns copies of the recorded calls.
func (f *fakeSQS) snapshot() (deleted []string, vis []visCall, dlq []dlqMsg, events []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.deleted...), append([]visCall(nil), f.visibility...),
		append([]dlqMsg(nil), f.dlq...), append([]string(nil), f.events...)
}

// assertNoneHeld fails the test if a message is still hidden: it would be
// stranded until its visibility timeout.
func (f *fakeSQS) assertNoneHeld(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.held) != 0 {
		t.Errorf("%d messages stranded (hidden until their visibility timeout)", len(f.held))
	}
}
