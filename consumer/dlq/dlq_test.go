package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edp-pipelines/edp/internal/names"
)

// fakeDLQ answers receives from a script (one batch per call, then empty)
// and records what is sent, deleted and released.
type fakeDLQ struct {
	mu       sync.Mutex
	batches  [][]types.Message
	receives []*sqs.ReceiveMessageInput
	sent     []string // bodies
	sendErr  map[string]error
	deleted  []string // receipt handles
	released []string // receipt handles made visible (0 s)
}

func (f *fakeDLQ) ReceiveMessage(_ context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.receives = append(f.receives, in)
	if len(f.batches) == 0 {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	b := f.batches[0]
	if n := int(in.MaxNumberOfMessages); len(b) > n {
		f.batches[0] = b[n:]
		return &sqs.ReceiveMessageOutput{Messages: b[:n]}, nil
	}
	f.batches = f.batches[1:]
	return &sqs.ReceiveMessageOutput{Messages: b}, nil
}

func (f *fakeDLQ) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Entries) > 10 {
		return nil, errors.New("TooManyEntriesInBatchRequest")
	}
	for _, e := range in.Entries {
		if e.VisibilityTimeout != 0 {
			return nil, fmt.Errorf("visibility %d, want 0", e.VisibilityTimeout)
		}
		f.released = append(f.released, aws.ToString(e.ReceiptHandle))
	}
	return &sqs.ChangeMessageVisibilityBatchOutput{}, nil
}

func (f *fakeDLQ) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(in.Entries) > 10 {
		return nil, errors.New("TooManyEntriesInBatchRequest")
	}
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		f.deleted = append(f.deleted, aws.ToString(e.ReceiptHandle))
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (f *fakeDLQ) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body := aws.ToString(in.MessageBody)
	if err := f.sendErr[body]; err != nil {
		return nil, err
	}
	f.sent = append(f.sent, body)
	return &sqs.SendMessageOutput{MessageId: aws.String(fmt.Sprintf("new-%d", len(f.sent)))}, nil
}

// consumerCopy is a copy the consumer sent of original, as the DLQ hands it
// out (handle is its receipt handle).
func consumerCopy(id, handle, original, body, reason, failedAt string, receiveCount int) types.Message {
	s := func(v string) types.MessageAttributeValue {
		return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
	}
	return types.Message{
		MessageId: aws.String(id), ReceiptHandle: aws.String(handle), Body: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{
			names.AttrOriginalMessageID: s(original),
			names.AttrFailureReason:     s(reason),
			names.AttrFailedAt:          s(failedAt),
			names.AttrReceiveCount:      {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(receiveCount))},
		},
	}
}

// redriven is a message SQS moved itself: its own id, no attributes.
func redriven(id, handle, body string) types.Message {
	return types.Message{MessageId: aws.String(id), ReceiptHandle: aws.String(handle), Body: aws.String(body)}
}

// The DLQ after lost SendMessage answers: the bad config's message was
// copied three times (two attempts, the first retried by the SDK) and then
// moved by the queue's redrive; a poison message was copied once; a
// transient failure was only redriven. One copy is handed out twice (the
// scan's hold ran out), with a new receipt handle.
func dlqAfterLostAnswers() *fakeDLQ {
	const bad, poison, flaky = `{"config":"s3://b/configs/bad.yaml"}`, "hello", `{"config":"s3://b/configs/flaky.yaml"}`
	return &fakeDLQ{batches: [][]types.Message{
		{
			consumerCopy("c1", "h-c1", "m-bad", bad, "unknown model", "2026-11-23T17:00:01Z", 1),
			consumerCopy("c2", "h-c2", "m-bad", bad, "unknown model", "2026-11-23T17:00:01Z", 1),
			consumerCopy("c3", "h-c3", "m-bad", bad, "unknown model: again", "2026-11-23T17:00:12Z", 2),
			redriven("m-bad", "h-m-bad", bad),
			consumerCopy("c4", "h-c4", "m-poison", poison, "poison message", "2026-11-23T16:59:00Z", 1),
		},
		{
			redriven("m-flaky", "h-m-flaky", flaky),
			consumerCopy("c1", "h-c1-again", "m-bad", bad, "unknown model", "2026-11-23T17:00:01Z", 1),
		},
	}}
}

func TestScanCountsCopiesOnce(t *testing.T) {
	t.Parallel()
	f := dlqAfterLostAnswers()
	r := &Reader{SQS: f, QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/edp-dlq"}
	s, err := r.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []*Entry{
		{OriginalID: "m-poison", Body: "hello", Copies: 1, Reason: "poison message", FailedAt: "2026-11-23T16:59:00Z", ReceiveCount: 1},
		{OriginalID: "m-bad", Body: `{"config":"s3://b/configs/bad.yaml"}`, Copies: 4, Reason: "unknown model: again",
			FailedAt: "2026-11-23T17:00:12Z", ReceiveCount: 2, RedrivenBySQS: true},
		{OriginalID: "m-flaky", Body: `{"config":"s3://b/configs/flaky.yaml"}`, Copies: 1, RedrivenBySQS: true},
	}
	if diff := cmp.Diff(want, s.Entries, cmpopts.IgnoreUnexported(Entry{})); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if s.Messages != 6 || s.Truncated {
		t.Errorf("Messages %d, Truncated %v: want 6 messages (c1 counted once), not truncated", s.Messages, s.Truncated)
	}
	for _, in := range f.receives {
		if in.VisibilityTimeout != 300 || !slices.Equal(in.MessageAttributeNames, []string{"All"}) {
			t.Errorf("receive %+v: want the 5 min hold and all attributes", in)
		}
	}
	s.Release(context.Background())
	slices.Sort(f.released)
	if want := []string{"h-c1-again", "h-c2", "h-c3", "h-c4", "h-m-bad", "h-m-flaky"}; !slices.Equal(f.released, want) {
		t.Errorf("released %v, want %v (the latest handle of each message)", f.released, want)
	}
}

func TestRedriveSendsEachOriginalOnce(t *testing.T) {
	t.Parallel()
	f := dlqAfterLostAnswers()
	f.sendErr = map[string]error{"hello": errors.New("AccessDenied")}
	r := &Reader{SQS: f, QueueURL: "dlq"}
	s, err := r.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Redrive(context.Background(), "work")
	if err == nil || res != (RedriveResult{Sent: 2, Deleted: 5, Failed: 1}) {
		t.Errorf("Redrive() = %+v, %v: want 2 sent, their 5 copies deleted, the poison message failed", res, err)
	}
	if want := []string{`{"config":"s3://b/configs/bad.yaml"}`, `{"config":"s3://b/configs/flaky.yaml"}`}; !slices.Equal(f.sent, want) {
		t.Errorf("sent %q, want each original once", f.sent)
	}
	slices.Sort(f.deleted)
	if want := []string{"h-c1-again", "h-c2", "h-c3", "h-m-bad", "h-m-flaky"}; !slices.Equal(f.deleted, want) {
		t.Errorf("deleted %v, want %v", f.deleted, want)
	}
	if !slices.Equal(f.released, []string{"h-c4"}) {
		t.Errorf("released %v, want the copy whose original could not be sent", f.released)
	}
}

func TestScanStopsAtMaxMessages(t *testing.T) {
	t.Parallel()
	f := &fakeDLQ{}
	for i := range 5 {
		var b []types.Message
		for j := range 10 {
			id := fmt.Sprintf("m%d-%d", i, j)
			b = append(b, redriven(id, "h-"+id, "body"))
		}
		f.batches = append(f.batches, b)
	}
	s, err := (&Reader{SQS: f, QueueURL: "dlq", MaxMessages: 25}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages != 25 || !s.Truncated || len(s.Entries) != 25 {
		t.Errorf("Messages %d, Truncated %v, %d entries: want 25, truncated", s.Messages, s.Truncated, len(s.Entries))
	}
	if last := f.receives[len(f.receives)-1]; aws.ToInt32(&last.MaxNumberOfMessages) != 5 {
		t.Errorf("last receive asked for %d, want the 5 left under the limit", last.MaxNumberOfMessages)
	}
}
