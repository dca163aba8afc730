package localcloud

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud/alarms"
	"github.com/edp-pipelines/edp/internal/motoserver"
)

// The age of the oldest message counts from when the sampler first saw it
// visible, not from the next evaluation: a message that waited 0.6 s
// (18 s at a speed-up of 30) before an evaluation is that old.
func TestQueueAgeCountsFromTheSampleThatSawIt(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := motoserver.StartT(t)
	clients, err := NewClients(ctx, srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	const name = "work"
	q, err := clients.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	c := &Cloud{clients: clients, moto: srv, opts: Options{Speedup: 30}}
	src := &cloudSource{c: c, backlogSince: map[string]time.Time{}, lastRead: map[string]time.Time{}}
	age := func() float64 {
		t.Helper()
		v, ok, err := src.Value(ctx, alarms.MetricQuery{Namespace: "AWS/SQS", Name: "ApproximateAgeOfOldestMessage",
			Dims: map[string]string{"QueueName": name}, Period: time.Minute})
		if err != nil || !ok {
			t.Fatalf("age: %v (ok %v)", err, ok)
		}
		return v
	}
	if got := age(); got != 0 {
		t.Fatalf("age of an empty queue: %g, want 0", got)
	}
	sampling, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- src.sampleAges(sampling, 20*time.Millisecond) }()
	if _, err := clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	time.Sleep(600 * time.Millisecond)
	got := age()
	waited := time.Since(sent).Seconds() * 30
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Within the sampler's interval (and a request) of the send.
	if got < waited-3 || got > waited+0.1 {
		t.Errorf("age %g model s after the message waited %g: want it counted from the first sample that saw it", got, waited)
	}
}
