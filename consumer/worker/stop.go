package worker

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/internal/names"
)

// The stop budget, all derived from names.StopTimeout, the time ECS gives
// the container between SIGTERM and SIGKILL. A stop (see shutdown.run)
// ends by one deadline, the signal plus names.StopTimeout - exitMargin;
// inside it, after the grace:
const (
	// cancelWait is how long cancelled jobs have to return and release
	// their own messages.
	cancelWait = 5 * time.Second
	// releaseBudget bounds releasing the messages of jobs that ignored
	// cancellation and waiting for the settles under way.
	releaseBudget = 4 * time.Second
	// flushBudget bounds sending the pending deletes and dropping scale-in
	// protection.
	flushBudget = 4 * time.Second
	// exitMargin is left for the summary line and the process's exit.
	exitMargin = 7 * time.Second
)

// MaxGrace is the longest Config.Grace with which a stop still ends within
// names.StopTimeout: 120 s - 5 s - 4 s - 4 s - 7 s = 100 s.
const MaxGrace = names.StopTimeout - cancelWait - releaseBudget - flushBudget - exitMargin

// shutdown is one run's stop protocol. When the caller's context ends (the
// stop signal) it:
//
//  1. starts no new receive; the long poll under way is not cut (SQS may
//     still hand messages to a connection the client dropped, and they
//     would stay hidden for the whole visibility timeout): it runs to its
//     end, and the loop releases what it brings at once;
//  2. lets the jobs in flight finish, still heartbeating, until
//     Config.Grace after the signal;
//  3. cancels the jobs still running and gives them cancelWait to return;
//     a cancelled job releases its own message;
//  4. releases every lease still open (jobs that ignored cancellation) and
//     waits for settles under way, within releaseBudget;
//  5. sends the pending deletes and drops protection, within flushBudget.
//
// All of it, the settles of late jobs included, ends by the deadline: the
// settle calls' context ends there.
//
// Without a signal — a drain that finished, Config.MaxRunTime, receives
// that kept failing — the jobs in flight run to their end (unless a signal
// comes meanwhile), then steps 4 and 5 run.
type shutdown struct {
	c          *Consumer
	signalled  <-chan time.Time // when the caller's context ended
	looped     <-chan error     // the receive loop's result
	cancelJobs context.CancelFunc
	endCalls   context.CancelFunc // ends every settle call
	protect    *ecsprotect.Guard
}

// run waits for the loop to end and stops as above; it returns the loop's
// error.
func (s *shutdown) run(ctx context.Context) error {
	c := s.c
	base := context.WithoutCancel(ctx)
	var err error
	looped := false
	select {
	case err = <-s.looped:
		looped = true
		if c.open.wait(ctx) {
			now := time.Now()
			s.finish(base, now, now.Add(releaseBudget+flushBudget))
			return err
		}
	case <-ctx.Done():
	}

	at := <-s.signalled
	deadline := at.Add(names.StopTimeout - exitMargin)
	endCalls := time.AfterFunc(time.Until(deadline), s.endCalls)
	defer endCalls.Stop()

	graceEnd := at.Add(c.cfg.Grace)
	if n := c.open.count(); n > 0 {
		c.log.InfoContext(ctx, "stopping: waiting for jobs in flight", "in_flight", n, "grace_ms", c.cfg.Grace.Milliseconds())
	}
	if !s.waitUntil(base, graceEnd) {
		c.log.WarnContext(ctx, "grace period over: cancelling jobs in flight", "in_flight", c.open.count())
		s.cancelJobs()
		s.waitUntil(base, graceEnd.Add(cancelWait))
	}
	if !looped {
		// The long poll under way at the signal ends by itself, at most
		// WaitTime + receiveSlack after it (and then its release).
		err = <-s.looped
	}
	s.finish(base, time.Now(), deadline)
	return err
}

// waitUntil waits until no lease is open or t, and reports which.
func (s *shutdown) waitUntil(base context.Context, t time.Time) bool {
	ctx, cancel := context.WithDeadline(base, t)
	defer cancel()
	return s.c.open.wait(ctx)
}

// finish is steps 4 and 5: releaseBudget and flushBudget from start, never
// past deadline.
func (s *shutdown) finish(base context.Context, start, deadline time.Time) {
	c := s.c
	flushCtx, cancelFlush := context.WithDeadline(base, earlier(start.Add(releaseBudget+flushBudget), deadline))
	defer cancelFlush()
	var protection sync.WaitGroup
	protection.Go(func() { s.protect.Stop(flushCtx) })

	releaseCtx, cancelRelease := context.WithDeadline(base, earlier(start.Add(releaseBudget), deadline))
	c.releaseAll(releaseCtx, c.open.unclaimed(), "job did not stop after cancellation")
	c.open.wait(releaseCtx) // settles under way, so that their deletes reach the flush
	cancelRelease()

	c.deleter.flush(flushCtx)
	protection.Wait()
}

// releaseAll makes the messages of ls visible again at once, in batches of
// ten sent in parallel, all within ctx and callTimeout. Leases settled
// already are left alone.
func (c *Consumer) releaseAll(ctx context.Context, ls []*lease, why string) {
	ls = slices.DeleteFunc(ls, func(l *lease) bool { return !c.open.claim(l) })
	if len(ls) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c.count(func(s *Stats) { s.Released += len(ls) })
	var wg sync.WaitGroup
	for batch := range slices.Chunk(ls, maxBatch) {
		wg.Go(func() {
			defer func() {
				for _, l := range batch {
					c.open.done(l)
				}
			}()
			entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(batch))
			for i, l := range batch {
				l.logger().InfoContext(ctx, "releasing message", "outcome", OutcomeReleased, "reason", why)
				entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: l.msg.ReceiptHandle}
			}
			out, err := c.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(c.cfg.QueueURL), Entries: entries})
			if err != nil {
				// They reappear when their current visibility runs out.
				c.log.WarnContext(ctx, "release messages", "messages", len(batch), "error", err.Error())
				return
			}
			for _, f := range out.Failed {
				if i, ok := failedEntry(f, len(batch)); ok {
					batch[i].logger().WarnContext(ctx, "release message", "error", entryError(f))
				}
			}
		})
	}
	wg.Wait()
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
