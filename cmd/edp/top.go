package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"golang.org/x/term"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/schedexpr"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// Bounds of edp top.
const (
	// topRuns is how many recent runs a frame shows.
	topRuns = 8
	// topHistory is how many readings the sparklines keep.
	topHistory = 60
	// oldestEvery is how often top asks CloudWatch for the oldest
	// message's age: SQS publishes it once a minute.
	oldestEvery = time.Minute
)

func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("top", "top [-stack S] [-local] [-region R] [-work-dir DIR] [-interval D] [-plain]", stderr)
	interval := v.fs.Duration("interval", 2*time.Second, "refresh every `duration`")
	plain := v.fs.Bool("plain", false, "one plain line per refresh, no redrawing (the default when stdout is not a terminal)")
	if code, ok := v.parse(args, stderr, 0); !ok {
		return code
	}
	if *interval < 100*time.Millisecond {
		fmt.Fprintf(stderr, "edp top: -interval %s: want 100ms or more\n", *interval)
		return exitUsage
	}
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	r := newTopReader(t, v.target.workDir)
	cfg := topConfig{interval: *interval, plain: *plain, width: func() int { return 100 }}
	var keys io.Reader
	if out, ok := stdout.(*os.File); ok && !*plain && term.IsTerminal(int(out.Fd())) {
		cfg.width = func() int {
			if w, _, err := term.GetSize(int(out.Fd())); err == nil && w > 20 {
				return w
			}
			return 100
		}
		if term.IsTerminal(int(os.Stdin.Fd())) {
			old, err := term.MakeRaw(int(os.Stdin.Fd()))
			if err == nil {
				// The deferred restore runs on q, on Ctrl-C (a key in raw
				// mode) and on SIGTERM/SIGHUP (they cancel ctx).
				defer term.Restore(int(os.Stdin.Fd()), old)
				cfg.raw = true
				keys = os.Stdin
			}
		}
	} else {
		cfg.plain = true
	}
	return topLoop(ctx, cfg, r.read, keys, stdout)
}

// topConfig is how topLoop draws.
type topConfig struct {
	interval time.Duration
	// plain prints one line per refresh; else frames are redrawn.
	plain bool
	// raw: the terminal is in raw mode (lines end in CR LF).
	raw   bool
	width func() int
}

// Keys of edp top.
const (
	keyQuit  = 'q'
	keyPause = 'p'
	ctrlC    = 3 // raw mode delivers Ctrl-C as a key, not a signal
)

// readKeys sends the keys read from r until it ends.
func readKeys(r io.Reader, keys chan<- byte) {
	defer close(keys)
	var b [16]byte
	for {
		n, err := r.Read(b[:])
		for _, k := range b[:n] {
			switch k {
			case 'q', 'Q', ctrlC:
				keys <- keyQuit
			case 'p', 'P', ' ':
				keys <- keyPause
			}
		}
		if err != nil {
			return
		}
	}
}

// topLoop reads and shows a snapshot every interval until ctx ends or q
// is pressed; p pauses (readings stop, the frame says so) and resumes.
func topLoop(ctx context.Context, cfg topConfig, read func(context.Context) topSnapshot, keys io.Reader, out io.Writer) int {
	keyc := make(chan byte)
	if keys != nil {
		go readKeys(keys, keyc)
	}
	if !cfg.plain {
		fmt.Fprint(out, "\x1b[?1049h\x1b[?25l") // alternate screen, no cursor
		defer fmt.Fprint(out, "\x1b[?25h\x1b[?1049l")
	}
	paused := false
	var last topSnapshot
	show := func() {
		last.Paused, last.Interval = paused, cfg.interval
		if cfg.plain {
			fmt.Fprintln(out, plainLine(last))
			return
		}
		frame := render(last, cfg.width())
		if cfg.raw {
			frame = strings.ReplaceAll(frame, "\n", "\r\n")
		}
		fmt.Fprint(out, "\x1b[H\x1b[2J"+frame)
	}
	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	last = read(ctx)
	show()
	for {
		select {
		case <-ctx.Done():
			return 0
		case k, ok := <-keyc:
			if !ok {
				keyc = nil
				continue
			}
			switch k {
			case keyQuit:
				return 0
			case keyPause:
				paused = !paused
				show()
			}
		case <-tick.C:
			if paused {
				continue
			}
			last = read(ctx)
			show()
		}
	}
}

// topSnapshot is one reading of a stack, all a frame shows.
type topSnapshot struct {
	Stack, Where string
	Arch         stackview.Arch
	At           time.Time
	Interval     time.Duration
	Queue        stackview.QueueDepth
	// Oldest is the age of the oldest message, when HasOldest.
	Oldest    time.Duration
	HasOldest bool
	// DLQ and DeliveryDLQ are the visible messages of the dead-letter
	// queue and of the rule's delivery DLQ (HasDeliveryDLQ).
	DLQ, DeliveryDLQ  int
	HasDeliveryDLQ    bool
	Running, Starting int
	Desired           int
	HasDesired        bool
	Alarms            []topAlarm
	Runs              []runrecord.Entry
	// Why says why visible work waits ("" when it does not).
	Why       string
	Dashboard string
	// QueueHist and TaskHist are the last readings of visible messages
	// and running tasks, oldest first.
	QueueHist, TaskHist []int
	Paused              bool
	// Problems are the reads that failed this time.
	Problems []string
}

type topAlarm struct{ Name, State string }

// topReader reads snapshots of one stack, keeping what it learned from
// the template and the history of the sparklines.
type topReader struct {
	t       *target
	workDir string
	arch    stackview.Arch
	recent  *stackview.Recent
	backlog stackview.Backlog
	// hasBacklog: the stack has a backlog alarm.
	hasBacklog  bool
	deliveryDLQ string
	alarmNames  []string
	services    []string // physical ids (ARNs) of the ECS services
	schedule    *schedexpr.Schedule
	cwAPI       metricReader // nil locally
	oldestAt    time.Time
	oldest      time.Duration
	hasOldest   bool
	queueHist   []int
	taskHist    []int
}

// metricReader is the CloudWatch call top makes (*cloudwatch.Client).
type metricReader interface {
	GetMetricData(context.Context, *cloudwatch.GetMetricDataInput, ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
	DescribeAlarms(context.Context, *cloudwatch.DescribeAlarmsInput, ...func(*cloudwatch.Options)) (*cloudwatch.DescribeAlarmsOutput, error)
}

func newTopReader(t *target, workDir string) *topReader {
	st := t.stack
	r := &topReader{t: t, workDir: workDir, arch: stackview.DetectArch(st), recent: &stackview.Recent{API: t.s3, Bucket: t.bucket()}}
	r.backlog, r.hasBacklog = stackview.BacklogAlarm(st)
	r.deliveryDLQ = t.deliveryDLQ()
	for _, id := range st.Resources("AWS::CloudWatch::Alarm") {
		if n := st.Physical[id]; n != "" {
			r.alarmNames = append(r.alarmNames, n)
		}
	}
	for _, id := range st.Resources("AWS::ECS::Service") {
		r.services = append(r.services, st.Physical[id])
	}
	if sched, ok := stackScheduleOf(st); ok {
		r.schedule = &sched
	}
	if t.cw != nil {
		r.cwAPI = t.cw
	}
	return r
}

// stackScheduleOf is the stack's first enabled schedule.
func stackScheduleOf(st *stackview.Stack) (schedexpr.Schedule, bool) {
	for _, id := range st.Resources("AWS::Scheduler::Schedule") {
		p := st.Properties(id)
		if p["State"] == "DISABLED" {
			continue
		}
		expr, _ := p["ScheduleExpression"].(string)
		tz, _ := p["ScheduleExpressionTimezone"].(string)
		if s, err := schedexpr.ParseIn(expr, tz); err == nil {
			return s, true
		}
	}
	return schedexpr.Schedule{}, false
}

// read takes one snapshot; a read that fails is named in Problems and
// leaves its part empty.
func (r *topReader) read(ctx context.Context) topSnapshot {
	t, st := r.t, r.t.stack
	now := time.Now()
	s := topSnapshot{Stack: st.Name, Where: t.where, Arch: r.arch, At: now, Dashboard: st.Outputs[names.OutputDashboard]}
	problem := func(what string, err error) { s.Problems = append(s.Problems, what+": "+err.Error()) }
	var err error
	if s.Queue, err = stackview.Depth(ctx, t.sqs, st.Outputs[names.OutputQueueURL]); err != nil {
		problem("queue", err)
	}
	if d, err := stackview.Depth(ctx, t.sqs, st.Outputs[names.OutputDLQURL]); err != nil {
		problem("dlq", err)
	} else {
		s.DLQ = d.Visible
	}
	if r.deliveryDLQ != "" {
		if d, err := stackview.Depth(ctx, t.sqs, r.deliveryDLQ); err != nil {
			problem("delivery dlq", err)
		} else {
			s.DeliveryDLQ, s.HasDeliveryDLQ = d.Visible, true
		}
	}
	if err := r.tasks(ctx, &s); err != nil {
		problem("tasks", err)
	}
	facts := stackview.WaitFacts{Queue: s.Queue, Backlog: r.backlog, HasBacklog: r.hasBacklog, DeliveryDLQ: s.DeliveryDLQ}
	if r.schedule != nil {
		facts.Schedule = r.schedule.String()
		if next, ok := r.schedule.Next(now); ok {
			facts.NextFire, facts.HasNextFire = next.Sub(now), true
		}
	}
	if t.local {
		rs, err := localcloud.ReadRuntimeStatus(r.workDir)
		if err != nil {
			problem("local runtime status", err)
		} else {
			localFacts(&facts, rs, st, now)
			s.Alarms = nil
			for _, a := range rs.Alarms {
				s.Alarms = append(s.Alarms, topAlarm{a.Name, a.State})
			}
			for _, d := range rs.Desired {
				s.Desired += d
				s.HasDesired = true
			}
		}
	} else if r.cwAPI != nil {
		if err := r.cloudWatch(ctx, &s, &facts, now); err != nil {
			problem("cloudwatch", err)
		}
	}
	s.Oldest, s.HasOldest = facts.OldestAge, facts.HasOldest
	if s.HasDesired {
		facts.Desired, facts.HasDesired = s.Desired, true
	}
	for _, a := range s.Alarms {
		if r.hasBacklog && a.Name == r.backlogName() {
			facts.BacklogState = a.State
		}
	}
	facts.Running, facts.Starting = s.Running, s.Starting
	s.Why = stackview.WhyWaits(r.arch, facts)
	if s.Runs, err = r.recent.Runs(ctx, topRuns, stackview.RecentFilter{}); err != nil {
		problem("runs", err)
	}
	r.queueHist = appendBounded(r.queueHist, s.Queue.Visible)
	r.taskHist = appendBounded(r.taskHist, s.Running)
	s.QueueHist, s.TaskHist = slices.Clone(r.queueHist), slices.Clone(r.taskHist)
	return s
}

// backlogName is the backlog alarm's deployed name, or its logical id.
func (r *topReader) backlogName() string {
	if n := r.t.stack.Physical[r.backlog.LogicalID]; n != "" {
		return n
	}
	return r.backlog.LogicalID
}

func appendBounded(h []int, v int) []int {
	h = append(h, v)
	if len(h) > topHistory {
		h = h[len(h)-topHistory:]
	}
	return h
}

// localFacts adds what the local runtime knows to the facts.
func localFacts(f *stackview.WaitFacts, rs localcloud.RuntimeStatus, st *stackview.Stack, now time.Time) {
	f.Speedup = rs.Speedup
	if age, ok := rs.OldestAge[path.Base(st.Outputs[names.OutputQueueURL])]; ok {
		f.OldestAge, f.HasOldest = time.Duration(age*float64(time.Second)), true
	} else {
		f.HasOldest = true // no visible message when the alarms last looked
	}
	for _, at := range rs.NextFire {
		if d := at.Sub(now); f.LocalNextFire == 0 || d < f.LocalNextFire {
			f.LocalNextFire = max(d, 0)
		}
	}
	if len(st.Resources("AWS::Lambda::Function")) > 0 {
		var last time.Time
		for _, at := range rs.LastInvocation {
			if at.After(last) {
				last = at
			}
		}
		if last.IsZero() {
			f.NeverDispatched = true
		} else {
			f.LastDispatch, f.HasLastDispatch = now.Sub(last), true
		}
	}
}

// tasks counts the cluster's tasks (ListTasks desired RUNNING, then
// DescribeTasks for their last status) and, on AWS, the services' desired
// count (the local ECS has no DescribeServices: the runtime's status
// says).
func (r *topReader) tasks(ctx context.Context, s *topSnapshot) error {
	cluster := r.t.stack.Outputs[names.OutputCluster]
	if cluster == "" {
		return nil
	}
	var arns []string
	p := ecs.NewListTasksPaginator(r.t.ecs, &ecs.ListTasksInput{Cluster: aws.String(cluster), DesiredStatus: "RUNNING"})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		arns = append(arns, page.TaskArns...)
	}
	for chunk := range slices.Chunk(arns, 100) {
		out, err := r.t.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(cluster), Tasks: chunk})
		if err != nil {
			return err
		}
		for _, task := range out.Tasks {
			switch aws.ToString(task.LastStatus) {
			case "RUNNING":
				s.Running++
			case "PROVISIONING", "PENDING", "ACTIVATING":
				s.Starting++
			}
		}
	}
	if r.t.local || len(r.services) == 0 {
		return nil
	}
	out, err := r.t.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: r.services})
	if err != nil {
		return err
	}
	for _, svc := range out.Services {
		s.Desired += int(svc.DesiredCount)
		s.HasDesired = true
	}
	return nil
}

// cloudWatch reads the alarms' states (DescribeAlarms) and, at most once
// a minute, the queue's ApproximateAgeOfOldestMessage (GetMetricData):
// SQS has no attribute for it, and the metric changes once a minute.
func (r *topReader) cloudWatch(ctx context.Context, s *topSnapshot, f *stackview.WaitFacts, now time.Time) error {
	var errs []error
	for chunk := range slices.Chunk(r.alarmNames, 100) {
		out, err := r.cwAPI.DescribeAlarms(ctx, &cloudwatch.DescribeAlarmsInput{AlarmNames: chunk, AlarmTypes: []cwtypes.AlarmType{cwtypes.AlarmTypeMetricAlarm, cwtypes.AlarmTypeCompositeAlarm}})
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, a := range out.MetricAlarms {
			s.Alarms = append(s.Alarms, topAlarm{aws.ToString(a.AlarmName), string(a.StateValue)})
		}
		for _, a := range out.CompositeAlarms {
			s.Alarms = append(s.Alarms, topAlarm{aws.ToString(a.AlarmName), string(a.StateValue)})
		}
	}
	slices.SortFunc(s.Alarms, func(a, b topAlarm) int { return strings.Compare(a.Name, b.Name) })
	if now.Sub(r.oldestAt) >= oldestEvery {
		r.oldestAt = now
		out, err := r.cwAPI.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(now.Add(-5 * time.Minute)), EndTime: aws.Time(now), ScanBy: cwtypes.ScanByTimestampDescending,
			MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("age"), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String("AWS/SQS"), MetricName: aws.String("ApproximateAgeOfOldestMessage"),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("QueueName"), Value: aws.String(path.Base(r.t.stack.Outputs[names.OutputQueueURL]))}}},
				Period: aws.Int32(60), Stat: aws.String("Maximum"),
			}}},
		})
		switch {
		case err != nil:
			errs = append(errs, err)
		case len(out.MetricDataResults) == 1 && len(out.MetricDataResults[0].Values) > 0:
			r.oldest, r.hasOldest = time.Duration(out.MetricDataResults[0].Values[0]*float64(time.Second)), true
		default:
			r.hasOldest = false
		}
	}
	f.OldestAge, f.HasOldest = r.oldest, r.hasOldest
	return errors.Join(errs...)
}

// sparks are the eight levels of a sparkline.
var sparks = []rune("▁▂▃▄▅▆▇█")

// sparkline draws values scaled to their maximum, the last width of them.
func sparkline(values []int, width int) string {
	if len(values) > width {
		values = values[len(values)-width:]
	}
	top := 0
	for _, v := range values {
		top = max(top, v)
	}
	var b strings.Builder
	for _, v := range values {
		i := 0
		if top > 0 {
			i = v * (len(sparks) - 1) / top
		}
		b.WriteRune(sparks[i])
	}
	return b.String()
}

// render draws a frame of s, each line cut to width characters.
func render(s topSnapshot, width int) string {
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	state := "every " + s.Interval.String()
	if s.Interval == 0 {
		state = "live"
	}
	if s.Paused {
		state = "PAUSED (p resumes)"
	}
	add("edp top — %s (%s) in %s · %s · %s · q quits, p pauses", s.Stack, s.Arch, s.Where, s.At.Format("15:04:05"), state)
	add("")
	oldest := "-"
	if s.HasOldest {
		oldest = s.Oldest.Round(time.Second).String()
	}
	add("%-10s%-52s %s", "queue", fmt.Sprintf("%d visible · %d in flight · oldest %s", s.Queue.Visible, s.Queue.InFlight, oldest), sparkline(s.QueueHist, 30))
	tasks := fmt.Sprintf("%d running · %d starting", s.Running, s.Starting)
	if s.HasDesired {
		tasks += fmt.Sprintf(" · desired %d", s.Desired)
	}
	add("%-10s%-52s %s", "tasks", tasks, sparkline(s.TaskHist, 30))
	dlq := fmt.Sprintf("%d dead letters", s.DLQ)
	if s.HasDeliveryDLQ {
		dlq += fmt.Sprintf(" · %d undelivered events", s.DeliveryDLQ)
	}
	add("%-10s%s", "dlq", dlq)
	if s.Why != "" {
		add("%-10s%s", "waiting", s.Why)
	}
	add("")
	if len(s.Alarms) == 0 {
		add("%-10s%s", "alarms", "-")
	}
	for i, a := range s.Alarms {
		label := ""
		if i == 0 {
			label = "alarms"
		}
		add("%-10s%-18s%s", label, a.State, a.Name)
	}
	add("")
	add("%-14s%-40s%-10s%-10s%s", "RUN", "CONFIG", "STATUS", "DURATION", "AGE")
	for _, e := range s.Runs {
		add("%-14s%-40s%-10s%-10s%s", e.RunID[:min(12, len(e.RunID))], e.Key, e.Status, runDuration(e, s.At), s.At.Sub(e.StartedAt).Round(time.Second))
	}
	if len(s.Runs) == 0 {
		add("(no runs yet)")
	}
	if s.Dashboard != "" {
		add("")
		add("dashboard %s", s.Dashboard)
	}
	for _, p := range s.Problems {
		add("! %s", p)
	}
	for i, l := range lines {
		lines[i] = cut(l, width)
	}
	return strings.Join(lines, "\n") + "\n"
}

// runDuration is an entry's duration, or its time so far while running.
func runDuration(e runrecord.Entry, now time.Time) string {
	if e.Status == runrecord.StatusRunning {
		return now.Sub(e.StartedAt).Round(time.Second).String() + "…"
	}
	return (time.Duration(e.DurationMS) * time.Millisecond).Round(10 * time.Millisecond).String()
}

// cut shortens a line to width characters.
func cut(s string, width int) string {
	s = strings.TrimRight(s, " ")
	if width <= 1 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// plainLine is one reading in one line, for logs and pipes.
func plainLine(s topSnapshot) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s queue %d visible / %d in flight", s.At.Format("15:04:05"), s.Stack, s.Queue.Visible, s.Queue.InFlight)
	if s.HasOldest {
		fmt.Fprintf(&b, " (oldest %s)", s.Oldest.Round(time.Second))
	}
	fmt.Fprintf(&b, " · dlq %d", s.DLQ)
	if s.HasDeliveryDLQ {
		fmt.Fprintf(&b, " · undelivered %d", s.DeliveryDLQ)
	}
	fmt.Fprintf(&b, " · tasks %d running, %d starting", s.Running, s.Starting)
	if s.HasDesired {
		fmt.Fprintf(&b, " (desired %d)", s.Desired)
	}
	var alarming []string
	for _, a := range s.Alarms {
		if a.State == "ALARM" {
			alarming = append(alarming, a.Name)
		}
	}
	if len(alarming) > 0 {
		fmt.Fprintf(&b, " · in alarm: %s", strings.Join(alarming, ", "))
	}
	if len(s.Runs) > 0 {
		e := s.Runs[0]
		fmt.Fprintf(&b, " · last run %s %s %s", e.RunID[:min(12, len(e.RunID))], e.Status, runDuration(e, s.At))
	}
	if s.Why != "" {
		fmt.Fprintf(&b, " · waiting: %s", s.Why)
	}
	if s.Paused {
		b.WriteString(" · paused")
	}
	for _, p := range s.Problems {
		fmt.Fprintf(&b, " · ! %s", p)
	}
	return b.String()
}
