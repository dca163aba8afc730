package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// startCheckTimeout is the time limit of each call drain and serve make
// before their first receive. The SDK's HTTP client has no response timeout
// of its own, so without it an endpoint that accepts the connection and never
// answers would hold the start forever, silently.
const startCheckTimeout = 10 * time.Second

// startCheck is one call made before the first receive.
type startCheck struct {
	name     string // what is checked, for the log: "queue", "bucket"
	resource string // names the resource in errors: "queue https://…", "bucket b"
	attrs    []any  // log attributes naming the resource
	run      func(ctx context.Context) error
}

// runStartChecks runs checks in order, each under its own deadline of
// timeout, with a log line before and after each; it stops at the first
// failure. The error names the resource and the cause: "<resource>: no
// answer within <timeout>" when the deadline passed.
func runStartChecks(ctx context.Context, log *slog.Logger, timeout time.Duration, checks ...startCheck) error {
	for _, c := range checks {
		log.InfoContext(ctx, "start-up check", append([]any{"check", c.name, "timeout_ms", timeout.Milliseconds()}, c.attrs...)...)
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.run(cctx)
		timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			log.InfoContext(ctx, "start-up check passed", append([]any{"check", c.name, "duration_ms", time.Since(start).Milliseconds()}, c.attrs...)...)
		case timedOut:
			return fmt.Errorf("%s: no answer within %v: %w", c.resource, timeout, err)
		default:
			return fmt.Errorf("%s: %w", c.resource, err)
		}
	}
	return nil
}
