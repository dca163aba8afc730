package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
)

// The receive loop's own limits.
const (
	// receiveSlack is how long a receive may take past its long poll
	// before the client gives up on it.
	receiveSlack = 5 * time.Second
	// maxReceiveErrors failed receives in a row end the run.
	maxReceiveErrors = 10
	// receiveBackoff is the wait after a failed receive, times the
	// failures in a row (at most ten times).
	receiveBackoff = time.Second
)

// loop receives messages and starts a job for each until receive ends
// (the stop signal, or Config.MaxRunTime) or, in drain mode, the queue is
// drained. It returns an error when receives keep failing or a drain gives
// up. It starts no receive after receive ended, but does not cut the one
// under way; what that one brings is released at once, with no job.
func (c *Consumer) loop(receive, calls, jobs context.Context, drain bool, protect *ecsprotect.Guard) error {
	// Back-pressure: one token per running job, so the consumer never
	// holds a message it cannot start at once.
	slots := make(chan struct{}, c.cfg.Concurrency)
	empties, failures := 0, 0
	watch := &drainWatch{c: c}
	for {
		n := acquire(receive, slots, maxBatch)
		if n == 0 {
			return nil
		}
		msgs, err := c.receive(receive, calls, n)
		for range n - len(msgs) {
			<-slots
		}
		leases := c.lease(msgs)
		if receive.Err() != nil {
			// The stop came during the long poll: start nothing, and hand
			// back at once whatever it brought.
			c.releaseAll(calls, leases, "received after the stop signal")
			return nil
		}
		if err != nil {
			failures++
			c.log.ErrorContext(receive, "receive messages", "error", err.Error(), "attempt", failures)
			if failures >= maxReceiveErrors {
				return fmt.Errorf("receive messages: %d attempts in a row failed: %w", failures, err)
			}
			select {
			case <-time.After(time.Duration(min(failures, 10)) * receiveBackoff):
			case <-receive.Done():
				return nil
			}
			continue
		}
		failures = 0
		if len(leases) == 0 {
			if c.open.count() == 0 {
				empties++
				protect.Idle()
				if drain {
					if done, err := watch.idle(receive, empties); done || err != nil {
						return err
					}
				}
			}
			continue
		}
		empties = 0
		watch.reset()
		// Never blocks: the Guard talks to the agent on its own goroutine,
		// so a slow or hung agent delays neither receives nor jobs.
		protect.Busy()
		for _, l := range leases {
			go func() {
				defer func() { <-slots }()
				c.work(calls, jobs, l)
			}()
		}
	}
}

// acquire blocks until a slot is free, then takes as many free slots as
// there are, up to most. It returns 0, taking none, once ctx ended.
func acquire(ctx context.Context, slots chan struct{}, most int) int {
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	if ctx.Err() != nil { // select picks at random when both were ready
		<-slots
		return 0
	}
	n := 1
	for n < most {
		select {
		case slots <- struct{}{}:
			n++
			continue
		default:
		}
		break
	}
	return n
}

// lease opens a lease for each message; they count as received.
func (c *Consumer) lease(msgs []types.Message) []*lease {
	ls := make([]*lease, len(msgs))
	for i, m := range msgs {
		ls[i] = newLease(m, c.log)
		c.open.add(ls[i])
	}
	c.count(func(s *Stats) { s.Received += len(msgs) })
	return ls
}

// receive long-polls for up to n messages. The call does not end with ctx:
// SQS may hand messages to a connection the client dropped, and they would
// stay hidden for the whole visibility timeout. The caller hands back what
// arrives after ctx ended. A well-behaved queue never returns more than
// asked; if one did, the extra messages would have no worker, so they are
// released at once (with calls).
func (c *Consumer) receive(ctx, calls context.Context, n int) ([]types.Message, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.WaitTime+receiveSlack)
	defer cancel()
	out, err := c.sqs.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(c.cfg.QueueURL),
		MaxNumberOfMessages: int32(n),
		WaitTimeSeconds:     int32(c.cfg.WaitTime / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{
			types.MessageSystemAttributeNameApproximateReceiveCount,
			types.MessageSystemAttributeNameSentTimestamp,
		},
	})
	if err != nil {
		return nil, err
	}
	if len(out.Messages) > n {
		c.releaseAll(calls, c.lease(out.Messages[n:]), "more messages than asked for")
		return out.Messages[:n], nil
	}
	return out.Messages, nil
}
