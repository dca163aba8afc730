package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/smithy-go"
)

// Retrying a call is the SDK's business: main gives every client the SDK's
// standard retryer (see newRetryer), which resends a throttled or failed
// request with the same body — RunTask with the same client token — and the
// handler calls each API once. What the SDK cannot see is a RunTask that
// succeeded but reports tasks in failures[] (no Fargate capacity, for
// example): the handler asks for those again, in rounds.

// roundPolicy bounds the rounds of re-requesting tasks that RunTask
// reported in failures[]. Capacity shortfalls last seconds, so rounds are
// spread over about ten seconds; none runs past the invocation's budget.
type roundPolicy struct {
	// MaxRounds caps the rounds of one dispatch, the first included.
	MaxRounds int
	// BaseDelay is the pause before the second round; each further round
	// doubles it.
	BaseDelay time.Duration
	// MaxDelay caps one pause.
	MaxDelay time.Duration
}

// defaultRounds: up to six rounds, pauses of 250 ms doubling to 4 s.
var defaultRounds = roundPolicy{
	MaxRounds: 6,
	BaseDelay: 250 * time.Millisecond,
	MaxDelay:  4 * time.Second,
}

// defaultReserve is the time kept free before the Lambda's deadline: the
// handler's own deadline is this much earlier, so a dispatch cut short can
// still log, write its metric line and return its error before Lambda ends
// the invocation.
const defaultReserve = 2 * time.Second

// pause returns the pause before round+1 (round counts from 0): exponential,
// capped, jittered over its upper half so that concurrent invocations spread
// out.
func (p roundPolicy) pause(round int) time.Duration {
	d := p.BaseDelay
	for i := 0; i < round && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// sleep pauses for d and reports whether the caller may go on: false at
// once if the pause would outlast ctx's deadline, or when ctx ends during it.
func sleep(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// withBudget returns ctx ending reserve before its deadline (the Lambda
// runtime sets the invocation's deadline on ctx). Without a deadline there is
// nothing to derive from, and ctx is only made cancellable.
func withBudget(ctx context.Context, reserve time.Duration) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, deadline.Add(-reserve))
}

// isConflict reports the ECS answer to a client token reused with different
// parameters: an earlier attempt at this state change already sent this
// batch, so its tasks exist (or failed) and must not be started again.
func isConflict(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ConflictException"
}
