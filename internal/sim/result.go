package sim

import (
	"fmt"
	"math"
	"slices"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Result is what one run predicts.
type Result struct {
	Arch     Arch   `json:"arch"`
	Scenario string `json:"scenario"`
	Uploads  int    `json:"uploads"`
	Done     int    `json:"done"`
	Lost     int    `json:"lost"`    // deleted by the queue's retention before a task received them
	Waiting  int    `json:"waiting"` // neither done nor lost when the run ended
	// DeadLettered were moved to the DLQ after edp:maxReceiveCount failed
	// attempts; FailedAttempts counts every failed attempt (JobModel.Failures).
	DeadLettered   int     `json:"deadLettered"`
	FailedAttempts int     `json:"failedAttempts"`
	Start          Pcts    `json:"start"`   // upload → first receive, s
	Finish         Pcts    `json:"finish"`  // upload → job done, s
	MaxWait        float64 `json:"maxWait"` // longest upload → first receive, s

	TasksStarted int      `json:"tasksStarted"`
	EmptyTasks   int      `json:"emptyTasks"` // tasks that processed no message (cron's capped skips excluded)
	Skipped      int      `json:"skipped"`    // cron drains that found the task cap reached
	PeakTasks    int      `json:"peakTasks"`
	MeanTasks    float64  `json:"meanTasks"`   // task-seconds / horizon
	TaskSeconds  float64  `json:"taskSeconds"` // billed: per task at least Params.FargateMinBilled
	BusySeconds  float64  `json:"busySeconds"` // task-seconds with a job running
	Invocations  int      `json:"lambdaInvocations"`
	RunTaskCalls int      `json:"runTaskCalls"`
	Fires        int      `json:"schedulerFires"`
	SQSRequests  int      `json:"sqsRequests"`
	HorizonHours float64  `json:"horizonHours"`
	Cost         Cost     `json:"monthlyCost"`
	Warnings     []string `json:"warnings"`

	series     []sample
	taskStarts []float64 // each task's RunTask, s (tests)
}

// Pcts are percentiles in seconds.
type Pcts struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
}

// Cost is an estimated month (30 days) of the scenario repeating, in US
// dollars at the list prices of Params (PriceDate), before free tiers.
type Cost struct {
	Fargate   float64 `json:"fargate"`
	PublicIP  float64 `json:"publicIPv4"`
	Lambda    float64 `json:"lambda"`
	Alarms    float64 `json:"alarms"`
	Scheduler float64 `json:"scheduler"`
	SQS       float64 `json:"sqs"`
	Total     float64 `json:"total"`
}

// Warning thresholds.
const (
	stormMinTasks = 10   // a task storm needs at least this many tasks started…
	stormEmpty    = 0.25 // …of which at least this share processed nothing
	idleShare     = 0.5  // idle tasks: more than this share of task-seconds without a job…
	idleMin       = hour // …and at least this many idle task-seconds
)

func (r *run) result(sc Scenario) Result {
	// Close the books: messages still waiting past the retention are lost.
	end := r.clock.now
	retention := float64(r.s.QueueRetentionDays) * day
	res := Result{Arch: r.cfg.Arch, Scenario: sc.Name, Uploads: len(r.q.msgs), HorizonHours: sc.Horizon / hour, series: r.series}
	var starts, finishes []float64
	for _, m := range r.q.msgs {
		switch {
		case m.done >= 0:
			res.Done++
			starts = append(starts, m.start-m.upload)
			finishes = append(finishes, m.done-m.upload)
			res.MaxWait = math.Max(res.MaxWait, m.start-m.upload)
		case m.dead:
			res.DeadLettered++
		case m.lost || (m.start < 0 && m.queued > 0 && end > m.queued+retention):
			res.Lost++
		default:
			res.Waiting++
		}
	}
	res.Start, res.Finish = percentiles(starts), percentiles(finishes)
	for _, t := range r.tasks {
		stop := t.stopped
		if t.state != taskStopped {
			stop = end
		}
		res.TasksStarted++
		res.taskStarts = append(res.taskStarts, t.requested)
		res.TaskSeconds += math.Max(stop-t.requested, r.p.FargateMinBilled)
		res.BusySeconds += t.busyTime
		switch {
		case t.skipped:
			res.Skipped++
		case t.processed == 0:
			res.EmptyTasks++
		}
	}
	r.setAlive(r.alive)
	res.PeakTasks = r.peak
	res.MeanTasks = res.TaskSeconds / sc.Horizon
	res.Invocations = r.invocations
	res.RunTaskCalls = r.runTaskCalls
	res.Fires = r.schedulerFires
	res.SQSRequests = r.q.requests
	res.FailedAttempts = r.retries
	res.Cost = costOf(r.p, r.s, r.cfg.Arch, res, r.lambdaSeconds, sc.Horizon)
	res.Warnings = warnings(res, r.s)
	return res
}

// percentiles by nearest rank.
func percentiles(v []float64) Pcts {
	if len(v) == 0 {
		return Pcts{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Pcts{P50: at(0.50), P90: at(0.90), P99: at(0.99)}
}

// AlarmMetrics is the number of metrics the architecture's alarms read
// (CloudWatch bills alarms per metric): every stack's three alert alarms
// (dead letters, undelivered events, queue near retention: one metric
// each), plus EdpOneOff's stranded-work alarm (4: visible, age, in flight,
// the retry rule's invocations), EdpAlarmService's backlog (2; 3 gated on
// the desired count in backlog mode) and idle (2) alarms and, in backlog
// mode, the target-tracking alarm AWS creates (2: visible, running),
// EdpAlarmDispatch's backlog alarm (3: visible, age, invocations) and its
// dispatch-failures alarm (1). EdpCron has only the alert alarms.
func AlarmMetrics(a Arch, s settings.Settings) int {
	const alerts = 3
	switch a {
	case OneOff:
		return alerts + 4
	case AlarmService:
		if s.ScalingMode == settings.ScalingBacklog {
			return alerts + 3 + 2 + 2
		}
		return alerts + 2 + 2
	case AlarmDispatch:
		return alerts + 3 + 1
	}
	return alerts
}

// costOf scales what the run used over its horizon to a 30-day month.
func costOf(p Params, s settings.Settings, a Arch, res Result, lambdaSeconds, horizon float64) Cost {
	scale := month / horizon
	vcpu, gb := float64(s.CPU)/1024, float64(s.MemoryMiB)/1024
	pv, pg := p.PriceVCPUHourARM, p.PriceGBHourARM
	if s.Architecture == "x86_64" {
		pv, pg = p.PriceVCPUHourX86, p.PriceGBHourX86
	}
	hours := res.TaskSeconds / hour
	c := Cost{
		Fargate:   hours * (vcpu*pv + gb*pg) * scale,
		Lambda:    (float64(res.Invocations)*p.PriceLambdaMillion/1e6 + lambdaSeconds*p.LambdaMemoryMB/1024*p.PriceLambdaGBSecond) * scale,
		Alarms:    float64(AlarmMetrics(a, s)) * p.PriceAlarmMetricMonth,
		Scheduler: float64(res.Fires) * p.PriceSchedulerMillion / 1e6 * scale,
		SQS:       float64(res.SQSRequests) * p.PriceSQSMillion / 1e6 * scale,
	}
	if s.Network == settings.NetworkPublic || s.Network == settings.NetworkDefault {
		c.PublicIP = hours * p.PricePublicIPv4Hour * scale
	}
	c.Total = c.Fargate + c.PublicIP + c.Lambda + c.Alarms + c.Scheduler + c.SQS
	return c
}

func warnings(res Result, s settings.Settings) []string {
	var w []string
	if res.Lost > 0 {
		w = append(w, fmt.Sprintf("lost work: %d of %d messages waited longer than the retention (edp:queueRetentionDays=%d) and were deleted unprocessed",
			res.Lost, res.Uploads, s.QueueRetentionDays))
	}
	if res.DeadLettered > 0 {
		w = append(w, fmt.Sprintf("dead letters: %d of %d messages failed %d times (edp:maxReceiveCount) and went to the DLQ; %d attempts failed in all",
			res.DeadLettered, res.Uploads, s.MaxReceiveCount, res.FailedAttempts))
	}
	if res.Waiting > 0 {
		w = append(w, fmt.Sprintf("unfinished: %d messages still waited when the simulation ended", res.Waiting))
	}
	if started := res.TasksStarted - res.Skipped; started >= stormMinTasks && float64(res.EmptyTasks) >= stormEmpty*float64(started) {
		w = append(w, fmt.Sprintf("task storm: %d tasks started for %d messages; %d of them processed none", started, res.Uploads, res.EmptyTasks))
	}
	if idle := res.TaskSeconds - res.BusySeconds; idle > idleShare*res.TaskSeconds && idle >= idleMin {
		w = append(w, fmt.Sprintf("idle tasks: %.0f%% of %.0f task-seconds had no job running",
			100*(res.TaskSeconds-res.BusySeconds)/res.TaskSeconds, res.TaskSeconds))
	}
	return w
}
