package stackview

import (
	"strings"
	"testing"
	"time"
)

// WhyWaits names the reason of each architecture, and stays silent when
// nothing waits or tasks run.
func TestWhyWaits(t *testing.T) {
	t.Parallel()
	backlog := Backlog{LogicalID: "Backlog", MaxWait: 15 * time.Minute, Threshold: 10, Period: time.Minute}
	three := QueueDepth{Visible: 3}
	for _, tc := range []struct {
		name string
		arch Arch
		f    WaitFacts
		want []string // substrings, in order; nil: ""
	}{
		{"nothing visible", AlarmService, WaitFacts{Queue: QueueDepth{InFlight: 2}}, nil},
		{"tasks running", Cron, WaitFacts{Queue: three, Running: 1}, []string{"1 task(s) running"}},
		{"tasks starting", OneOff, WaitFacts{Queue: three, Starting: 2}, []string{"2 task(s) starting"}},
		{"one-off", OneOff, WaitFacts{Queue: three}, []string{"task per upload", "stranded-work alarm"}},
		{"one-off, delivery failed", OneOff, WaitFacts{Queue: three, DeliveryDLQ: 2}, []string{"task per upload", "2 event(s) in the delivery DLQ"}},
		{"service below N, age unknown", AlarmService, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true},
			[]string{"3 of N = 10 visible", "once the oldest has waited 15m0s"}},
		{"service below N, on AWS", AlarmService, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, OldestAge: 5 * time.Minute, HasOldest: true, BacklogState: "OK"},
			[]string{"3 of N = 10 visible", "fires in 10m0s (oldest 5m0s of 15m0s)", "backlog alarm OK"}},
		{"service below N, local", AlarmService, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, OldestAge: 5 * time.Minute, HasOldest: true, Speedup: 30},
			[]string{"fires in 10m0s (20s here, sped up ×30)"}},
		{"service past the max wait", AlarmService, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, OldestAge: 16 * time.Minute, HasOldest: true},
			[]string{"16m0s ≥ the max wait 15m0s", "within a period"}},
		{"service at N", AlarmService, WaitFacts{Queue: QueueDepth{Visible: 12}, Backlog: backlog, HasBacklog: true, BacklogState: "ALARM"},
			[]string{"12 visible, at or over the threshold N = 10", "(now ALARM)"}},
		{"service scaling out", AlarmService, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, Desired: 1, HasDesired: true},
			[]string{"3 of N = 10", "the service wants 1 task(s)"}},
		{"dispatch never ran", AlarmDispatch, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, NeverDispatched: true},
			[]string{"3 of N = 10", "dispatch function has not run yet"}},
		{"dispatch ran", AlarmDispatch, WaitFacts{Queue: three, Backlog: backlog, HasBacklog: true, LastDispatch: 90 * time.Second, HasLastDispatch: true},
			[]string{"dispatch function last ran 1m30s ago"}},
		{"cron on AWS", Cron, WaitFacts{Queue: three, Schedule: "cron(0 2 * * ? *)", NextFire: 2*time.Hour + 3*time.Minute, HasNextFire: true},
			[]string{"schedule cron(0 2 * * ? *), which fires next in 2h3m0s"}},
		{"cron local", Cron, WaitFacts{Queue: three, Schedule: "rate(1 hour)", NextFire: time.Hour, HasNextFire: true, LocalNextFire: 7 * time.Second, Speedup: 30},
			[]string{"fires next in 1h0m0s (7s here, on the local Scheduler clock)"}},
		{"cron never again", Cron, WaitFacts{Queue: three, Schedule: "at(2020-01-01T00:00:00)"}, []string{"never fires again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := WhyWaits(tc.arch, tc.f)
			if tc.want == nil {
				if got != "" {
					t.Fatalf("got %q, want nothing", got)
				}
				return
			}
			rest := got
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("%q lacks %q (in order)", got, w)
				}
				rest = rest[i+len(w):]
			}
		})
	}
}
