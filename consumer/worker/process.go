package worker

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/edp-pipelines/edp/consumer/failure"
)

// work runs l's job and settles l by its answer. The job runs under jobs
// (cancelled when the grace ends) and Config.JobTimeout; the settle calls
// run under calls, which outlives jobs.
func (c *Consumer) work(calls, jobs context.Context, l *lease) {
	run, cancel := context.WithTimeout(withStopSignal(jobs, c.stopping), c.cfg.JobTimeout)
	stopHeartbeat := c.heartbeat(calls, run, l)
	res, err := c.process(run, l)
	cancel()
	stopHeartbeat()
	l.finish(res.RunID)

	if !c.open.claim(l) {
		return // the stop released the message while the job overran
	}
	defer c.open.done(l)
	switch {
	case err == nil && res.Skip != "":
		c.skip(calls, l, res.Skip)
	case err == nil:
		c.succeed(calls, l, res)
	case errors.Is(err, failure.ErrPermanent):
		c.deadLetter(calls, l, err)
	case jobs.Err() != nil, errors.Is(err, failure.ErrStopped):
		// The grace ran out, or the job stopped when asked to (StopSignal):
		// hand the message to another consumer now rather than after its
		// visibility timeout or the retry delay.
		c.release(calls, l, err.Error())
	default:
		c.retry(calls, l, err)
	}
}

// process runs the Processor with a panic turned into a permanent failure:
// the panic is a bug a retry would hit again, and it must not end the
// process and every other job in it. The message goes to the DLQ with the
// panic as its reason; the stack goes to the log.
func (c *Consumer) process(ctx context.Context, l *lease) (res Result, err error) {
	defer func() {
		if v := recover(); v != nil {
			l.logger().ErrorContext(ctx, "job panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			res, err = Result{}, failure.Permanent(fmt.Errorf("panic: %v", v))
		}
	}()
	return c.proc.Process(ctx, l.message())
}

// stopSignalKey is the context key of StopSignal's channel.
type stopSignalKey struct{}

func withStopSignal(ctx context.Context, stopping <-chan struct{}) context.Context {
	return context.WithValue(ctx, stopSignalKey{}, stopping)
}

// StopSignal returns a channel that is closed when the consumer running
// the job in ctx starts to stop (SIGTERM: scale-in, Spot interruption, a
// deploy), nil outside a job. A job that can stop early — a child process
// that should get the SIGTERM too — watches it; one that then ends returns
// an error matching failure.ErrStopped, and its message is released at
// once for another consumer. A job that ignores it keeps running until
// Config.Grace after the signal, when its context is cancelled.
func StopSignal(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stopSignalKey{}).(<-chan struct{})
	return ch
}
