// Package schedule is the local cloud's Scheduler clock: a Clock that runs
// faster than the real clock and waits for a schedule's fire times, so a
// nightly schedule fires every few real seconds. What a schedule expression
// means, and when it fires in its time zone, is internal/schedexpr's (the
// same grammar settings checks edp:schedule with at synth time).
package schedule

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/edp-pipelines/edp/internal/schedexpr"
)

// ErrNoMoreFires is returned by Clock.Wait when the schedule has no fire
// time left after the given time.
var ErrNoMoreFires = errors.New("schedule has no more fire times")

// Clock is a schedule clock that runs Speedup times faster than the real
// clock from the real instant Start on: at Start both read the same, and
// after a real duration d the schedule clock reads Start + d·Speedup. At a
// speed-up of 3600 a daily schedule fires every 24 real seconds.
//
// The zero Clock is the real clock. A Speedup of zero or less (or NaN)
// means 1, and the speed-up applies only from a non-zero Start (use
// time.Now()). Clock reads time through the time package only, so tests can
// run it inside a testing/synctest bubble.
type Clock struct {
	// Start is the real instant from which the schedule clock runs fast.
	Start time.Time
	// Speedup is how many schedule seconds pass per real second. Default 1.
	Speedup float64
}

// speedup returns the effective factor.
func (c Clock) speedup() float64 {
	if c.Start.IsZero() || !(c.Speedup > 0) || math.IsInf(c.Speedup, 0) {
		return 1
	}
	return c.Speedup
}

// Now returns the schedule clock's current time.
func (c Clock) Now() time.Time {
	now := time.Now()
	if c.Start.IsZero() {
		return now
	}
	return c.Start.Add(scale(now.Sub(c.Start), c.speedup()))
}

// RealDuration returns how long the real clock takes while the schedule
// clock advances by d (rounded up to the nanosecond).
func (c Clock) RealDuration(d time.Duration) time.Duration {
	return scale(d, 1/c.speedup())
}

// Wait sleeps until the schedule clock reaches sched's first fire time after
// after, and returns that fire time. A fire time already past on the
// schedule clock returns at once (the caller decides whether a late fire
// still counts). It returns ctx's error if ctx ends first, and an error
// wrapping ErrNoMoreFires if the schedule has no fire time left.
func (c Clock) Wait(ctx context.Context, sched schedexpr.Schedule, after time.Time) (time.Time, error) {
	fireAt, ok := sched.Next(after)
	if !ok {
		return time.Time{}, fmt.Errorf("wait for %s after %s: %w", sched, after.Format(time.RFC3339), ErrNoMoreFires)
	}
	// Loop because the real sleep is rounded: wake, re-read the schedule
	// clock, and sleep the remainder if it is not there yet.
	for {
		ahead := fireAt.Sub(c.Now())
		if ahead <= 0 {
			return fireAt, nil
		}
		timer := time.NewTimer(c.RealDuration(ahead))
		select {
		case <-ctx.Done():
			timer.Stop()
			return time.Time{}, ctx.Err()
		case <-timer.C:
		}
	}
}

// scale multiplies d by f, rounding up and saturating at the largest
// duration, and never returns less than 1ns for a positive d.
func scale(d time.Duration, f float64) time.Duration {
	v := math.Ceil(float64(d) * f)
	switch {
	case v >= math.MaxInt64:
		return math.MaxInt64
	case v <= math.MinInt64:
		return math.MinInt64
	case d > 0 && v < 1:
		return 1
	}
	return time.Duration(v)
}
