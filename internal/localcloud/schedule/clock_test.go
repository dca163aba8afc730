package schedule

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/edp-pipelines/edp/internal/schedexpr"
)

// TestClockWaitSpedUp runs a daily Berlin schedule at a speed-up of 3600
// (one schedule hour per real second) inside a synctest bubble, whose fake
// clock starts at 2000-01-01 00:00 UTC (01:00 in Berlin): the first fire at
// 02:00 Berlin is one schedule hour away, so one real second; each later
// fire one schedule day, so 24 real seconds.
func TestClockWaitSpedUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := schedexpr.ParseIn("cron(0 2 * * ? *)", "Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		realStart := time.Now()
		c := Clock{Start: realStart, Speedup: 3600}
		after := c.Now()
		wantFires := []time.Time{
			time.Date(2000, 1, 1, 1, 0, 0, 0, time.UTC),
			time.Date(2000, 1, 2, 1, 0, 0, 0, time.UTC),
			time.Date(2000, 1, 3, 1, 0, 0, 0, time.UTC),
		}
		wantReal := []time.Duration{time.Second, 25 * time.Second, 49 * time.Second}
		for i := range wantFires {
			fire, err := c.Wait(t.Context(), s, after)
			if err != nil {
				t.Fatalf("Wait %d: %v", i, err)
			}
			if !fire.Equal(wantFires[i]) {
				t.Errorf("fire %d = %s, want %s", i, fire.UTC().Format(time.RFC3339), wantFires[i].Format(time.RFC3339))
			}
			if got := time.Since(realStart); got != wantReal[i] {
				t.Errorf("fire %d came after %v of real time, want %v", i, got, wantReal[i])
			}
			if now := c.Now(); now.Before(fire) {
				t.Errorf("fire %d: schedule clock reads %s, before the fire time", i, now.Format(time.RFC3339Nano))
			}
			after = fire
		}
	})
}

// TestClockWaitCanceled: a canceled context ends the wait at once, with the
// context's error.
func TestClockWaitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := schedexpr.ParseIn("rate(1 day)", "UTC")
		if err != nil {
			t.Fatal(err)
		}
		c := Clock{Start: time.Now(), Speedup: 60}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		begin := time.Now()
		_, err = c.Wait(ctx, s, c.Now()) // one schedule day = 24 real minutes
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait error = %v, want context.DeadlineExceeded", err)
		}
		if got := time.Since(begin); got != 3*time.Second {
			t.Fatalf("Wait returned after %v, want 3s", got)
		}
	})
}

// TestClockWaitPastFire: a fire time the schedule clock has already passed
// returns immediately, so a runner that fell behind catches up.
func TestClockWaitPastFire(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := schedexpr.ParseIn("rate(1 minute)", "UTC")
		if err != nil {
			t.Fatal(err)
		}
		c := Clock{Start: time.Now(), Speedup: 100}
		begin := time.Now()
		fire, err := c.Wait(t.Context(), s, c.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(begin) != 0 {
			t.Fatalf("Wait slept %v for a past fire time", time.Since(begin))
		}
		if !fire.Equal(c.Now().Add(-59 * time.Minute)) {
			t.Fatalf("fire = %v, want one minute after the given time", fire)
		}
	})
}

// TestZeroClockIsRealTime: the zero Clock (and a non-positive speed-up)
// runs at the real rate.
func TestZeroClockIsRealTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, c := range []Clock{{}, {Start: time.Now(), Speedup: -3}, {Start: time.Now()}} {
			if got := c.Now(); !got.Equal(time.Now()) {
				t.Errorf("%+v: Now = %v, want the real time %v", c, got, time.Now())
			}
			if got := c.RealDuration(time.Hour); got != time.Hour {
				t.Errorf("%+v: RealDuration(1h) = %v, want 1h", c, got)
			}
		}
	})
}

func TestNoMoreFiresIsWrapped(t *testing.T) {
	t.Parallel()
	s, err := schedexpr.ParseIn("at(2020-01-01T00:00:00)", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Clock{}.Wait(t.Context(), s, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))
	if !errors.Is(err, ErrNoMoreFires) {
		t.Fatalf("Wait error = %v, want ErrNoMoreFires", err)
	}
}
