package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A drain must not end while messages it received are still hidden: here
// the first receive's answer is lost (the messages stay in flight for the
// visibility timeout), the receives that follow are empty, and the drain
// waits for the messages to reappear, runs them, and only then ends, when
// the queue shows nothing visible and nothing in flight twice in a row.
func TestDrainWaitsForMessagesInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS("configs/a.yaml", "configs/b.yaml", "configs/c.yaml")
		f.loseReceives = 1
		var logs bytes.Buffer
		var done atomic.Int32
		// 1 s long polls: the three empty receives end long before the
		// 30 s visibility timeout brings the lost messages back.
		c := newTestConsumer(t, Config{WaitTime: time.Second, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, f,
			keyJobs(func(context.Context, string) (Result, error) { done.Add(1); return Result{RunID: "r"}, nil }))
		start := time.Now()
		st, err := c.Drain(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		deleted, _, _, _ := f.snapshot()
		if done.Load() != 3 || len(deleted) != 3 || st.Succeeded != 3 {
			t.Errorf("%d jobs done, %d deleted, stats %+v: want the 3 messages of the lost receive run", done.Load(), len(deleted), st)
		}
		// They reappear after the 30 s visibility timeout.
		if waited := time.Since(start); waited < 30*time.Second {
			t.Errorf("drain ended after %v, before the lost messages could reappear", waited)
		}
		for _, want := range []string{
			`"msg":"drain: receives are empty but the queue still holds messages; waiting for them to reappear","visible":0,"in_flight":3,"delayed":0,"wait_limit_ms":60000`,
			`"msg":"queue is empty: nothing visible, nothing in flight"`,
		} {
			if !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %s:\n%s", want, logs.String())
			}
		}
		f.assertNoneHeld(t)
	})
}

// Messages held by someone else (another consumer's long job) are waited
// for up to the visibility timeout plus drainMargin; then the drain ends
// with ErrNotDrained, saying what the queue still holds.
func TestDrainGivesUpOnMessagesHeldElsewhere(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSQS()
		f.countsHook = func() (int, int, int, error) { return 0, 2, 1, nil }
		c := newTestConsumer(t, Config{}, f, keyJobs(succeed))
		start := time.Now()
		_, err := c.Drain(context.Background())
		if !errors.Is(err, ErrNotDrained) || !strings.Contains(err.Error(), "0 visible, 2 in flight and 1 delayed") {
			t.Fatalf("Drain() = %v, want ErrNotDrained with the counts", err)
		}
		// The wait starts after the first EmptyReceives (3) long polls and
		// ends at the first check past the limit.
		if waited, limit := time.Since(start), 3*DefaultWaitTime+30*time.Second+drainMargin; waited < limit || waited > limit+DefaultWaitTime {
			t.Errorf("gave up after %v, want just past %v (3 empty receives, then the visibility timeout + margin)", waited, limit)
		}
	})
}

// The counts are approximate: one check that finds the queue empty is not
// enough, two in a row are; a check that fails counts as not empty, and
// one that keeps failing ends the drain with ErrNotDrained.
func TestDrainNeedsTwoEmptyChecksInARow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		counts     []int // in flight per check; -1: the call fails
		wantChecks int
		wantErr    bool
	}{
		{"empty at once", []int{0, 0}, 2, false},
		{"a flicker", []int{0, 1, 0, 0}, 4, false},
		{"a failed check", []int{0, -1, 0, 0}, 4, false},
		{"never readable", nil, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSQS()
				i := 0
				f.countsHook = func() (int, int, int, error) {
					defer func() { i++ }()
					if i >= len(tc.counts) || tc.counts[i] < 0 {
						if tc.counts == nil {
							return 0, 0, 0, errors.New("AccessDenied")
						}
						if i >= len(tc.counts) {
							return 0, 0, 0, nil
						}
						return 0, 0, 0, errors.New("ServiceUnavailable")
					}
					return 0, tc.counts[i], 0, nil
				}
				c := newTestConsumer(t, Config{EmptyReceives: 2}, f, keyJobs(succeed))
				_, err := c.Drain(context.Background())
				if tc.wantErr {
					if !errors.Is(err, ErrNotDrained) || !strings.Contains(err.Error(), "AccessDenied") {
						t.Errorf("Drain() = %v, want ErrNotDrained with the cause", err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.countChecks != tc.wantChecks || len(f.receiveMax) != tc.wantChecks {
					t.Errorf("%d checks after %d receives, want %d checks, one per empty receive from the first", f.countChecks, len(f.receiveMax), tc.wantChecks)
				}
			})
		})
	}
}

// An empty queue costs a drain exactly EmptyReceives receives (at least 2:
// two checks in a row) and no waiting.
func TestDrainOfAnEmptyQueue(t *testing.T) {
	t.Parallel()
	for _, empties := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(empties), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSQS()
				c := newTestConsumer(t, Config{EmptyReceives: empties}, f, keyJobs(succeed))
				start := time.Now()
				if _, err := c.Drain(context.Background()); err != nil {
					t.Fatal(err)
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if want := max(empties, 2); len(f.receiveMax) != want || f.countChecks != 2 {
					t.Errorf("%d receives, %d checks: want %d receives and 2 checks", len(f.receiveMax), f.countChecks, want)
				}
				if waited, want := time.Since(start), time.Duration(max(empties, 2))*DefaultWaitTime; waited != want {
					t.Errorf("an empty queue took %v to drain, want %v: its long polls and no more", waited, want)
				}
			})
		})
	}
}
