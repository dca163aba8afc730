package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/aws/smithy-go"
)

// retryPolicy bounds the dispatcher's own retries, which sit on top of the
// SDK's quick ones: they cover throttling and Fargate capacity shortfalls
// that last seconds, and they never run past the invocation's deadline.
type retryPolicy struct {
	// MaxAttempts caps attempts of one call, and rounds of re-requesting
	// tasks that RunTask reported as failures.
	MaxAttempts int
	// BaseDelay is the first backoff; each further attempt doubles it.
	BaseDelay time.Duration
	// MaxDelay caps one backoff.
	MaxDelay time.Duration
	// Reserve is kept free before the deadline so the handler can still log,
	// emit its metric line and return its error in time.
	Reserve time.Duration
}

// defaultRetry suits a function timeout of 30 s or more: up to six attempts
// spread over roughly ten seconds.
var defaultRetry = retryPolicy{
	MaxAttempts: 6,
	BaseDelay:   250 * time.Millisecond,
	MaxDelay:    4 * time.Second,
	Reserve:     2 * time.Second,
}

// backoff returns the pause before attempt+1: exponential, capped, with
// jitter over its upper half so retries of concurrent callers spread out.
func (p retryPolicy) backoff(attempt int, jitter func(time.Duration) time.Duration) time.Duration {
	d := p.BaseDelay
	for i := 0; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if d <= 0 {
		return 0
	}
	return d/2 + jitter(d/2)
}

// randomJitter returns a uniformly random duration in [0, d].
func randomJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// sleepCtx pauses for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryableCodes are API error codes worth another attempt: throttling and
// server-side trouble. Everything else from the service (access denied,
// invalid parameters, unknown cluster) fails the same way the next time.
var retryableCodes = map[string]bool{
	"ThrottlingException":      true,
	"Throttling":               true,
	"ThrottledException":       true,
	"TooManyRequestsException": true,
	"RequestLimitExceeded":     true,
	"RequestThrottled":         true,
	"ServerException":          true,
	"ServiceUnavailable":       true,
	"InternalError":            true,
	"InternalFailure":          true,
	"RequestTimeout":           true,
	"RequestTimeoutException":  true,
}

// retryable reports whether err may succeed on another attempt.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return retryableCodes[apiErr.ErrorCode()] || apiErr.ErrorFault() == smithy.FaultServer
	}
	// No answer from the service (connection reset, DNS, timeout of one
	// attempt): the request may not have arrived, and RunTask carries a
	// client token, so trying again is safe.
	return true
}

// isConflict reports the ECS answer to a client token reused with different
// parameters: an earlier attempt at this state change already sent this
// batch, so its tasks exist (or failed) and must not be started again.
func isConflict(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ConflictException"
}
