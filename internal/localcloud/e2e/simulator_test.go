package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/internal/sim"
)

// simTolerance is how far the simulator's prediction may be from what the
// local cloud did: upload → done median and 90th percentile within 20 % of
// the local cloud's, and the peak task count within 20 % of it, rounded
// down (exact below 5 tasks).
const simTolerance = 0.20

// simJobSeconds is how long each job of the scenarios sleeps (the contract
// job's "sleep" mode): 15 s of model time at the speed-up, long enough for
// the backlog to outlast an alarm period.
const simJobSeconds = 0.5

// simArch is one architecture and the scenarios it runs, in order, on one
// deployed stack.
type simArch struct {
	arch      sim.Arch
	stack     string
	scenarios []simScenario
}

// simScenario is one scenario: bursts of uploads at real offsets from the
// model's origin.
type simScenario struct {
	name   string
	bursts []burst
}

type burst struct {
	after time.Duration // from the origin
	n     int
}

// belowN is a trickle of 5 uploads (below N = 15) from 1 to 3 s after the
// origin (30 to 90 s of model time): only the max wait (5 minutes) starts
// work, at the evaluation of 360 s, with 30 s of margin either side.
var belowN = simScenario{"below-n", []burst{{time.Second, 1}, {1500 * time.Millisecond, 1}, {2 * time.Second, 1}, {2500 * time.Millisecond, 1}, {3 * time.Second, 1}}}

// simArchs: each architecture's scenarios drive what it is built on: the
// rule's RunTask per upload (a second burst while the first tasks still
// drain), step scaling through two alarm periods, the dispatch formula,
// the max wait below N, a drain per fire and the next fire's second task.
var simArchs = []simArch{
	{sim.OneOff, names.StackOneOff, []simScenario{{"two-bursts", []burst{{0, 6}, {2 * time.Second, 6}}}}},
	{sim.AlarmService, names.StackAlarmService, []simScenario{{"burst", []burst{{0, 40}}}, belowN}},
	{sim.AlarmDispatch, names.StackAlarmDispatch, []simScenario{{"burst", []burst{{0, 40}}}, belowN}},
	{sim.Cron, names.StackCron, []simScenario{{"before-a-fire", []burst{{0, 24}}}}},
}

// TestSimulatorPredictsLocalCloud checks `edp simulate`'s model against the
// local cloud: for each architecture it runs scenarios of uploads on the
// local cloud, measures the local cloud's own timings in each run (task
// start, the delay before a task or a message exists, the dispatch's
// latency, each job's duration), hands them to the simulator the way a
// team calibrates it (sim.LoadTimings of a timings file, sim.ParseArrivals
// of an upload CSV, the settings from cdk.json and the synth's context via
// settings.FromCDKJSON) together with what the local cloud compresses
// (the 60 s period of 2 s, the long poll of 1 s, the schedule's interval of
// 10 s, all at the speed-up of 30), and requires the predicted upload →
// done median and 90th percentile and the peak number of tasks to fall
// within simTolerance of what the local cloud did. Everything is compared
// in model time: real seconds × the speed-up.
func TestSimulatorPredictsLocalCloud(t *testing.T) {
	t.Parallel()
	for _, a := range simArchs {
		t.Run(string(a.arch), func(t *testing.T) {
			t.Parallel()
			s, _ := deployJob(t, a.stack, contractJob, nil)
			for _, sc := range a.scenarios {
				t.Run(sc.name, func(t *testing.T) {
					obs := s.runSimScenario(t, a.arch, sc)
					pred := predict(t, a.arch, obs)
					compare(t, obs, pred)
					if t.Failed() {
						obs.log(t)
					}
				})
			}
		})
	}
}

// observed is what one scenario did on the local cloud, in model seconds
// from origin.
type observed struct {
	origin     time.Time
	arrivals   []float64 // each upload, when S3 acknowledged it, model s from origin
	jobs       []float64 // each upload's job (the message's handling), model s
	done       []float64 // each upload → its job done, model s
	taskDelays []float64 // each upload → its rule's task created, model s (oneoff)
	starts     []float64 // each task's RunTask → consuming, model s
	timeline   []string  // each task: created, consuming, stopped, model s
	dispatch   float64   // median alarm period end → dispatched task, model s (alarm-dispatch)
	peakTasks  int
}

// runSimScenario prepares the stack, runs the scenario's uploads and reads
// what happened.
func (s *stack) runSimScenario(t *testing.T, arch sim.Arch, sc simScenario) observed {
	t.Helper()
	origin := s.simOrigin(t, arch)
	prefix := "configs/sim/" + sc.name + "/"
	var ups []upload
	for i, b := range sc.bursts {
		if wait := time.Until(origin.Add(b.after)); wait > 0 {
			time.Sleep(wait)
		}
		var objs []object
		for j := range b.n {
			body := fmt.Sprintf("mode: sleep\nseconds: %g\n", simJobSeconds)
			objs = append(objs, object{fmt.Sprintf("%sb%d-%02d.yaml", prefix, i, j), []byte(body)})
		}
		ups = append(ups, s.putAll(t, objs)...)
	}
	var want []expect
	for _, u := range ups {
		want = append(want, expect{u, runrecord.StatusSucceeded})
	}
	recs := s.waitSettled(t, prefix, want, 3*time.Minute)

	model := func(d time.Duration) float64 { return d.Seconds() * speedup }
	o := observed{origin: origin}
	handled := s.handled(t)
	for key := range handled {
		if !strings.HasPrefix(key, prefix) {
			delete(handled, key)
		}
	}
	// The tasks of the scenario: those alive after the origin.
	var tasks []ecsemu.TaskInfo
	for _, ti := range s.cloud.Tasks() {
		if ti.StoppedAt.IsZero() || ti.StoppedAt.After(origin) {
			tasks = append(tasks, ti)
		}
	}
	slices.SortFunc(tasks, func(a, b ecsemu.TaskInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	o.peakTasks = peakAlive(tasks)
	consuming := map[string]time.Time{}
	for _, ti := range tasks {
		line := fmt.Sprintf("task %.8s created %.1f", taskID(ti.Arn), model(ti.CreatedAt.Sub(origin)))
		if at, ok := s.consumingAt(t, ti.Arn); ok {
			consuming[taskID(ti.Arn)] = at
			o.starts = append(o.starts, model(at.Sub(ti.CreatedAt)))
			line += fmt.Sprintf(" consuming %.1f", model(at.Sub(origin)))
		}
		if !ti.StoppedAt.IsZero() {
			line += fmt.Sprintf(" stopped %.1f", model(ti.StoppedAt.Sub(origin)))
		}
		o.timeline = append(o.timeline, line)
	}
	gap := handled.gap(consuming)
	for _, u := range ups {
		if _, ok := recordOf(recs, u); !ok {
			t.Fatalf("no run record of %s", u.key)
		}
		h, ok := handled[u.key]
		if !ok {
			t.Fatalf("no task logged %s as started and done", u.key)
		}
		// An upload counts from S3's answer: moto has queued its event by
		// then, and the PUT's own latency on a loaded machine is not the
		// architecture's.
		o.arrivals = append(o.arrivals, model(u.done.Sub(origin)))
		// The job holds its task from the receive to the delete: the
		// consumer's "job started" to "job done", and the receive before
		// it (the consumer's gap before a message that was waiting).
		o.jobs = append(o.jobs, model(h.done.Sub(h.started)+gap))
		o.done = append(o.done, model(h.done.Sub(u.done)))
	}
	if len(o.starts) == 0 {
		t.Fatalf("no task of the scenario logged that it was consuming; tasks: %s", s.taskSummary())
	}
	if arch == sim.OneOff {
		// Each upload's event starts one task: the n-th task created
		// answers the n-th upload acknowledged. The local rule target
		// reads the events from a shadow queue and starts their tasks as
		// fast as the loaded emulator answers, so each upload has its own
		// delay.
		order := make([]int, len(ups))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return ups[a].done.Compare(ups[b].done) })
		o.taskDelays = make([]float64, len(ups))
		for n, i := range order {
			if n < len(tasks) {
				o.taskDelays[i] = max(0.001, model(tasks[n].CreatedAt.Sub(ups[i].done)))
			}
		}
	}
	if arch == sim.AlarmDispatch {
		// The first tasks answer the evaluation nearest before them: the
		// latency from it (under half a period here; an evaluation ends
		// a little after its tick, so a latency near 0 may come out
		// slightly negative, which is 0).
		_, period := s.cloud.AlarmPeriods()
		d := tasks[0].CreatedAt.Sub(origin)
		evaluated := time.Duration(math.Round(float64(d)/float64(period))) * period
		o.dispatch = model(max(0, d-evaluated))
	}
	return o
}

// simOrigin waits until the stack is in the state the simulation starts
// from and returns the real time that is the model's 0: a metric period's
// end (the alarm architectures), a schedule's fire (cron), or now
// (one-off).
func (s *stack) simOrigin(t *testing.T, arch sim.Arch) time.Time {
	t.Helper()
	switch arch {
	case sim.AlarmService:
		// The local ECS starts the new service at one task; the simulation
		// starts from none, as the idle alarm leaves it.
		waitFor(t, "the service scaled to zero", time.Minute, func() (bool, string, error) {
			alive := 0
			svc := ""
			for _, ti := range s.cloud.Tasks() {
				svc = ti.Service
				if ti.LastStatus != ecsemu.StatusStopped {
					alive++
				}
			}
			return svc != "" && alive == 0 && s.cloud.ECS().DesiredCount(svc) == 0, s.taskSummary() + s.alarmSummary(), nil
		})
		fallthrough
	case sim.AlarmDispatch:
		// No task left from an earlier scenario.
		waitFor(t, "no task running", time.Minute, func() (bool, string, error) {
			for _, ti := range s.cloud.Tasks() {
				if ti.LastStatus != ecsemu.StatusStopped {
					return false, s.taskSummary(), nil
				}
			}
			return true, "", nil
		})
		// Upload just after a period was evaluated: the model's periods end at
		// 60 s, 120 s, … from it.
		last, _ := s.cloud.AlarmPeriods()
		var origin time.Time
		waitFor(t, "a metric period ends", 30*time.Second, func() (bool, string, error) {
			origin, _ = s.cloud.AlarmPeriods()
			return !origin.IsZero() && origin.After(last), "no period ended", nil
		})
		return origin
	case sim.Cron:
		// No task left from the last fire, and the next one 4 to 7 s
		// away: the uploads wait for it. The model's schedule fires every
		// ScheduleInterval of real time from the origin.
		var next time.Time
		waitFor(t, "a quiet stretch before a fire", time.Minute, func() (bool, string, error) {
			for _, ti := range s.cloud.Tasks() {
				if ti.LastStatus != ecsemu.StatusStopped {
					return false, s.taskSummary(), nil
				}
			}
			for _, at := range s.cloud.NextScheduledRun() {
				next = at
			}
			left := time.Until(next)
			return left >= 4*time.Second && left <= 7*time.Second, fmt.Sprintf("next fire in %s", left), nil
		})
		return next.Add(-localcloud.ScheduleInterval)
	}
	return time.Now()
}

// handling is one message as a task's consumer logged it.
type handling struct {
	task          string
	started, done time.Time
}

// handledMessages are the messages the tasks handled, by S3 key (one
// attempt each in these scenarios).
type handledMessages map[string]handling

// handled reads every task's log for its "job started" and "job done"
// lines.
func (s *stack) handled(t *testing.T) handledMessages {
	t.Helper()
	out := handledMessages{}
	for _, id := range s.loggedTasks() {
		err := s.eachTaskLine(id, func(l logLine) bool {
			if l.Key == "" {
				return true
			}
			h := out[l.Key]
			h.task = id
			switch l.Msg {
			case "job started":
				h.started = l.Time
			case "job done":
				h.done = l.Time
			}
			out[l.Key] = h
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, h := range out {
		if h.started.IsZero() || h.done.IsZero() {
			delete(out, k)
		}
	}
	return out
}

// gap is the median time a task's consumer takes before a job when a
// message was waiting: from its "consuming" line (consuming, by task id)
// or its last "job done" to the next "job started", under 0.5 s (not a
// long poll).
func (h handledMessages) gap(consuming map[string]time.Time) time.Duration {
	byTask := map[string][]handling{}
	for _, m := range h {
		byTask[m.task] = append(byTask[m.task], m)
	}
	var gaps []float64
	for task, ms := range byTask {
		slices.SortFunc(ms, func(a, b handling) int { return a.started.Compare(b.started) })
		prev, ok := consuming[task]
		for _, m := range ms {
			if g := m.started.Sub(prev); ok && g >= 0 && g < 500*time.Millisecond {
				gaps = append(gaps, g.Seconds())
			}
			prev, ok = m.done, true
		}
	}
	return time.Duration(median(gaps) * float64(time.Second))
}

// consumingAt is when the task's consumer logged that it was consuming (its
// start-up checks passed and its first receive follows).
func (s *stack) consumingAt(t *testing.T, arn string) (time.Time, bool) {
	t.Helper()
	var at time.Time
	err := s.eachTaskLine(taskID(arn), func(l logLine) bool {
		if l.Msg == "consuming" {
			at = l.Time
			return false
		}
		return true
	})
	return at, err == nil && !at.IsZero()
}

// peakAlive is the most tasks alive at once (created and not yet stopped).
func peakAlive(tasks []ecsemu.TaskInfo) int {
	type edge struct {
		at time.Time
		d  int
	}
	var edges []edge
	for _, ti := range tasks {
		edges = append(edges, edge{ti.CreatedAt, +1})
		if !ti.StoppedAt.IsZero() {
			edges = append(edges, edge{ti.StoppedAt, -1})
		}
	}
	// A stop before a start at the same instant.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.d - b.d
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.d
		peak = max(peak, n)
	}
	return peak
}

// predict runs the simulator on what the local cloud measured, through the
// paths `edp simulate -timings FILE -arrivals FILE` takes.
func predict(t *testing.T, arch sim.Arch, o observed) sim.Result {
	t.Helper()
	p50, p90 := pct(o.starts, 0.5), pct(o.starts, 0.9)
	timings := map[string]float64{
		// Measured in this run.
		"taskStartP50": max(1, p50),
		"taskStartP90": max(1, p90),
		"taskStartMax": max(10, slices.Max(o.starts)),
		// The event is queued by the upload's answer (the arrivals).
		"eventDelay": 0,
		// What the local cloud compresses: a CloudWatch minute is 2 s,
		// evaluated when it ends, from the queue's counts then; every
		// queue publishes metrics; the consumer's long poll is 1 s; a
		// schedule fires on time.
		"metricPeriod":       60,
		"metricDelay":        0,
		"coldQueueAfter":     86400,
		"coldMetricDelayMax": 0,
		"schedulerWindow":    0,
		"longPoll":           float64(localcloud.LongPollSeconds(int(sim.DefaultParams().LongPoll), speedup)) * speedup,
		// The dispatch: alarm → SNS → the function → RunTask, measured as
		// one delay.
		"lambdaDelivery":  o.dispatch,
		"lambdaColdStart": 0,
		"lambdaHandler":   0.01,
	}
	raw, err := json.Marshal(timings)
	if err != nil {
		t.Fatal(err)
	}
	params, err := sim.LoadTimings(strings.NewReader(string(raw)), sim.DefaultParams())
	if err != nil {
		t.Fatalf("the local cloud's timings %s: %v", raw, err)
	}
	var csv strings.Builder
	csv.WriteString("seconds,job_seconds,task_delay_seconds\n")
	for i, at := range o.arrivals {
		fmt.Fprintf(&csv, "%.3f,%.3f", at, max(o.jobs[i], 0.001))
		if o.taskDelays != nil {
			fmt.Fprintf(&csv, ",%.3f", o.taskDelays[i])
		}
		csv.WriteString("\n")
	}
	sc, start, err := sim.ParseArrivals("local", strings.NewReader(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	overrides := map[string]string{"edp:jobDir": contractJobAbs(t)}
	for k, v := range testContext {
		overrides[k] = v
	}
	if arch == sim.Cron {
		// The local Scheduler fires every ScheduleInterval of real time.
		every := localcloud.ScheduleInterval.Seconds() * speedup / 60
		if every != math.Trunc(every) {
			t.Fatalf("the local schedule's interval is %g model minutes: the simulator's schedule needs whole minutes", every)
		}
		overrides["edp:schedule"] = fmt.Sprintf("cron(0/%d * * * ? *)", int(every))
	}
	st, err := settingsFor(overrides)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sim.Run(sim.Config{Arch: arch, Settings: st, Params: params, Seed: 1, Start: start}, sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("timings given to the simulator (model s): %s", raw)
	return res
}

// compare checks the prediction against the local cloud, logging both.
func compare(t *testing.T, o observed, pred sim.Result) {
	t.Helper()
	obsP50, obsP90 := pct(o.done, 0.5), pct(o.done, 0.9)
	t.Logf("upload → done, model s: local cloud p50 %.0f p90 %.0f; simulator p50 %.0f p90 %.0f", obsP50, obsP90, pred.Finish.P50, pred.Finish.P90)
	t.Logf("peak tasks: local cloud %d, simulator %d; tasks started by the simulator %d; task start p50 %.1f s p90 %.1f s; rule's task p50 %.1f s p90 %.1f s; dispatch %.1f s",
		o.peakTasks, pred.PeakTasks, pred.TasksStarted, pct(o.starts, 0.5), pct(o.starts, 0.9), pct(o.taskDelays, 0.5), pct(o.taskDelays, 0.9), o.dispatch)
	if pred.Done != len(o.done) {
		t.Errorf("the simulator finished %d of %d uploads", pred.Done, len(o.done))
	}
	within := func(what string, predicted, local float64) {
		if math.Abs(predicted-local) > simTolerance*local {
			t.Errorf("%s: simulator %.1f, local cloud %.1f: more than %.0f %% apart", what, predicted, local, simTolerance*100)
		}
	}
	within("upload → done median (model s)", pred.Finish.P50, obsP50)
	within("upload → done p90 (model s)", pred.Finish.P90, obsP90)
	if d := abs(pred.PeakTasks - o.peakTasks); d > int(simTolerance*float64(o.peakTasks)) {
		t.Errorf("peak tasks: simulator %d, local cloud %d: more than %.0f %% apart", pred.PeakTasks, o.peakTasks, simTolerance*100)
	}
}

// log writes what the local cloud did, for a failure's diagnosis: the
// uploads as the simulator's CSV and the tasks' timeline.
func (o observed) log(t *testing.T) {
	t.Helper()
	var b strings.Builder
	b.WriteString("uploads (model s: sent, job, upload → done):\n")
	for i := range o.arrivals {
		fmt.Fprintf(&b, "%.1f,%.1f,%.1f\n", o.arrivals[i], o.jobs[i], o.done[i])
	}
	b.WriteString(strings.Join(o.timeline, "\n"))
	t.Log(b.String())
}

func abs(n int) int { return max(n, -n) }

// pct is the q-quantile of v (nearest rank), 0 for none.
func pct(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median(v []float64) float64 { return pct(v, 0.5) }

// contractJobAbs is contractJob's absolute path, as jobAssembly gives it to
// the synth.
func contractJobAbs(t *testing.T) string {
	t.Helper()
	abs, err := filepath.Abs(contractJob)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// settingsFor reads the stacks' settings as the synth had them: the
// repository's cdk.json with the tests' context over it.
func settingsFor(overrides map[string]string) (settings.Settings, error) {
	return settings.FromCDKJSON(filepath.Join(repoRoot, "cdk.json"), overrides)
}
