package worker

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Two jobs finishing together share one DeleteMessageBatch call. A failed
// call, and an entry failed by SQS itself, are tried once more; an entry
// failed by the request (a stale receipt handle) is not.
func TestDeleteRetriesOnce(t *testing.T) {
	t.Parallel()
	throttled := errors.New("ThrottlingException: Rate exceeded")
	tests := map[string]struct {
		callErrs    []error
		entryFails  int // server-side failures of m0's entry
		stale       bool
		wantDeleted []string
		wantCalls   int
	}{
		"ok":                    {wantDeleted: []string{"m0", "m1"}, wantCalls: 1},
		"call fails once":       {callErrs: []error{throttled}, wantDeleted: []string{"m0", "m1"}, wantCalls: 2},
		"call fails twice":      {callErrs: []error{throttled, throttled}, wantCalls: 2},
		"entry fails once":      {entryFails: 1, wantDeleted: []string{"m1", "m0"}, wantCalls: 2},
		"entry fails twice":     {entryFails: 2, wantDeleted: []string{"m1"}, wantCalls: 2},
		"stale handle (sender)": {stale: true, wantDeleted: []string{"m1"}, wantCalls: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSQS("configs/a.yaml", "configs/b.yaml")
				f.deleteErrs = tt.callErrs
				f.deleteFails = map[string]int{"m0": tt.entryFails}
				proc := keyJobs(func(context.Context, string) (Result, error) {
					if tt.stale {
						// m0's handle expires while its job runs.
						f.mu.Lock()
						for h, m := range f.held {
							if *m.MessageId == "m0" {
								delete(f.held, h)
							}
						}
						f.mu.Unlock()
					}
					return Result{RunID: "r"}, nil
				})
				c := newTestConsumer(t, Config{Concurrency: 2}, f, proc)
				// Serve, not Drain: a message whose delete failed stays
				// in flight, and a drain would wait for it.
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error)
				go func() { _, err := c.Serve(ctx); done <- err }()
				time.Sleep(time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				deleted, _, _, _ := f.snapshot()
				if diff := cmp.Diff(tt.wantDeleted, deleted, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
					t.Errorf("deleted (-want +got):\n%s", diff)
				}
				f.mu.Lock()
				defer f.mu.Unlock()
				if f.deleteCalls != tt.wantCalls {
					t.Errorf("%d DeleteMessageBatch calls, want %d", f.deleteCalls, tt.wantCalls)
				}
			})
		})
	}
}
