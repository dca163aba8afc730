package stackview

import (
	"fmt"
	"strings"
	"time"
)

// WaitFacts is what WhyWaits reasons over: one reading of a stack's queue,
// tasks and triggers. Durations are in the stack's time (what a deployed
// stack would see); the local cloud's sped-up real time is derived with
// Speedup. A zero field means "not known", unless its Has… flag says so.
type WaitFacts struct {
	Queue QueueDepth
	// Running and Starting count the cluster's tasks RUNNING and on their
	// way there (PROVISIONING, PENDING, ACTIVATING).
	Running, Starting int
	// Desired is the service's desired count (alarm-service), when
	// HasDesired.
	Desired    int
	HasDesired bool
	// Backlog is the stack's backlog alarm (alarm-service and
	// alarm-dispatch), when HasBacklog.
	Backlog    Backlog
	HasBacklog bool
	// BacklogState is the backlog alarm's state (OK, ALARM,
	// INSUFFICIENT_DATA), when known.
	BacklogState string
	// OldestAge is the age of the oldest visible message, when HasOldest.
	OldestAge time.Duration
	HasOldest bool
	// Schedule is the cron stack's schedule expression; NextFire is how
	// long until it fires next, when HasNextFire; LocalNextFire is when
	// the local cloud's Scheduler clock fires it, in real time (local
	// only: that clock does not simply divide by Speedup).
	Schedule      string
	NextFire      time.Duration
	HasNextFire   bool
	LocalNextFire time.Duration
	// LastDispatch is how long ago the dispatch function last ran
	// (alarm-dispatch), when HasLastDispatch; NeverDispatched says it is
	// known not to have run (the local cloud knows; AWS is not asked).
	LastDispatch    time.Duration
	HasLastDispatch bool
	NeverDispatched bool
	// DeliveryDLQ is the number of events the rule could not deliver.
	DeliveryDLQ int
	// Speedup is the local cloud's time compression; 0 on AWS.
	Speedup float64
}

// real renders a stack-time duration, with its local real time when the
// stack runs in the local cloud.
func (f WaitFacts) real(d time.Duration) string {
	s := round(d).String()
	if f.Speedup > 0 {
		s += fmt.Sprintf(" (%s here, sped up ×%g)", round(time.Duration(float64(d)/f.Speedup)), f.Speedup)
	}
	return s
}

func round(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d < time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(10 * time.Second)
}

// WhyWaits says, from the architecture (docs/architectures/) and the facts,
// why visible messages are not being worked on: "" when nothing is visible
// or tasks are running to take them.
func WhyWaits(arch Arch, f WaitFacts) string {
	if f.Queue.Visible == 0 {
		return ""
	}
	if f.Running > 0 {
		return fmt.Sprintf("%d task(s) running take them as workers free up", f.Running)
	}
	if f.Starting > 0 {
		return fmt.Sprintf("%d task(s) starting (provisioning/pending)", f.Starting)
	}
	var parts []string
	switch arch {
	case OneOff:
		parts = append(parts, "the rule starts a task per upload, none runs yet: the task may still be on its way, or its RunTask failed; the stranded-work alarm starts one for work left waiting")
	case AlarmService, AlarmDispatch:
		parts = append(parts, backlogReason(f)...)
		if arch == AlarmService && f.HasDesired && f.Desired > 0 {
			parts = append(parts, fmt.Sprintf("the service wants %d task(s): ECS is placing them", f.Desired))
		}
		if arch == AlarmDispatch {
			if f.HasLastDispatch {
				parts = append(parts, fmt.Sprintf("the dispatch function last ran %s ago", round(f.LastDispatch)))
			} else if f.NeverDispatched {
				parts = append(parts, "the dispatch function has not run yet")
			}
		}
	case Cron:
		switch {
		case f.HasNextFire:
			s := fmt.Sprintf("drained by the schedule %s, which fires next in %s", f.Schedule, round(f.NextFire))
			if f.Speedup > 0 {
				s += fmt.Sprintf(" (%s here, on the local Scheduler clock)", round(f.LocalNextFire))
			}
			parts = append(parts, s)
		case f.Schedule != "":
			parts = append(parts, fmt.Sprintf("drained by the schedule %s, which never fires again", f.Schedule))
		default:
			parts = append(parts, "drained by the stack's schedule")
		}
	default:
		parts = append(parts, "no task runs")
	}
	if f.DeliveryDLQ > 0 {
		parts = append(parts, fmt.Sprintf("%d event(s) in the delivery DLQ: the rule could not start a task for them", f.DeliveryDLQ))
	}
	return strings.Join(parts, "; ")
}

// backlogReason is the backlog alarm's side: below or at the threshold,
// and when the max-wait trigger fires.
func backlogReason(f WaitFacts) []string {
	if !f.HasBacklog {
		return []string{"a task starts when the backlog alarm fires"}
	}
	b := f.Backlog
	if f.Queue.Visible >= b.Threshold {
		s := fmt.Sprintf("%d visible, at or over the threshold N = %d: the backlog alarm starts a task at its next evaluation", f.Queue.Visible, b.Threshold)
		if f.BacklogState != "" {
			s += " (now " + f.BacklogState + ")"
		}
		return []string{s}
	}
	s := fmt.Sprintf("%d of N = %d visible, below the threshold; ", f.Queue.Visible, b.Threshold)
	switch {
	case !f.HasOldest:
		s += "the max-wait trigger fires once the oldest has waited " + f.real(b.MaxWait)
	case f.OldestAge >= b.MaxWait:
		s += fmt.Sprintf("the oldest has waited %s ≥ the max wait %s: the backlog alarm fires within a period (%s)", round(f.OldestAge), round(b.MaxWait), f.real(b.Period))
	default:
		s += "the max-wait trigger fires in " + f.real(b.MaxWait-f.OldestAge) + fmt.Sprintf(" (oldest %s of %s)", round(f.OldestAge), round(b.MaxWait))
	}
	if f.BacklogState != "" {
		s += "; backlog alarm " + f.BacklogState
	}
	return []string{s}
}
