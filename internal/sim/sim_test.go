package sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/schedexpr"
	"github.com/edp-pipelines/edp/internal/settings"
)

// fixedStart is a task start without spread, for hand-checked timelines.
func fixedStart(d float64) Params {
	p := DefaultParams()
	p.TaskStartP50, p.TaskStartP90 = d, d
	return p
}

// uploadsAt is a scenario of uploads at the given seconds, each job taking
// job seconds.
func uploadsAt(t *testing.T, job float64, at ...float64) Scenario {
	t.Helper()
	var csv strings.Builder
	csv.WriteString("seconds,job\n")
	for _, a := range at {
		csv.WriteString(num(a) + "," + num(job) + "\n")
	}
	sc, _, err := ParseArrivals("test.csv", strings.NewReader(csv.String()))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func mustRun(t *testing.T, cfg Config, sc Scenario) Result {
	t.Helper()
	if cfg.Settings.CPU == 0 { // unset: the defaults
		cfg.Settings = settings.Defaults()
	}
	r, err := Run(cfg, sc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func withSettings(change func(*settings.Settings)) settings.Settings {
	s := settings.Defaults()
	change(&s)
	return s
}

func TestSimDeterministic(t *testing.T) {
	t.Parallel()
	for _, sc := range Scenarios() {
		for _, a := range Archs() {
			cfg := Config{Arch: a, Settings: settings.Defaults(), Seed: 7}
			first, second := mustRun(t, cfg, sc), mustRun(t, cfg, sc)
			if !reflect.DeepEqual(first, second) {
				t.Errorf("%s on %s: two runs with seed 7 differ:\n%+v\n%+v", a, sc.Name, first, second)
			}
		}
	}
	// The seed matters (so the check above could fail).
	sc := Scenarios()[0]
	a := mustRun(t, Config{Arch: OneOff, Settings: settings.Defaults(), Seed: 1}, sc)
	b := mustRun(t, Config{Arch: OneOff, Settings: settings.Defaults(), Seed: 2}, sc)
	if a.Uploads == b.Uploads && a.TaskSeconds == b.TaskSeconds {
		t.Errorf("seeds 1 and 2 gave the same run: %d uploads, %g task-seconds", a.Uploads, a.TaskSeconds)
	}
}

func TestSimOneOffStartsATaskPerUpload(t *testing.T) {
	t.Parallel()
	// Uploads an hour apart: each starts its own task, which finds its
	// message as soon as it runs.
	sc := uploadsAt(t, 1, 0, hour, 2*hour, 3*hour, 4*hour)
	r := mustRun(t, Config{Arch: OneOff, Params: fixedStart(40)}, sc)
	if r.TasksStarted != 5 || r.RunTaskCalls != 5 || r.Done != 5 {
		t.Fatalf("tasks %d, RunTask calls %d, done %d; want 5 each", r.TasksStarted, r.RunTaskCalls, r.Done)
	}
	// upload → event (2 s) → RunTask → RUNNING (40 s) → receive.
	if want := 42.0; math.Abs(r.Start.P50-want) > 1e-6 || math.Abs(r.Start.P99-want) > 1e-6 {
		t.Errorf("upload → start %+v, want %g s for every upload", r.Start, want)
	}
	// The rule's RunTask 5 s after the queue delivery: each start is 5 s
	// later.
	p := fixedStart(40)
	p.RuleTaskDelay = 5
	if late := mustRun(t, Config{Arch: OneOff, Params: p}, sc); math.Abs(late.Start.P50-47) > 1e-6 {
		t.Errorf("ruleTaskDelay 5 s: upload → start %+v, want 47 s", late.Start)
	}
	// An upload's own delay wins over the parameter.
	own := uploadsAt(t, 1, 0)
	own.fixed[0].TaskDelay = 9
	if r := mustRun(t, Config{Arch: OneOff, Params: p}, own); math.Abs(r.Start.P50-51) > 1e-6 {
		t.Errorf("an upload's task delay of 9 s: upload → start %+v, want 51 s", r.Start)
	}
	// A task already polling takes a message as soon as it is queued, not
	// when the rule's own task starts: the second upload, 50 s after the
	// first, is received by the first upload's task (still draining) 2 s
	// after it lands (the event delay), the first one 47 s after.
	two := mustRun(t, Config{Arch: OneOff, Params: p}, uploadsAt(t, 1, 0, 50))
	if two.Start.P50 != 2 || two.Start.P90 != 47 {
		t.Errorf("upload → start %+v, want 2 s (the second upload) and 47 s (the first)", two.Start)
	}
	// A burst: still one task per upload, most of them with nothing to do.
	burst := mustRun(t, Config{Arch: OneOff}, uploadsAt(t, 1, make([]float64, 50)...))
	if burst.TasksStarted != 50 {
		t.Errorf("burst of 50: %d tasks started, want 50", burst.TasksStarted)
	}
	if !hasWarning(burst, "task storm") {
		t.Errorf("burst of 50: no task storm warning in %q", burst.Warnings)
	}
}

func TestSimAlarmServiceWaitsForNOrMaxWait(t *testing.T) {
	t.Parallel()
	s := settings.Defaults() // N = 10, max wait 15 min
	maxWait := float64(s.MaxWaitMinutes) * minute
	warm := fixedStart(40) // a queue whose metrics resume at once
	warm.ColdMetricDelayMax = 0
	// Below N: nothing starts before the max wait; then within a few
	// minutes (the period, the metric's delay, the task's start).
	below := mustRun(t, Config{Arch: AlarmService, Settings: s, Params: warm}, uploadsAt(t, 1, 0, 10, 20))
	if below.Start.P50 < maxWait || below.Start.P99 > maxWait+5*minute {
		t.Errorf("3 uploads (< N): start %+v, want between %s and %s", below.Start, Dur(maxWait), Dur(maxWait+5*minute))
	}
	for _, at := range below.taskStarts {
		if at < maxWait {
			t.Errorf("3 uploads (< N): a task started at %s, before the max wait", Dur(at))
		}
	}
	// N or more: scales out on the next periods, long before the max wait.
	at := make([]float64, 20)
	above := mustRun(t, Config{Arch: AlarmService, Settings: s, Params: warm}, uploadsAt(t, 1, at...))
	if above.Start.P99 > 5*minute {
		t.Errorf("20 uploads (≥ N): start %+v, want all within 5 min", above.Start)
	}
	// Either way the idle alarm takes it back to zero.
	if above.series[len(above.series)-1].running != 0 {
		t.Errorf("service still has tasks at the end: %+v", above.series[len(above.series)-1])
	}
	// A queue idle for more than 6 hours wakes with its metrics late.
	nightly := Scenarios()[2]
	cold := mustRun(t, Config{Arch: AlarmService, Settings: s, Seed: 1}, nightly)
	hot := mustRun(t, Config{Arch: AlarmService, Settings: s, Seed: 1, Params: warm}, nightly)
	if cold.Start.P50 <= hot.Start.P50 {
		t.Errorf("nightly: start p50 %s with late metrics, %s without; want later", Dur(cold.Start.P50), Dur(hot.Start.P50))
	}
	// Backlog mode reaches the same start below N (the wake alarm).
	backlog := withSettings(func(s *settings.Settings) { s.ScalingMode = settings.ScalingBacklog })
	b := mustRun(t, Config{Arch: AlarmService, Settings: backlog, Params: warm}, uploadsAt(t, 1, 0, 10, 20))
	if b.Start.P50 < maxWait || b.Done != 3 {
		t.Errorf("backlog mode, 3 uploads: start %+v, done %d", b.Start, b.Done)
	}
}

func TestSimDispatchTopsUpToTheFormula(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uploads, maxTasks, perTask, wantPeak int
	}{
		{250, 10, 100, 3},  // ceil(250 / 100)
		{1000, 5, 100, 5},  // capped at max tasks
		{40, 10, 100, 1},   // one task for a small backlog
		{1000, 10, 50, 10}, // 20 wanted, 10 allowed
	} {
		s := withSettings(func(s *settings.Settings) { s.MaxTasks, s.MessagesPerTask = tc.maxTasks, tc.perTask })
		r := mustRun(t, Config{Arch: AlarmDispatch, Settings: s}, uploadsAt(t, 5, make([]float64, tc.uploads)...))
		if r.PeakTasks != tc.wantPeak || r.Done != tc.uploads {
			t.Errorf("%d uploads, max %d, %d per task: peak %d tasks, done %d; want peak %d, all done",
				tc.uploads, tc.maxTasks, tc.perTask, r.PeakTasks, r.Done, tc.wantPeak)
		}
		if r.Invocations == 0 {
			t.Errorf("%d uploads: the dispatch function never ran", tc.uploads)
		}
	}
}

// TestSimTasksToStart mirrors lambdas/alarm-dispatch's tasksToStart.
func TestSimTasksToStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ backlog, running, max, per, want int }{
		{0, 0, 10, 100, 0},
		{1, 0, 10, 100, 1},
		{100, 0, 10, 100, 1},
		{101, 0, 10, 100, 2},
		{250, 1, 10, 100, 2},
		{5000, 3, 10, 100, 7},
		{5000, 12, 10, 100, 0},
		{10, 0, 10, 0, 0},
	} {
		if got := TasksToStart(tc.backlog, tc.running, tc.max, tc.per); got != tc.want {
			t.Errorf("TasksToStart(%d, %d, %d, %d) = %d, want %d", tc.backlog, tc.running, tc.max, tc.per, got, tc.want)
		}
	}
}

func TestSimCronRunsOnlyAtFireTimes(t *testing.T) {
	t.Parallel()
	s := withSettings(func(s *settings.Settings) { s.Schedule = "cron(0 */6 * * ? *)" })
	var at []float64
	for i := range 40 {
		at = append(at, float64(i)*37*minute)
	}
	r := mustRun(t, Config{Arch: Cron, Settings: s}, uploadsAt(t, 1, at...))
	if r.Done != len(at) || r.TasksStarted == 0 {
		t.Fatalf("done %d of %d, %d tasks", r.Done, len(at), r.TasksStarted)
	}
	sched, err := schedexpr.ParseIn(s.Schedule, s.ScheduleTimeZone)
	if err != nil {
		t.Fatal(err)
	}
	window := DefaultParams().SchedulerWindow
	for _, start := range r.taskStarts {
		// The latest fire at or before the task's start.
		ts := Start.Add(time.Duration(start * float64(time.Second)))
		fire, ok := sched.Next(ts.Add(-time.Duration(window*float64(time.Second)) - time.Nanosecond))
		if !ok || fire.After(ts) {
			t.Errorf("a task started at %s, not within %gs after a fire", ts.Format(time.RFC3339), window)
		}
	}
	if r.Fires != len(r.taskStarts) {
		t.Errorf("%d fires, %d tasks: want a task per fire", r.Fires, len(r.taskStarts))
	}
}

func TestSimRetention(t *testing.T) {
	t.Parallel()
	// The built-in scenarios lose nothing with the default settings.
	for _, sc := range Scenarios() {
		for _, a := range Archs() {
			r := mustRun(t, Config{Arch: a, Seed: 3}, sc)
			if r.Lost != 0 || r.Waiting != 0 || hasWarning(r, "lost work") {
				t.Errorf("%s on %s: lost %d, waiting %d, warnings %q", a, sc.Name, r.Lost, r.Waiting, r.Warnings)
			}
		}
	}
	// A weekly drain of a queue that keeps messages a day loses most of them.
	s := withSettings(func(s *settings.Settings) {
		s.Schedule, s.QueueRetentionDays = "cron(0 2 ? * SUN *)", 1
	})
	r := mustRun(t, Config{Arch: Cron, Settings: s}, Scenarios()[3])
	if r.Lost == 0 || !hasWarning(r, "lost work") {
		t.Errorf("weekly cron, 1-day retention: lost %d, warnings %q; want lost work", r.Lost, r.Warnings)
	}
}

func TestSimCostByHand(t *testing.T) {
	t.Parallel()
	// One upload at 0, job 1 s, one-off, task start 40 s, one empty
	// receive: event 2 s → RunTask at 2 → RUNNING at 42 → job 42–43 → one
	// empty 20 s poll → exits at 63. Billed 61 s; horizon 1 day → ×30.
	s := withSettings(func(s *settings.Settings) { s.EmptyReceives = 1 })
	r := mustRun(t, Config{Arch: OneOff, Settings: s, Params: fixedStart(40)}, uploadsAt(t, 1, 0))
	if r.TaskSeconds != 61 {
		t.Fatalf("task-seconds %g, want 61", r.TaskSeconds)
	}
	// SendMessage, the receive, DeleteMessage, the empty receive, the
	// drain's two GetQueueAttributes.
	if r.SQSRequests != 6 {
		t.Errorf("SQS requests %d, want 6", r.SQSRequests)
	}
	hours := 61.0 / 3600
	want := Cost{
		Fargate:  hours * (0.5*0.03238 + 1*0.00356) * 30, // 0.5 vCPU, 1 GB, arm64
		PublicIP: hours * 0.005 * 30,
		Alarms:   7 * 0.10, // 3 alert alarms + the stranded-work alarm's 4 metrics
		SQS:      6 * 0.40 / 1e6 * 30,
	}
	want.Total = want.Fargate + want.PublicIP + want.Alarms + want.SQS
	if !closeCost(r.Cost, want) {
		t.Errorf("cost %+v, want %+v", r.Cost, want)
	}
	// x86 and the minimum charge: a task is billed at least 60 s.
	p := fixedStart(5)
	x86 := withSettings(func(s *settings.Settings) { s.EmptyReceives, s.Architecture = 1, "x86_64" })
	short := mustRun(t, Config{Arch: OneOff, Settings: x86, Params: p}, uploadsAt(t, 1, 0))
	if short.TaskSeconds != 60 {
		t.Errorf("a 26 s task billed %g s, want the 60 s minimum", short.TaskSeconds)
	}
	if want := 60.0 / 3600 * (0.5*0.04048 + 1*0.004445) * 30; math.Abs(short.Cost.Fargate-want) > 1e-12 {
		t.Errorf("x86 Fargate %g, want %g", short.Cost.Fargate, want)
	}
}

func closeCost(a, b Cost) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		if math.Abs(va.Field(i).Float()-vb.Field(i).Float()) > 1e-12 {
			return false
		}
	}
	return true
}

func TestSimSVGWellFormed(t *testing.T) {
	t.Parallel()
	for _, a := range Archs() {
		r := mustRun(t, Config{Arch: a, Seed: 1}, Scenarios()[1])
		var b bytes.Buffer
		if err := WriteSVG(&b, r); err != nil {
			t.Fatal(err)
		}
		dec := xml.NewDecoder(&b)
		var root string
		lines := 0
		for {
			tok, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: SVG is not well-formed XML: %v", a, err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				if root == "" {
					root = se.Name.Local
				}
				if se.Name.Local == "polyline" {
					lines++
				}
			}
		}
		if root != "svg" || lines != 2 {
			t.Errorf("%s: root <%s>, %d polylines; want <svg> with 2", a, root, lines)
		}
		if b.Len() > 20000 {
			t.Errorf("%s: plot is %d bytes; keep it small", a, b.Len())
		}
	}
}

func TestSimLoadTimings(t *testing.T) {
	t.Parallel()
	p, err := LoadTimings(strings.NewReader(`{"taskStartP50": 25, "taskStartP90": 35, "metricPeriod": 10}`), DefaultParams())
	if err != nil {
		t.Fatal(err)
	}
	if p.TaskStartP50 != 25 || p.TaskStartP90 != 35 || p.MetricPeriod != 10 || p.LongPoll != 20 {
		t.Errorf("overrides not applied over the defaults: %+v", p)
	}
	_, err = LoadTimings(strings.NewReader(`{"taskStart": 25, "longPoll": 90}`), DefaultParams())
	for _, want := range []string{`unknown parameter "taskStart"`, "longPoll must be from 1 to 60 s, got 90"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to name %q", err, want)
		}
	}
	if !errors.Is(err, ErrTimings) {
		t.Errorf("error %v does not wrap ErrTimings", err)
	}
	if _, err := LoadTimings(strings.NewReader(`{"taskStartP90": 10}`), DefaultParams()); err == nil {
		t.Error("p90 below p50 accepted")
	}
}

func TestSimParameterTable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, in := range Parameters() {
		if in.Source == "" || in.What == "" || in.Unit == "" {
			t.Errorf("%s: missing source, description or unit", in.Key)
		}
		if in.Default < in.Min || in.Default > in.Max {
			t.Errorf("%s: default %g outside %g–%g", in.Key, in.Default, in.Min, in.Max)
		}
		if seen[in.Key] {
			t.Errorf("%s listed twice", in.Key)
		}
		seen[in.Key] = true
	}
	// Every field of Params is in the table (a new one cannot miss its source).
	if n := reflect.TypeOf(Params{}).NumField(); n != len(seen) {
		t.Errorf("Params has %d fields, the table %d", n, len(seen))
	}
}

func TestSimParseArrivals(t *testing.T) {
	t.Parallel()
	sc, start, err := ParseArrivals("a.csv", strings.NewReader("time,job\n2026-03-02T22:00:00Z,2.5\n\n2026-03-03T01:30:00Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !start.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) || len(sc.fixed) != 2 || sc.fixed[0].At != 22*hour || sc.fixed[0].Job != 2.5 || sc.Horizon != 2*day {
		t.Errorf("parsed %+v from %s, horizon %g", sc.fixed, start, sc.Horizon)
	}
	// A third column: the rule's RunTask delay of that upload.
	withDelay, _, err := ParseArrivals("c.csv", strings.NewReader("seconds,job,task_delay\n0,1,7.5\n60,,\n"))
	if err != nil || withDelay.fixed[0].TaskDelay != 7.5 || withDelay.fixed[1].TaskDelay != 0 {
		t.Errorf("task delays parsed %+v, %v; want 7.5 and none", withDelay.fixed, err)
	}
	for _, bad := range []string{"", "10\n2026-03-02T22:00:00Z\n", "10\nsoon\n", "10,-1\n", "10,1,-2\n", "10,1,later\n"} {
		if _, _, err := ParseArrivals("b.csv", strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSimRecommend(t *testing.T) {
	t.Parallel()
	s := settings.Defaults()
	rs := []Result{
		{Arch: OneOff, Scenario: "x", Finish: Pcts{P90: 60}, Cost: Cost{Total: 9}},
		{Arch: AlarmDispatch, Scenario: "x", Finish: Pcts{P90: 600}, Cost: Cost{Total: 1}},
		{Arch: Cron, Scenario: "x", Finish: Pcts{P90: 20 * hour}, Cost: Cost{Total: 0.5}},
	}
	rec := Recommend(s, rs)
	if rec.Pick != AlarmDispatch || rec.Fastest != OneOff || rec.Cheapest != Cron {
		t.Errorf("recommendation %+v: want dispatch picked, one-off fastest, cron cheapest", rec)
	}
	// A near tie in cost goes to the faster one.
	rs[0].Cost.Total = 1.05
	if rec := Recommend(s, rs); rec.Pick != OneOff {
		t.Errorf("one-off at $1.05 vs dispatch at $1: pick %s, want oneoff", rec.Pick)
	}
	rs[0].Cost.Total = 9
	rs[1].Lost = 1 // lost work disqualifies
	if rec := Recommend(s, rs); rec.Pick != OneOff {
		t.Errorf("with lost work the pick is %s, want oneoff", rec.Pick)
	}
}

func hasWarning(r Result, prefix string) bool {
	for _, w := range r.Warnings {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

func TestSimJobFailuresRetryThenDeadLetter(t *testing.T) {
	t.Parallel()
	// One upload whose every attempt fails: received at 42 s (event 2 s,
	// start 40 s), fails at 43 s, hidden 10 s; again at 53–54 s, hidden
	// 20 s; again at 74–75 s, hidden 40 s: the third failure, so at 115 s
	// the redrive takes it. The drain task waits while it is in flight,
	// then polls empty three times (20 s each) from its last poll at 75 s:
	// it stops at 135 s, 133 s after its RunTask.
	p := fixedStart(40)
	cfg := Config{Arch: OneOff, Params: p, Job: JobModel{Median: 1, Failures: 0.999999}}
	r := mustRun(t, cfg, uploadsAt(t, 1, 0))
	if r.DeadLettered != 1 || r.FailedAttempts != 3 || r.Done != 0 || r.Waiting != 0 {
		t.Fatalf("dead-lettered %d, failed attempts %d, done %d, waiting %d; want 1, 3, 0, 0", r.DeadLettered, r.FailedAttempts, r.Done, r.Waiting)
	}
	if math.Abs(r.TaskSeconds-133) > 1e-6 {
		t.Errorf("task-seconds %g, want 133 (the drain waits for the hidden message)", r.TaskSeconds)
	}
	if !hasWarning(r, "dead letters") {
		t.Errorf("no dead-letter warning in %q", r.Warnings)
	}
	// The retry delay is capped at the visibility timeout: with 30 s and a
	// 25 s delay the hides are 25, 30, 30 s.
	cfg.Settings = withSettings(func(s *settings.Settings) { s.VisibilityTimeoutSeconds = 30 })
	cfg.Params.RetryDelay = 25
	capped := mustRun(t, cfg, uploadsAt(t, 1, 0))
	// attempts 42–43, 68–69, 99–100, dead at 130; polls 100–120–140–160.
	if math.Abs(capped.TaskSeconds-158) > 1e-6 {
		t.Errorf("capped retry delay: task-seconds %g, want 158", capped.TaskSeconds)
	}

	// Half the attempts failing, 3 receives at most: about 1/8 of the
	// messages end in the DLQ and 7/8 of an attempt per message fails.
	many := make([]float64, 2000)
	for i := range many {
		many[i] = float64(i) * 30
	}
	half := mustRun(t, Config{Arch: AlarmService, Job: JobModel{Median: 1, Failures: 0.5}, Seed: 3}, uploadsAt(t, 1, many...))
	if half.DeadLettered < 200 || half.DeadLettered > 300 {
		t.Errorf("dead-lettered %d of 2000, want about 250", half.DeadLettered)
	}
	if half.FailedAttempts < 1600 || half.FailedAttempts > 1900 {
		t.Errorf("failed attempts %d for 2000 messages, want about 1750", half.FailedAttempts)
	}
	if half.Done+half.DeadLettered != 2000 {
		t.Errorf("done %d + dead-lettered %d, want every one of 2000 messages", half.Done, half.DeadLettered)
	}
	if _, err := Run(Config{Arch: OneOff, Settings: settings.Defaults(), Job: JobModel{Median: 1, Failures: 1}}, uploadsAt(t, 1, 0)); err == nil {
		t.Error("failures 1 (every attempt) accepted")
	}
}

func TestSimCalibrationAddsSamplesAndLoadTimingsReadsIt(t *testing.T) {
	t.Parallel()
	// A hand-written timings file with a note: kept, note skipped.
	c, err := ReadCalibration(strings.NewReader(`{"_note": "measured in eu-west-1", "metricDelay": 90}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []float64{30, 50, 40, 200} {
		c.Add(SampleTaskStart, s)
	}
	c.Add(SampleEventDelay, 3)
	var b strings.Builder
	if err := c.Write(&b); err != nil {
		t.Fatal(err)
	}
	// Read back, one more sample: the figures come from all five.
	again, err := ReadCalibration(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("read back %s: %v", b.String(), err)
	}
	again.Add(SampleTaskStart, 45)
	if again.Samples(SampleTaskStart) != 5 {
		t.Fatalf("%d task starts after read back and one more, want 5", again.Samples(SampleTaskStart))
	}
	b.Reset()
	if err := again.Write(&b); err != nil {
		t.Fatal(err)
	}
	p, err := LoadTimings(strings.NewReader(b.String()), DefaultParams())
	if err != nil {
		t.Fatalf("LoadTimings of a calibration file:\n%s\n%v", b.String(), err)
	}
	// Nearest rank of 30 40 45 50 200: p50 45, p90 200; the default max
	// (180) raised to 200.
	if p.TaskStartP50 != 45 || p.TaskStartP90 != 200 || p.TaskStartMax != 200 {
		t.Errorf("task start p50 %g p90 %g max %g, want 45, 200, 200", p.TaskStartP50, p.TaskStartP90, p.TaskStartMax)
	}
	if p.EventDelay != 3 || p.MetricDelay != 90 {
		t.Errorf("eventDelay %g, metricDelay %g: want the sample 3 and the hand-set 90", p.EventDelay, p.MetricDelay)
	}
	for _, bad := range []string{`{"_samples": {"coffee": [1]}}`, `{"taskStartP50": "fast"}`, `[1]`} {
		if _, err := ReadCalibration(strings.NewReader(bad)); err == nil {
			t.Errorf("ReadCalibration(%s): no error", bad)
		}
	}
	if _, err := LoadTimings(strings.NewReader(`{"taskStartP50": "fast"}`), DefaultParams()); err == nil || !strings.Contains(err.Error(), "taskStartP50") {
		t.Errorf("LoadTimings of a string value: %v, want an error naming the key", err)
	}
}
