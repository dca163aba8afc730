package localcloud

import (
	"context"
	"fmt"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud/schedule"
	"github.com/edp-pipelines/edp/internal/schedexpr"
)

// ScheduleInterval is the real time between two fires of a deployed
// schedule in the local cloud: the Scheduler clock is sped up so that the
// schedule's own interval (a day for the default nightly cron) passes in it.
const ScheduleInterval = 10 * time.Second

// deployedSchedule is a schedule as EventBridge Scheduler stores it.
type deployedSchedule struct {
	name  string
	sched schedexpr.Schedule
	run   TaskRequest
	clock schedule.Clock
}

// loadSchedules reads the stack's schedules as deployed: moto's
// CloudFormation accepts AWS::Scheduler::Schedule without creating it in
// moto's Scheduler, so expression, time zone and ECS target come from the
// deployed template, with references resolved to the deployed resources.
func (c *Cloud) loadSchedules(context.Context) ([]deployedSchedule, error) {
	var out []deployedSchedule
	for _, id := range c.stack.Resources("AWS::Scheduler::Schedule") {
		p := c.stack.Properties(id)
		if p["State"] == "DISABLED" {
			continue
		}
		expr, _ := p["ScheduleExpression"].(string)
		tz, _ := p["ScheduleExpressionTimezone"].(string)
		s, err := schedexpr.ParseIn(expr, tz)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", id, err)
		}
		target, _ := p["Target"].(map[string]any)
		ecsp, _ := target["EcsParameters"].(map[string]any)
		if ecsp == nil {
			continue
		}
		td, err := c.resolve(ecsp["TaskDefinitionArn"])
		if err != nil {
			return nil, fmt.Errorf("schedule %s: %w", id, err)
		}
		count := 1
		if n, ok := ecsp["TaskCount"].(float64); ok && n > 0 {
			count = int(n)
		}
		env := map[string]string{}
		if in, ok := target["Input"].(string); ok && in != "" {
			if env, err = overrideEnv(in); err != nil {
				return nil, fmt.Errorf("schedule %s: %w", id, err)
			}
		}
		now := time.Now()
		out = append(out, deployedSchedule{
			name: id, sched: s,
			run:   TaskRequest{TaskDefinition: td, Count: count, Env: env, StartedBy: "scheduler/" + id},
			clock: schedule.Clock{Start: now, Speedup: scheduleSpeedup(s, now)},
		})
	}
	return out, nil
}

// scheduleSpeedup makes the schedule's interval (between its next two
// fires) last ScheduleInterval of real time.
func scheduleSpeedup(s schedexpr.Schedule, now time.Time) float64 {
	first, ok := s.Next(now)
	if !ok {
		return 1
	}
	second, ok := s.Next(first)
	if !ok {
		return max(1, float64(first.Sub(now))/float64(ScheduleInterval))
	}
	return max(1, float64(second.Sub(first))/float64(ScheduleInterval))
}

// startSchedules runs each deployed schedule's ECS target at its fire
// times, on the sped-up Scheduler clock.
func (c *Cloud) startSchedules(ctx context.Context, run TaskRunner) error {
	scheds, err := c.loadSchedules(ctx)
	if err != nil {
		return err
	}
	for _, s := range scheds {
		c.opts.Logger.Info("emulating Scheduler schedule", "schedule", s.name, "expression", s.sched.String(),
			"speedup", s.clock.Speedup, "real_interval", ScheduleInterval.String())
		c.schedules = append(c.schedules, s)
		c.goRun("schedule "+s.name, func() error { return runSchedule(ctx, s, run, c.opts.Logger) })
	}
	return nil
}

func runSchedule(ctx context.Context, s deployedSchedule, run TaskRunner, log interface {
	Info(string, ...any)
	Error(string, ...any)
}) error {
	after := s.clock.Now()
	for {
		fire, err := s.clock.Wait(ctx, s.sched, after)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		after = fire
		arns, err := run.RunTask(ctx, s.run)
		if err != nil {
			log.Error("schedule target failed", "schedule", s.name, "fire_time", fire, "error", err)
			continue
		}
		log.Info("schedule fired", "schedule", s.name, "fire_time", fire, "tasks", arns)
	}
}

// NextScheduledRun returns, for each schedule, the next fire time on its
// schedule clock and when that is in real time.
func (c *Cloud) NextScheduledRun() map[string]time.Time {
	out := map[string]time.Time{}
	for _, s := range c.schedules {
		now := s.clock.Now()
		if next, ok := s.sched.Next(now); ok {
			out[s.name] = time.Now().Add(s.clock.RealDuration(next.Sub(now)))
		}
	}
	return out
}

// FireSchedules runs every schedule's target now (what `edp smoke` does
// locally instead of waiting for the next fire), through the local ECS API
// as FireSchedulesAt does for a cloud in another process.
func (c *Cloud) FireSchedules(ctx context.Context) ([]string, error) {
	return FireSchedulesAt(ctx, c.ecsURL, c.stack)
}
