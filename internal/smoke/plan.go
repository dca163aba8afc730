package smoke

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/schedexpr"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// Arch is the way a stack runs the consumer (stackview.Arch).
type Arch = stackview.Arch

// The four architectures (docs/architectures/).
const (
	OneOff        = stackview.OneOff
	AlarmService  = stackview.AlarmService
	AlarmDispatch = stackview.AlarmDispatch
	Cron          = stackview.Cron
)

// DetectArch tells the architecture from the deployed resources
// (stackview.DetectArch).
func DetectArch(st *localcloud.Stack) Arch { return stackview.DetectArch(st) }

// Timeouts on AWS. Each is an upper bound of a healthy run, not its
// expected duration.
const (
	// OneOffTimeout: a Fargate task starts (image pull included) in about
	// a minute and the job takes seconds.
	OneOffTimeout = 5 * time.Minute
	// TaskStart is what an alarm-started task needs to start and run the
	// job on Fargate.
	TaskStart = 3 * time.Minute
	// AlarmPeriods is how many alarm periods past the max wait the smoke
	// test allows: SQS publishes its metrics once a minute and late, and the
	// alarm needs a period to see them.
	AlarmPeriods = 5
	// CronMargin is the allowance after a schedule's fire time: Scheduler
	// invokes within the minute (plus any flexible window), then the task
	// starts and drains.
	CronMargin = 10 * time.Minute
	// CronTimeout is the default -timeout of a cron stack on AWS: the next
	// fire time plus CronMargin must fall within it.
	CronTimeout = 30 * time.Minute
)

// Timeouts in the local cloud, where tasks are local processes and alarm
// time is sped up.
const (
	// LocalTimeout bounds one-off and (triggered at once) cron runs.
	LocalTimeout = 2 * time.Minute
	// LocalTaskStart is the allowance for a local task after the sped-up
	// alarm fires.
	LocalTaskStart = time.Minute
)

// ErrRefused is returned when the smoke test would wait longer than it is
// allowed to (a cron stack whose next run is beyond -timeout): nothing was
// uploaded.
var ErrRefused = errors.New("refused")

// plan is how long to wait for one upload, and why.
type plan struct {
	arch    Arch
	timeout time.Duration
	// explain is the first line's explanation of the wait.
	explain string
	// schedule is the cron stack's schedule, for the local trigger.
	schedule string
}

// backlogAlarm is the scale-out condition read from a deployed backlog
// alarm's metric math.
type backlogAlarm struct {
	maxWait   time.Duration // the expression's `age >= <seconds>`
	threshold int           // N, the alarm's threshold
	period    time.Duration // the metrics' period
}

// findBacklogAlarm finds the alarm whose metric math holds the max-wait
// condition (stackview.BacklogAlarm).
func findBacklogAlarm(st *localcloud.Stack) (backlogAlarm, bool) {
	b, ok := stackview.BacklogAlarm(st)
	return backlogAlarm{maxWait: b.MaxWait, threshold: b.Threshold, period: b.Period}, ok
}

// makePlan decides the wait for arch at now. timeout is -timeout (0: the
// architecture's default); speedup is the local cloud's time compression
// (0 on AWS).
func makePlan(st *localcloud.Stack, arch Arch, now time.Time, timeout time.Duration, speedup float64) (plan, error) {
	local := speedup > 0
	p := plan{arch: arch}
	switch arch {
	case OneOff:
		p.timeout, p.explain = OneOffTimeout, "each upload starts a task"
		if local {
			p.timeout = LocalTimeout
		}
	case AlarmService, AlarmDispatch:
		a, ok := findBacklogAlarm(st)
		if !ok {
			return p, fmt.Errorf("stack %s has no backlog alarm with a max-wait condition (age >= seconds) in its metric math", st.Name)
		}
		wait, start, unit := a.maxWait+AlarmPeriods*a.period, TaskStart, "task start"
		p.explain = fmt.Sprintf("one config is below the threshold N=%d, so unless a task is already running it runs once the oldest message has waited %s (the backlog alarm's `age >= %d`)",
			a.threshold, a.maxWait, int(a.maxWait.Seconds()))
		if local {
			wait = time.Duration(float64(wait) / speedup)
			start, unit = LocalTaskStart, "local task"
			p.explain += fmt.Sprintf(", %s in the local cloud's time (sped up ×%g)", time.Duration(float64(a.maxWait)/speedup).Round(time.Second), speedup)
		}
		p.timeout = wait + start
		p.explain += fmt.Sprintf("; allowing max wait + %d alarm periods + %s", AlarmPeriods, unit)
	case Cron:
		sched, name, err := stackSchedule(st)
		if err != nil {
			return p, err
		}
		p.schedule = name
		next, ok := sched.Next(now)
		if !ok {
			return p, fmt.Errorf("%w: schedule %s (%s) never fires again", ErrRefused, sched, sched.Location())
		}
		if local {
			p.timeout = LocalTimeout
			p.explain = fmt.Sprintf("schedule %s (%s); the local cloud runs its target now instead of waiting", sched, sched.Location())
			break
		}
		need := next.Sub(now) + CronMargin
		limit := timeout
		if limit == 0 {
			limit = CronTimeout
		}
		if need > limit {
			return p, fmt.Errorf("%w: schedule %s (%s) runs next at %s, in %s; waiting for it plus %s exceeds the timeout %s: re-run within %s before the schedule, or pass -timeout %s",
				ErrRefused, sched, sched.Location(), next.Format("2006-01-02 15:04 MST"), next.Sub(now).Round(time.Minute),
				CronMargin, limit, (limit - CronMargin).Round(time.Minute), need.Round(time.Minute))
		}
		p.timeout = need
		p.explain = fmt.Sprintf("schedule %s (%s) runs next at %s, in %s; allowing that + %s",
			sched, sched.Location(), next.Format("2006-01-02 15:04 MST"), next.Sub(now).Round(time.Second), CronMargin)
		return p, nil
	default:
		return p, fmt.Errorf("unknown architecture %q", arch)
	}
	if timeout > 0 {
		p.timeout = timeout
		p.explain += " (-timeout given)"
	}
	return p, nil
}

// stackSchedule parses the stack's enabled schedule.
func stackSchedule(st *localcloud.Stack) (schedexpr.Schedule, string, error) {
	var disabled []string
	for _, id := range st.Resources("AWS::Scheduler::Schedule") {
		p := st.Properties(id)
		if p["State"] == "DISABLED" {
			disabled = append(disabled, id)
			continue
		}
		expr, _ := p["ScheduleExpression"].(string)
		tz, _ := p["ScheduleExpressionTimezone"].(string)
		s, err := schedexpr.ParseIn(expr, tz)
		if err != nil {
			return s, id, fmt.Errorf("schedule %s of %s: %w", id, st.Name, err)
		}
		return s, id, nil
	}
	if len(disabled) > 0 {
		return schedexpr.Schedule{}, "", fmt.Errorf("%w: the schedule of %s is DISABLED (%s): nothing would run the upload", ErrRefused, st.Name, strings.Join(disabled, ", "))
	}
	return schedexpr.Schedule{}, "", fmt.Errorf("stack %s has no schedule", st.Name)
}
