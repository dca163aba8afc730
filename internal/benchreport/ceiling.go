package benchreport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/internal/faultproxy"
	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// CeilingTitle is the title of the local cloud ceiling's section.
const CeilingTitle = "Local cloud ceiling"

// ceilingPoll is how often the ceiling measurement looks at the queue and
// the task logs.
const ceilingPoll = 500 * time.Millisecond

// jobDone is one "job done" line of a task's log (consumer/worker).
type jobDone struct {
	At       time.Time
	Outcome  string
	Duration time.Duration
}

// parseJobsDone reads the "job done" lines of a task log (JSON lines, as
// slog's JSON handler writes them); other lines are skipped.
func parseJobsDone(r io.Reader) ([]jobDone, error) {
	var out []jobDone
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"job done"`) {
			continue
		}
		var l struct {
			Time       time.Time `json:"time"`
			Msg        string    `json:"msg"`
			Outcome    string    `json:"outcome"`
			DurationMS float64   `json:"duration_ms"`
		}
		if json.Unmarshal(line, &l) != nil || l.Msg != "job done" {
			continue
		}
		out = append(out, jobDone{At: l.Time, Outcome: l.Outcome, Duration: time.Duration(l.DurationMS * float64(time.Millisecond))})
	}
	return out, sc.Err()
}

// readJobsDone reads the "job done" lines of every task log in dir.
func readJobsDone(dir string) ([]jobDone, error) {
	files, err := filepath.Glob(filepath.Join(dir, "task-*.log"))
	if err != nil {
		return nil, err
	}
	var out []jobDone
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		d, err := parseJobsDone(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		out = append(out, d...)
	}
	return out, nil
}

// steadyRate is the jobs per second between the 10th and the 90th
// percentile of the finish times, so that neither the first jobs (one
// task, before scaling) nor the last (a draining queue) set it; with
// fewer than 10 jobs, all of them over the span from the first to the
// last. 0 when it cannot be told.
func steadyRate(done []jobDone) float64 {
	at := make([]time.Time, len(done))
	for i, d := range done {
		at[i] = d.At
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	lo, hi := 0, len(at)-1
	if len(at) >= 10 {
		lo, hi = len(at)/10, len(at)-1-len(at)/10
	}
	if hi <= lo {
		return 0
	}
	span := at[hi].Sub(at[lo]).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(hi-lo) / span
}

// ceilingSample is one run of the ceiling measurement: what happened from
// the first upload until the queue was drained.
type ceilingSample struct {
	Configs int
	Took    time.Duration
	// Done are the "job done" lines of the task logs.
	Done []jobDone
	// TaskOps are the tasks' requests to moto by operation, HostOps the
	// local runtime's and the uploads' (faultproxy.Operation's names).
	TaskOps, HostOps map[string]int
	// MotoCPU, TasksCPU and SelfCPU are the CPU time of moto_server, of
	// the tasks (the consumers) and of this process (the local runtime,
	// the counting proxies, the uploads).
	MotoCPU, TasksCPU, SelfCPU time.Duration
	// Machine is the whole machine's CPU over the run, every process.
	Machine machineCPU
	// PeakTasks is the most tasks seen RUNNING at once.
	PeakTasks int
}

// total is the sum of the counts.
func total(ops map[string]int) int {
	n := 0
	for _, v := range ops {
		n += v
	}
	return n
}

// succeeded is the number of jobs done with outcome "succeeded".
func (s ceilingSample) succeeded() int {
	n := 0
	for _, d := range s.Done {
		if d.Outcome == "succeeded" {
			n++
		}
	}
	return n
}

// The units of the ceiling's figures, in the table's order.
const (
	unitJobsPerS     = "jobs/s"
	unitTook         = "upload→done-s"
	unitReqPerJob    = "requests/job"
	unitMotoReqPerS  = "moto-requests/s"
	unitMotoCPU      = "moto-CPU-%"
	unitMotoMSPerReq = "moto-CPU-ms/request"
	unitMotoBound    = "moto-bound-jobs/s"
	unitTasksCPU     = "tasks-CPU-%"
	unitSelfCPU      = "runtime-CPU-%"
	unitMachine      = "machine-busy-cores"
	unitPeakTasks    = "peak-tasks"
)

var ceilingUnits = []string{unitJobsPerS, unitTook, unitReqPerJob, unitMotoReqPerS, unitMotoCPU, unitMotoMSPerReq,
	unitMotoBound, unitTasksCPU, unitSelfCPU, unitMachine, unitPeakTasks}

// figures computes one run's figures. moto-bound-jobs/s is the rate at
// which moto_server, at this cost per request and these requests per job,
// would use one core whole: the ceiling a single-threaded emulator sets.
func (s ceilingSample) figures() map[string]float64 {
	out := map[string]float64{}
	secs := s.Took.Seconds()
	if secs <= 0 {
		return out
	}
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / secs }
	reqs := total(s.TaskOps) + total(s.HostOps)
	out[unitJobsPerS] = steadyRate(s.Done)
	out[unitTook] = secs
	out[unitMotoReqPerS] = float64(reqs) / secs
	out[unitMotoCPU] = pct(s.MotoCPU)
	out[unitTasksCPU] = pct(s.TasksCPU)
	out[unitSelfCPU] = pct(s.SelfCPU)
	out[unitMachine] = s.Machine.Busy.Seconds() / secs
	out[unitPeakTasks] = float64(s.PeakTasks)
	if n := s.succeeded(); n > 0 {
		out[unitReqPerJob] = float64(total(s.TaskOps)) / float64(n)
	}
	if reqs > 0 {
		out[unitMotoMSPerReq] = 1000 * s.MotoCPU.Seconds() / float64(reqs)
	}
	if out[unitReqPerJob] > 0 && out[unitMotoMSPerReq] > 0 {
		out[unitMotoBound] = 1000 / (out[unitMotoMSPerReq] * out[unitReqPerJob])
	}
	return out
}

// ceilingRow summarizes the runs of one configuration.
func ceilingRow(name string, runs []ceilingSample) Row {
	row := Row{Name: name}
	figs := make([]map[string]float64, len(runs))
	for i, r := range runs {
		figs[i] = r.figures()
	}
	for _, u := range ceilingUnits {
		var xs []float64
		for _, f := range figs {
			if v, ok := f[u]; ok {
				xs = append(xs, v)
			}
		}
		if len(xs) > 0 {
			row.Figures = append(row.Figures, Figure{Unit: u, S: Summarize(xs)})
		}
	}
	if len(runs) > 0 {
		row.Note = opsNote(runs)
	}
	return row
}

// opsNote says what the tasks asked of moto per job and what the rest
// asked per second, summed over the runs.
func opsNote(runs []ceilingSample) string {
	tasks, host := map[string]int{}, map[string]int{}
	jobs, configs, secs, failed := 0, 0, 0.0, 0
	for _, r := range runs {
		for k, v := range r.TaskOps {
			tasks[k] += v
		}
		for k, v := range r.HostOps {
			host[k] += v
		}
		jobs += r.succeeded()
		failed += len(r.Done) - r.succeeded()
		configs += r.Configs
		secs += r.Took.Seconds()
	}
	host["PutObject"] -= configs // the uploads
	if host["PutObject"] <= 0 {
		delete(host, "PutObject")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d jobs succeeded", jobs, configs)
	if failed > 0 {
		fmt.Fprintf(&b, " (%d other outcomes)", failed)
	}
	if jobs > 0 {
		b.WriteString("; the tasks' requests per job: " + opsText(tasks, float64(jobs)))
	}
	if secs > 0 && len(host) > 0 {
		b.WriteString("; the local runtime's per second (besides the uploads): " + opsText(host, secs))
	}
	return b.String()
}

// opsText lists ops divided by per, most first: "PutObject 10, GetObject 3".
func opsText(ops map[string]int, per float64) string {
	keys := slices.Collect(maps.Keys(ops))
	slices.SortFunc(keys, func(a, b string) int {
		if ops[a] != ops[b] {
			return ops[b] - ops[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		name := k
		if name == "" {
			name = "other"
		}
		parts = append(parts, name+" "+formatNumber(float64(ops[k])/per))
	}
	return strings.Join(parts, ", ")
}

// CeilingOptions configure MeasureCeiling. Every field works at its zero
// value.
type CeilingOptions struct {
	// RepoRoot is the repository root. Default ".".
	RepoRoot string
	// Configs is the batch uploaded per run. Default 200.
	Configs int
	// Runs is the number of runs of each task count. Default 2.
	Runs int
	// Tasks are the edp:maxTasks measured. Default 1 and cdk.json's
	// (settings.Defaults).
	Tasks []int
	// Progress receives a line per run; default discarded.
	Progress io.Writer
}

func (o *CeilingOptions) setDefaults() {
	if o.RepoRoot == "" {
		o.RepoRoot = "."
	}
	if o.Configs <= 0 {
		o.Configs = 200
	}
	if o.Runs <= 0 {
		o.Runs = 2
	}
	if len(o.Tasks) == 0 {
		o.Tasks = []int{1, settings.Defaults().MaxTasks}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// MeasureCeiling measures the local cloud's throughput on EdpAlarmService
// at each task count: Configs uploads per run, counted on their way to
// moto_server, with the CPU of moto, the tasks and the machine.
func MeasureCeiling(ctx context.Context, o CeilingOptions) (sec Section, err error) {
	o.setDefaults()
	counts := make([]string, len(o.Tasks))
	for i, n := range o.Tasks {
		counts[i] = strconv.Itoa(n)
	}
	sec = Section{
		Title: CeilingTitle,
		Intro: fmt.Sprintf("Where the local cloud's throughput stops: `EdpAlarmService` (`-c edp:maxTasks=%s`, each task "+
			"running the built-in job with its default concurrency, one job per CPU) deployed into a local cloud at the "+
			"default speed-up, %d copies of `examples/decision-tree.yaml` (each its own version) uploaded one after the "+
			"other, %d runs per task count. Every request to moto_server passes a counting proxy (`internal/faultproxy`): "+
			"one for the tasks, one for the local runtime and the uploads. jobs/s is the rate between the 10th and the 90th "+
			"percentile of the tasks' `job done` lines; upload→done-s runs from the first upload until every job is done "+
			"and the queue is empty. CPU figures are %% of one core over that time, from `/proc`: moto_server's, the tasks' "+
			"(the consumers), this process's (the local runtime and the proxies), and the whole machine's in cores "+
			"(anything else running included). moto-bound-jobs/s = 1000 ÷ (moto-CPU-ms/request × requests/job): the rate "+
			"at which the one moto_server process would be busy all the time.", strings.Join(counts, ", "), o.Configs, o.Runs),
		Command: "make bench-ceiling",
	}
	dir, err := os.MkdirTemp("", "edp-bench-ceiling-")
	if err != nil {
		return sec, err
	}
	defer os.RemoveAll(dir)
	body, err := os.ReadFile(filepath.Join(o.RepoRoot, "examples", "decision-tree.yaml"))
	if err != nil {
		return sec, err
	}
	loadBefore := LoadAverage()
	defer func() {
		if loadBefore != "" {
			sec.Intro += fmt.Sprintf(" Load average (1, 5, 15 min) before: %s, after: %s.", loadBefore, LoadAverage())
		}
	}()
	for _, tasks := range o.Tasks {
		asm, err := localcloud.Synthesize(ctx, localcloud.SynthOptions{RepoRoot: o.RepoRoot, OutDir: filepath.Join(dir, fmt.Sprintf("cdk.out-%d", tasks)),
			Context: map[string]string{settings.KeyMaxTasks: strconv.Itoa(tasks)}})
		if err != nil {
			return sec, err
		}
		var runs []ceilingSample
		for i := range o.Runs {
			s, err := ceilingRun(ctx, o.RepoRoot, filepath.Join(dir, fmt.Sprintf("run-%d-%d", tasks, i)), asm, body, o.Configs)
			if err != nil {
				return sec, fmt.Errorf("%d tasks, run %d: %w", tasks, i+1, err)
			}
			f := s.figures()
			fmt.Fprintf(o.Progress, "benchreport: ceiling, %d tasks, run %d: %.1f jobs/s, %.0f requests/job, moto %.0f%% of a core, %.2f ms/request, machine %.2f cores\n",
				tasks, i+1, f[unitJobsPerS], f[unitReqPerJob], f[unitMotoCPU], f[unitMotoMSPerReq], f[unitMachine])
			runs = append(runs, s)
		}
		name := fmt.Sprintf("alarm-service, %d tasks", tasks)
		if tasks == 1 {
			name = "alarm-service, 1 task"
		}
		sec.Rows = append(sec.Rows, ceilingRow(name, runs))
	}
	return sec, nil
}

// ceilingRun deploys the assembly into a local cloud of its own moto,
// behind two counting proxies, uploads n configs and waits until every job
// is done and the queue is empty.
func ceilingRun(ctx context.Context, root, workDir, asm string, body []byte, n int) (_ ceilingSample, err error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return ceilingSample{}, err
	}
	logFile, err := os.Create(filepath.Join(workDir, "cloud.log"))
	if err != nil {
		return ceilingSample{}, err
	}
	defer logFile.Close()
	motoPID := 0
	moto, err := motoserver.StartWith(ctx, motoserver.Options{Track: func(pid int) func() { motoPID = pid; return func() {} }})
	if err != nil {
		return ceilingSample{}, err
	}
	defer moto.Stop()
	hostProxy, err := faultproxy.Start(moto.Endpoint)
	if err != nil {
		return ceilingSample{}, err
	}
	defer hostProxy.Close()
	taskProxy, err := faultproxy.Start(moto.Endpoint)
	if err != nil {
		return ceilingSample{}, err
	}
	defer taskProxy.Close()
	cloud, err := localcloud.Up(ctx, localcloud.Options{
		RepoRoot: root, Stack: names.StackAlarmService, AssemblyDir: asm, WorkDir: workDir,
		// The runtime reaches moto through hostProxy: a running emulator
		// at that endpoint, which this function stops itself.
		Moto:         &motoserver.Server{Endpoint: hostProxy.URL},
		TaskEndpoint: taskProxy.URL,
		Logger:       slog.New(slog.NewJSONHandler(logFile, nil)),
	})
	if err != nil {
		return ceilingSample{}, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err = errors.Join(err, cloud.Close(c))
	}()
	// The observer's own clients go to moto directly: not counted.
	direct, err := localcloud.NewClients(ctx, moto.Endpoint)
	if err != nil {
		return ceilingSample{}, err
	}
	if err := waitRunning(ctx, cloud); err != nil {
		return ceilingSample{}, err
	}
	bucket := cloud.Stack().Outputs[names.OutputBucket]
	queue := cloud.Stack().Outputs[names.OutputQueueURL]
	skip := map[int]bool{motoPID: true}
	self := os.Getpid()

	type point struct {
		moto, self procStat
		machine    machineCPU
		tasks      map[int]time.Duration
		host, task map[string]int
	}
	read := func() (point, error) {
		var p point
		var err error
		if p.moto, err = readProcStat(motoPID); err != nil {
			return p, fmt.Errorf("moto_server's CPU: %w", err)
		}
		if p.self, err = readProcStat(self); err != nil {
			return p, err
		}
		if p.machine, err = readMachineCPU(); err != nil {
			return p, err
		}
		p.tasks = childrenCPU(self, skip)
		p.host, p.task = hostProxy.SeenAll(), taskProxy.SeenAll()
		return p, nil
	}
	start, err := read()
	if err != nil {
		return ceilingSample{}, err
	}
	t0 := time.Now()
	for i := range n {
		key := fmt.Sprintf("%sceiling-%03d.yaml", names.ConfigPrefix, i)
		cfg := strings.Replace(string(body), "dt-v1", fmt.Sprintf("dt-ceiling-%03d", i), 1)
		if _, err := cloud.Clients().S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(cfg)}); err != nil {
			return ceilingSample{}, fmt.Errorf("upload %s: %w", key, err)
		}
	}
	tasksCPU := maps.Clone(start.tasks)
	peak := 0
	deadline := t0.Add(localTimeout)
	for {
		select {
		case <-ctx.Done():
			return ceilingSample{}, ctx.Err()
		case <-time.After(ceilingPoll):
		}
		running := 0
		for _, t := range cloud.Tasks() {
			if t.LastStatus == ecsemu.StatusRunning {
				running++
			}
		}
		peak = max(peak, running)
		// A task that has ended keeps its last reading.
		maps.Copy(tasksCPU, childrenCPU(self, skip))
		done, err := readJobsDone(filepath.Join(workDir, "logs"))
		if err != nil {
			return ceilingSample{}, err
		}
		if len(done) >= n {
			d, err := stackview.Depth(ctx, direct.SQS, queue)
			if err == nil && d.Visible == 0 && d.InFlight == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			return ceilingSample{}, fmt.Errorf("%d of %d jobs done after %s", len(done), n, localTimeout)
		}
	}
	end, err := read()
	took := time.Since(t0)
	if err != nil {
		return ceilingSample{}, err
	}
	maps.Copy(tasksCPU, end.tasks)
	done, err := readJobsDone(filepath.Join(workDir, "logs"))
	if err != nil {
		return ceilingSample{}, err
	}
	s := ceilingSample{
		Configs: n, Took: took, Done: done, PeakTasks: peak,
		TaskOps: diffCounts(end.task, start.task), HostOps: diffCounts(end.host, start.host),
		MotoCPU: end.moto.CPU - start.moto.CPU, SelfCPU: end.self.CPU - start.self.CPU,
		Machine: machineCPU{Busy: end.machine.Busy - start.machine.Busy, Total: end.machine.Total - start.machine.Total},
	}
	for pid, cpu := range tasksCPU {
		s.TasksCPU += cpu - start.tasks[pid]
	}
	return s, nil
}

// waitRunning waits until the local ECS runs a task (the service's first).
func waitRunning(ctx context.Context, cloud *localcloud.Cloud) error {
	deadline := time.Now().Add(time.Minute)
	for {
		for _, t := range cloud.Tasks() {
			if t.LastStatus == ecsemu.StatusRunning {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return errors.New("no task running a minute after the deploy")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// diffCounts is b − a per key, keys with a difference only.
func diffCounts(b, a map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range b {
		if d := v - a[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}
