package sim

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/edp-pipelines/edp/internal/schedexpr"
	"github.com/edp-pipelines/edp/internal/settings"
)

// Arch is one of the four architectures, by the names `edp local -arch`
// takes.
type Arch string

// The architectures.
const (
	OneOff        Arch = "oneoff"         // EdpOneOff: a drain task per upload
	AlarmService  Arch = "alarm-service"  // EdpAlarmService: a service scaled 0..N by alarms
	AlarmDispatch Arch = "alarm-dispatch" // EdpAlarmDispatch: alarm → SNS → Lambda → RunTask
	Cron          Arch = "cron"           // EdpCron: Scheduler → a drain task
)

// Archs lists the architectures in documentation order.
func Archs() []Arch { return []Arch{OneOff, AlarmService, AlarmDispatch, Cron} }

// Config is one simulation run's input besides the scenario.
type Config struct {
	Arch     Arch
	Settings settings.Settings // validated, as settings.FromContext returns them
	Params   Params            // DefaultParams() unless measured
	Job      JobModel          // DefaultJob unless measured
	Seed     uint64
	// Start is the clock's origin (midnight UTC of the first day); the zero
	// time means the package's Start.
	Start time.Time
}

// sample is one point of the plotted series.
type sample struct {
	t       float64
	depth   int // visible + in flight
	running int // tasks started and not stopped
}

// datapoint is one metric period as CloudWatch would hold it.
type datapoint struct {
	end                 float64
	missing             bool // the queue published nothing (inactive, or its metrics not resumed yet)
	visible, inflight   int  // Maximum over the period
	age                 float64
	desired             int     // the service's desired count at the period's end (Container Insights)
	running             float64 // average RUNNING tasks over the period; NaN when none ran (no data)
	invocations         int     // dispatch function invocations in the period
	hadRunning          bool
	runningArea, length float64
}

// run is the state of one simulation.
type run struct {
	cfg   Config
	s     settings.Settings
	p     Params
	clock clock
	rng   *rand.Rand
	q     queue
	tasks []*task
	alive int // tasks started and not stopped (ECS desired status RUNNING)
	nrun  int // tasks RUNNING

	// metric period being collected
	cur          datapoint
	runningSince float64
	metricsFrom  float64 // a woken inactive queue publishes again from here

	// scaling state (service) and alarm state (dispatch)
	desired      int
	lastOut      float64
	lastOutStep  int
	idleStreak   int
	trackStreak  int
	backlogAlarm bool

	invocations    int
	retries        int // failed attempts retried or dead-lettered
	lambdaSeconds  float64
	runTaskCalls   int
	schedulerFires int
	series         []sample
	aliveArea      float64
	aliveSince     float64
	peak           int
	horizon        float64
}

// Run simulates one architecture on one scenario. The same Config, scenario
// and seed give the same Result.
func Run(cfg Config, sc Scenario) (Result, error) {
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams()
	}
	if cfg.Job == (JobModel{}) {
		cfg.Job = DefaultJob
	}
	if cfg.Start.IsZero() {
		cfg.Start = Start
	}
	if err := cfg.Params.validate(); err != nil {
		return Result{}, err
	}
	if cfg.Job.Median <= 0 || cfg.Job.Sigma < 0 {
		return Result{}, fmt.Errorf("job duration: median must be > 0 and sigma ≥ 0, got %g and %g", cfg.Job.Median, cfg.Job.Sigma)
	}
	if cfg.Job.Failures < 0 || cfg.Job.Failures >= 1 || math.IsNaN(cfg.Job.Failures) {
		return Result{}, fmt.Errorf("job failures: the share of failed attempts must be from 0 to below 1, got %g", cfg.Job.Failures)
	}
	if err := cfg.Settings.Validate(); err != nil {
		return Result{}, err
	}
	switch cfg.Arch {
	case OneOff, AlarmService, AlarmDispatch, Cron:
	default:
		return Result{}, fmt.Errorf("unknown architecture %q: want oneoff, alarm-service, alarm-dispatch or cron", cfg.Arch)
	}
	if sc.Horizon <= 0 {
		return Result{}, errors.New("scenario " + sc.Name + ": no horizon")
	}
	r := &run{cfg: cfg, s: cfg.Settings, p: cfg.Params, horizon: sc.Horizon}
	// Arrivals depend on the seed and the scenario only, so the four
	// architectures see the same uploads; everything else draws from a
	// stream of its own.
	uploads := sc.uploads(rand.New(rand.NewPCG(cfg.Seed, hash(sc.Name))), cfg.Job)
	r.rng = rand.New(rand.NewPCG(cfg.Seed, hash(sc.Name+"/"+string(cfg.Arch))))
	// The pattern repeats, so the queue starts as the previous horizon left
	// it: last used at its last upload (then, if that was more than
	// Params.ColdQueueAfter before the first, the first message wakes an
	// inactive queue whose metrics resume late).
	r.q.lastCall = -r.p.ColdQueueAfter - 1
	if len(uploads) > 0 {
		r.q.lastCall = uploads[len(uploads)-1].At + r.p.EventDelay - sc.Horizon
	}
	for _, u := range uploads {
		m := &message{upload: u.At, start: -1, done: -1, job: u.Job, taskDelay: u.TaskDelay}
		r.q.msgs = append(r.q.msgs, m)
		r.clock.at(u.At+r.p.EventDelay, func() { r.deliver(m) })
	}
	if err := r.startArch(sc); err != nil {
		return Result{}, err
	}
	r.cur = datapoint{end: r.p.MetricPeriod}
	r.clock.at(r.p.MetricPeriod, r.closePeriod)
	r.clock.at(0, r.sample)

	limit := sc.Horizon + float64(r.s.QueueRetentionDays)*day + day
	for r.clock.step(limit) {
		if r.clock.now >= sc.Horizon && r.finished() {
			break
		}
	}
	return r.result(sc), nil
}

func hash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// finished: every message done or lost, and no task left.
func (r *run) finished() bool {
	if r.alive > 0 {
		return false
	}
	for _, m := range r.q.msgs {
		if m.done < 0 && !m.lost && !m.dead {
			return false
		}
	}
	return true
}

// startArch wires the architecture's launcher.
func (r *run) startArch(sc Scenario) error {
	if r.cfg.Arch != Cron {
		return nil
	}
	sched, err := schedexpr.ParseIn(r.s.Schedule, r.s.ScheduleTimeZone)
	if err != nil {
		return err
	}
	origin := r.cfg.Start
	end := origin.Add(time.Duration((sc.Horizon + float64(r.s.QueueRetentionDays)*day + day) * float64(time.Second)))
	after := origin.Add(-time.Nanosecond)
	for {
		next, ok := sched.Next(after)
		if !ok || !next.Before(end) {
			return nil
		}
		after = next
		at := next.Sub(origin).Seconds() + r.rng.Float64()*r.p.SchedulerWindow
		r.clock.at(at, func() {
			if r.clock.now < r.horizon {
				r.schedulerFires++
			}
			r.runTasks(1)
		})
	}
}

// deliver is EventBridge's delivery of an upload: the message to the queue
// and, for EdpOneOff, a RunTask of one drain task.
func (r *run) deliver(m *message) {
	now := r.clock.now
	if now-r.q.lastCall > r.p.ColdQueueAfter {
		r.metricsFrom = now + r.rng.Float64()*r.p.ColdMetricDelayMax
	}
	r.q.lastCall = now
	r.q.requests++
	m.queued = now
	r.q.visible = append(r.q.visible, m)
	r.touchPeriod()
	r.wakePollers()
	if r.cfg.Arch == OneOff {
		d := m.taskDelay
		if d == 0 {
			d = r.p.RuleTaskDelay
		}
		if d > 0 {
			r.clock.after(d, func() { r.runTasks(1) })
		} else {
			r.runTasks(1)
		}
	}
}

// wakePollers answers the waiting long polls while messages are visible.
func (r *run) wakePollers() {
	for r.q.visibleCount() > 0 && len(r.q.pollers) > 0 {
		t := r.q.pollers[0]
		r.q.pollers = r.q.pollers[1:]
		t.polling = false
		t.pollGen++
		r.poll(t)
	}
}

// runTasks starts n drain tasks with ceil(n / per call) RunTask calls.
func (r *run) runTasks(n int) {
	if n <= 0 {
		return
	}
	per := int(r.p.RunTaskPerCall)
	r.runTaskCalls += (n + per - 1) / per
	for range n {
		r.startTask(true)
	}
}

func (r *run) startTask(drain bool) *task {
	t := &task{id: len(r.tasks), drain: drain, requested: r.clock.now, countAlive: true}
	r.tasks = append(r.tasks, t)
	r.setAlive(r.alive + 1)
	d := math.Min(lognormalP50P90(r.rng, r.p.TaskStartP50, r.p.TaskStartP90), r.p.TaskStartMax)
	r.clock.after(d, func() { r.running(t) })
	return t
}

func (r *run) setAlive(n int) {
	now := r.clock.now
	r.aliveArea += float64(r.alive) * (now - r.aliveSince)
	r.aliveSince = now
	r.alive = n
	r.peak = max(r.peak, n)
}

func (r *run) setRunning(n int) {
	now := r.clock.now
	r.cur.runningArea += float64(r.nrun) * (now - r.runningSince)
	r.runningSince = now
	r.nrun = n
	if n > 0 {
		r.cur.hadRunning = true
	}
}

// running: the task reached RUNNING; the consumer starts polling.
func (r *run) running(t *task) {
	if t.state != taskPending {
		return // stopped while pending
	}
	t.state = taskRunning
	r.setRunning(r.nrun + 1)
	if t.stopping {
		r.stop(t)
		return
	}
	if r.cfg.Arch == Cron && t.drain {
		// The drain's task cap: other tasks of the family already
		// running (ECS desired status RUNNING, pending ones included).
		if r.alive-1 >= r.s.MaxTasks {
			t.skipped = true
			r.stop(t)
			return
		}
	}
	r.poll(t)
}

// poll is the consumer's receive loop: receive for free workers only;
// long-poll when nothing is visible.
func (r *run) poll(t *task) {
	if t.state != taskRunning || t.polling {
		return
	}
	if t.stopping {
		if t.busy == 0 {
			r.stop(t)
		}
		return
	}
	free := r.s.JobConcurrency - t.busy
	if free <= 0 {
		return
	}
	now := r.clock.now
	if r.q.visibleCount() > 0 {
		r.q.requests++
		r.q.lastCall = now
		for n := 0; n < min(free, 10) && r.q.visibleCount() > 0; {
			m := r.q.popVisible()
			if now > m.queued+float64(r.s.QueueRetentionDays)*day {
				m.lost = true
				continue
			}
			n++
			r.receive(t, m)
		}
		r.touchPeriod()
		if t.busy < r.s.JobConcurrency && r.q.visibleCount() == 0 {
			r.longPoll(t)
		}
		return
	}
	r.longPoll(t)
}

func (r *run) longPoll(t *task) {
	t.polling = true
	t.pollGen++
	gen := t.pollGen
	t.pollEnd = r.clock.now + r.p.LongPoll
	r.q.pollers = append(r.q.pollers, t)
	r.clock.at(t.pollEnd, func() { r.pollTimeout(t, gen) })
}

func (r *run) pollTimeout(t *task, gen int) {
	if gen != t.pollGen || !t.polling {
		return
	}
	t.polling = false
	r.q.removePoller(t)
	r.q.requests++
	r.q.lastCall = r.clock.now
	t.empties++
	if t.stopping {
		if t.busy == 0 {
			r.stop(t)
		}
		return
	}
	// Drain: after edp:emptyReceives empty receives, the consumer checks
	// the queue's counts (two GetQueueAttributes) and exits when nothing
	// is visible or in flight anywhere.
	if t.drain && t.empties >= r.s.EmptyReceives && t.busy == 0 {
		r.q.requests += 2
		if r.q.visibleCount() == 0 && r.q.inflight == 0 {
			r.stop(t)
			return
		}
	}
	r.poll(t)
}

func (r *run) receive(t *task, m *message) {
	now := r.clock.now
	if m.start < 0 {
		m.start = now
	}
	m.receives++
	r.q.inflight++
	if t.busy == 0 {
		t.busySince = now
	}
	t.busy++
	t.empties = 0
	r.clock.after(m.job, func() { r.jobDone(t, m) })
}

func (r *run) jobDone(t *task, m *message) {
	now := r.clock.now
	r.q.requests++ // DeleteMessage (batched in the consumer: an upper bound) or ChangeMessageVisibility
	if r.cfg.Job.Failures > 0 && r.rng.Float64() < r.cfg.Job.Failures {
		r.retryLater(m)
	} else {
		m.done = now
		r.q.inflight--
	}
	t.busy--
	t.processed++
	if t.busy == 0 {
		t.busyTime += now - t.busySince
	}
	r.touchPeriod()
	r.poll(t)
}

// retryLater hides a transiently failed message for the retry delay; it
// stays in flight until then. When it comes back after
// edp:maxReceiveCount receives, the redrive moves it to the DLQ instead
// (SQS does that at the next receive; here when it turns visible).
func (r *run) retryLater(m *message) {
	r.retries++
	delay := math.Min(r.p.RetryDelay*math.Pow(2, float64(m.receives-1)), float64(r.s.VisibilityTimeoutSeconds))
	r.clock.after(delay, func() {
		r.q.inflight--
		if m.receives >= r.s.MaxReceiveCount {
			m.dead = true
			r.touchPeriod()
			return
		}
		r.q.visible = append(r.q.visible, m)
		r.touchPeriod()
		r.wakePollers()
	})
}

// stop ends a task now (billing ends here).
func (r *run) stop(t *task) {
	if t.state == taskStopped {
		return
	}
	if t.state == taskRunning {
		r.setRunning(r.nrun - 1)
	}
	if t.polling {
		t.polling = false
		t.pollGen++
		r.q.removePoller(t)
	}
	t.state = taskStopped
	t.stopped = r.clock.now
	if t.countAlive {
		t.countAlive = false
		r.setAlive(r.alive - 1)
	}
}

// scaleIn stops a service task: at once while pending or idle between
// polls; a polling task finishes its long poll (the consumer does not cut
// it at SIGTERM) within the stop timeout; a busy one finishes its job (it
// holds scale-in protection).
func (r *run) scaleIn(t *task) {
	if t.state == taskStopped || t.stopping {
		return
	}
	t.stopping = true
	if t.countAlive {
		t.countAlive = false
		r.setAlive(r.alive - 1)
	}
	switch {
	case t.state == taskPending:
		r.stop(t)
	case t.polling:
		end := math.Min(t.pollEnd, r.clock.now+r.p.StopTimeout)
		gen := t.pollGen
		r.clock.at(end, func() {
			if t.pollGen == gen && t.state != taskStopped {
				r.q.requests++
				r.stop(t)
			}
		})
	case t.busy == 0:
		r.stop(t)
	}
}

// touchPeriod folds the queue's current counts into the period's maxima.
func (r *run) touchPeriod() {
	r.cur.visible = max(r.cur.visible, r.q.visibleCount())
	r.cur.inflight = max(r.cur.inflight, r.q.inflight)
}

// closePeriod ends a metric period: its datapoint is evaluated by the
// alarms MetricDelay later.
func (r *run) closePeriod() {
	now := r.clock.now
	r.setRunning(r.nrun)
	dp := r.cur
	dp.end = now
	dp.length = r.p.MetricPeriod
	dp.desired = r.desired
	// SQS deletes what outlived the retention (the oldest are at the head).
	for m := r.q.oldestVisible(); m != nil && now > m.queued+float64(r.s.QueueRetentionDays)*day; m = r.q.oldestVisible() {
		r.q.popVisible().lost = true
	}
	if m := r.q.oldestVisible(); m != nil {
		dp.age = now - m.queued
	}
	dp.running = math.NaN()
	if dp.hadRunning {
		dp.running = dp.runningArea / dp.length
	}
	dp.missing = now-r.q.lastCall > r.p.ColdQueueAfter || now-dp.length < r.metricsFrom
	r.cur = datapoint{visible: r.q.visibleCount(), inflight: r.q.inflight, hadRunning: r.nrun > 0}
	r.clock.after(r.p.MetricDelay, func() { r.evaluate(dp) })
	r.clock.after(r.p.MetricPeriod, r.closePeriod)
}

func (r *run) sample() {
	r.series = append(r.series, sample{t: r.clock.now, depth: r.q.visibleCount() + r.q.inflight, running: r.alive})
	r.clock.after(minute, r.sample)
}

// backlog is the metric math of stacks/alarms.go's BacklogExpression:
// MAX([visible, IF(age >= maxWait AND visible > 0, N, 0)]).
func (r *run) backlog(dp datapoint) float64 {
	v := float64(dp.visible)
	if dp.age >= float64(r.s.MaxWaitMinutes)*minute && dp.visible > 0 {
		v = math.Max(v, float64(r.s.ScaleOutThreshold))
	}
	return v
}

// evaluate runs the alarms of the architecture on one datapoint.
func (r *run) evaluate(dp datapoint) {
	switch r.cfg.Arch {
	case AlarmService:
		r.evaluateService(dp)
	case AlarmDispatch:
		r.evaluateDispatch(dp)
	}
}

// evaluateService: the backlog alarm (step scaling, repeated every
// evaluation while in ALARM), in backlog mode gated on the desired count
// (WakeExpression) and joined by target tracking on backlog per task; the
// idle alarm scales to zero.
func (r *run) evaluateService(dp datapoint) {
	n := float64(r.s.ScaleOutThreshold)
	if !dp.missing {
		v := r.backlog(dp)
		if r.s.ScalingMode == settings.ScalingBacklog && dp.desired > 0 {
			v = 0 // IF(FILL(desired, 0) > 0, 0, backlog)
		}
		if v >= n {
			step := 4
			switch {
			case v-n < n:
				step = 1
			case v-n < 4*n:
				step = 2
			}
			r.scaleOut(r.desired + step)
		}
	}
	if r.s.ScalingMode == settings.ScalingBacklog {
		// visible / IF(running > 0, running, 1); no data without a
		// running task (Container Insights), which resets the streak.
		if dp.missing || math.IsNaN(dp.running) {
			r.trackStreak = 0
		} else {
			per := float64(dp.visible) / math.Max(dp.running, 1)
			if dp.running <= 0 {
				per = float64(dp.visible)
			}
			if per > float64(r.s.BacklogPerTask) {
				r.trackStreak++
			} else {
				r.trackStreak = 0
			}
			if r.trackStreak >= int(r.p.TrackingDatapoints) {
				want := int(math.Ceil(float64(max(r.desired, 1)) * per / float64(r.s.BacklogPerTask)))
				if want > r.desired {
					r.scaleOut(want)
				}
			}
		}
	}
	// FILL(visible, 0) + FILL(inflight, 0) <= 0 for edp:scaleInIdleMinutes
	// periods; missing data is breaching.
	if dp.missing || dp.visible+dp.inflight == 0 {
		r.idleStreak++
	} else {
		r.idleStreak = 0
	}
	if r.idleStreak >= r.s.ScaleInIdleMinutes && r.desired > 0 {
		r.desired = 0
		r.reconcile()
	}
}

// scaleOut raises the desired count to want (capped at edp:maxTasks).
// Within the cooldown, capacity added by the previous scale-out counts
// toward this one.
func (r *run) scaleOut(want int) {
	now := r.clock.now
	add := want - r.desired
	if r.lastOut > 0 && now-r.lastOut < r.p.ScaleOutCooldown-1e-6 {
		add -= r.lastOutStep
	}
	if add <= 0 {
		return
	}
	next := min(r.s.MaxTasks, r.desired+add)
	if next == r.desired {
		return
	}
	r.lastOutStep = next - r.desired
	r.lastOut = now
	r.desired = next
	r.reconcile()
}

// reconcile is the ECS service scheduler: start or stop tasks to match
// the desired count.
func (r *run) reconcile() {
	for r.alive < r.desired {
		r.startTask(false)
	}
	if r.alive > r.desired {
		for i := len(r.tasks) - 1; i >= 0 && r.alive > r.desired; i-- {
			if t := r.tasks[i]; t.countAlive {
				r.scaleIn(t)
			}
		}
	}
}

// evaluateDispatch: the backlog alarm gated on the function's invocations
// (DispatchExpression); SNS notifies on the change to ALARM only.
func (r *run) evaluateDispatch(dp datapoint) {
	breaching := false
	if !dp.missing && dp.invocations == 0 {
		breaching = r.backlog(dp) >= float64(r.s.ScaleOutThreshold)
	}
	if breaching && !r.backlogAlarm {
		r.clock.after(r.p.LambdaDelivery, r.dispatch)
	}
	r.backlogAlarm = breaching
}

// dispatch is one invocation of lambdas/alarm-dispatch: it tops the
// running tasks up to min(max tasks, ceil(backlog / messages per task)),
// backlog = visible + in flight, running = tasks not stopped.
func (r *run) dispatch() {
	r.invocations++
	r.cur.invocations++
	r.lambdaSeconds += r.p.LambdaColdStart + r.p.LambdaHandler
	r.clock.after(r.p.LambdaColdStart, func() {
		r.q.requests++ // GetQueueAttributes
		r.q.lastCall = r.clock.now
		backlog := r.q.visibleCount() + r.q.inflight
		r.runTasks(TasksToStart(backlog, min(r.alive, r.s.MaxTasks), r.s.MaxTasks, r.s.MessagesPerTask))
	})
}

// TasksToStart is the dispatcher's formula:
// max(0, min(maxTasks, ceil(backlog / perTask)) − running).
func TasksToStart(backlog, running, maxTasks, perTask int) int {
	if backlog <= 0 || perTask <= 0 || maxTasks <= 0 {
		return 0
	}
	need := (backlog + perTask - 1) / perTask
	return max(min(maxTasks, need)-running, 0)
}
