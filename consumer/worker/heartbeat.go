package worker

import (
	"context"
	"errors"
	"time"
)

// heartbeat keeps l's message hidden while its job runs: every half of the
// visibility timeout it extends the message's visibility to the full
// timeout. It ends when the returned stop is called (the job returned) or
// when run ends, at the job's timeout or at the end of the grace, whichever
// comes first: a job that ignores its timeout loses its hold on the
// message, which reappears for another consumer (jobs are idempotent).
//
// The extensions are calls of ctx, not of run, so that one under way
// finishes rather than racing the settle; stop waits for it, so no
// extension can follow the settle. A failed extension is logged and tried
// again on the next tick.
func (c *Consumer) heartbeat(ctx, run context.Context, l *lease) (stop func()) {
	vt := c.cfg.VisibilityTimeout
	t := time.NewTicker(vt / 2)
	quit, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-run.Done():
				if errors.Is(run.Err(), context.DeadlineExceeded) {
					l.logger().WarnContext(ctx, "job past its timeout: no longer extending message visibility", "job_timeout_ms", c.cfg.JobTimeout.Milliseconds())
				}
				return
			case <-t.C:
				if run.Err() != nil {
					continue // the case above ends the heartbeat
				}
				c.extend(ctx, l, vt)
			}
		}
	}()
	return func() { close(quit); <-exited }
}

// extend hides l's message for vt from now.
func (c *Consumer) extend(ctx context.Context, l *lease, vt time.Duration) {
	if err := c.setVisibility(ctx, l, vt); err != nil {
		// If the message reappears meanwhile, the job's idempotency
		// absorbs the duplicate.
		l.logger().WarnContext(ctx, "extend message visibility", "error", err.Error())
	}
}
