package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/procgroup"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// architectures maps the ARCH names of `make local` to stacks.
var architectures = map[string]string{
	"oneoff":         names.StackOneOff,
	"alarm-service":  names.StackAlarmService,
	"alarm-dispatch": names.StackAlarmDispatch,
	"cron":           names.StackCron,
}

func stackFor(arch string) (string, error) {
	if s, ok := architectures[arch]; ok {
		return s, nil
	}
	for _, s := range architectures {
		if s == arch {
			return s, nil
		}
	}
	var all []string
	for a := range architectures {
		all = append(all, a)
	}
	sort.Strings(all)
	return "", fmt.Errorf("unknown architecture %q: want one of %s (or a stack name)", arch, strings.Join(all, ", "))
}

// localFlags are the settings of the `edp local` verbs; each verb binds
// only the flags it reads (localVerbs).
type localFlags struct {
	arch, configs, workDir, logFile string
	// job is a command job's directory (docs/jobs.md); "" runs the
	// built-in job.
	job     string
	speedup float64
	timeout time.Duration
	context contextFlags
	detach  bool
}

// localVerbs lists the flags each verb of `edp local` takes, so that its -h
// lists no flag it would ignore.
var localVerbs = map[string][]string{
	"run":  {"arch", "job", "configs", "work-dir", "log", "speedup", "timeout", "c"},
	"up":   {"arch", "job", "work-dir", "log", "speedup", "c", "detach"},
	"down": {"work-dir"},
}

// newLocalFlagSet returns verb's flags (localVerbs) over their defaults.
// A back-quoted word in a usage text names the flag's argument in -h
// (flag.UnquoteUsage), so only argument names are back-quoted.
func newLocalFlagSet(verb string, stderr io.Writer) (*flag.FlagSet, *localFlags) {
	f := &localFlags{arch: "oneoff", workDir: ".edp-local", speedup: 30, timeout: 5 * time.Minute, context: contextFlags{}}
	fs := flag.NewFlagSet("local "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	bind := map[string]func(){
		"arch": func() {
			fs.StringVar(&f.arch, "arch", f.arch, "architecture `name`: oneoff, alarm-service, alarm-dispatch or cron (or a stack name)")
		},
		"configs": func() {
			fs.StringVar(&f.configs, "configs", f.configs, "`directory` whose *.yaml, *.yml and *.json files are uploaded under configs/ (default examples, or the job's configs/)")
		},
		"job": func() {
			fs.StringVar(&f.job, "job", f.job, "run a command job: its `directory` (Dockerfile, job.json, configs/); the command runs on this machine, no image is built")
		},
		"work-dir": func() {
			fs.StringVar(&f.workDir, "work-dir", f.workDir, "`directory` of local binaries, task and Lambda logs, and the state that up leaves for down")
		},
		"log": func() {
			fs.StringVar(&f.logFile, "log", f.logFile, "write the local cloud's JSON log to `file` (default <work-dir>/cloud.log)")
		},
		"speedup": func() {
			fs.Float64Var(&f.speedup, "speedup", f.speedup, "time compression of alarm periods, long polls and the max wait; schedules fire every 10 s")
		},
		"timeout": func() {
			fs.DurationVar(&f.timeout, "timeout", f.timeout, "give up waiting for the runs after this long")
		},
		"c": func() {
			fs.Var(f.context, "c", "CDK context override `key=value` for the synth (repeatable), e.g. -c edp:maxTasks=3")
		},
		"detach": func() {
			fs.BoolVar(&f.detach, "detach", false, "start in the background, print how to use it and return")
		},
	}
	for _, name := range localVerbs[verb] {
		bind[name]()
	}
	return fs, f
}

// cmdLocal runs `edp local [run|up|down] [flags]`.
func cmdLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	verb := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	if _, ok := localVerbs[verb]; !ok {
		fmt.Fprintf(stderr, "edp local: unknown verb %q: want run, up or down\n", verb)
		return 2
	}
	fs, f := newLocalFlagSet(verb, stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "edp local:", err)
		return 2
	}
	var err error
	switch verb {
	case "run":
		err = localRun(ctx, f, stdout)
	case "up":
		if f.detach {
			err = localUpDetached(ctx, f, args, stdout)
		} else {
			err = localUp(ctx, f, stdout)
		}
	case "down":
		err = localDown(ctx, f, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "edp local:", err)
		return 1
	}
	return 0
}

// Bounds of `local down`.
const (
	// runtimeGrace is how long the runtime has to stop what it started
	// (each task gets its task definition's stop timeout) before it is
	// killed.
	runtimeGrace = 3 * time.Minute
	// orphanGrace is how long a process left behind by a runtime that
	// died has between SIGTERM and SIGKILL: with the runtime gone (and
	// moto_server going) a task has nothing left to finish.
	orphanGrace = 5 * time.Second
)

// assemblyDir, when set (by tests), is a synthesized cloud assembly that
// startCloud deploys as is.
var assemblyDir string

// startCloud brings the local cloud up with the flags' settings. Processes
// left behind by an earlier runtime in the same work dir are stopped
// first.
func startCloud(ctx context.Context, f *localFlags, stdout io.Writer) (*localcloud.Cloud, error) {
	stack, err := stackFor(f.arch)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.workDir, 0o755); err != nil {
		return nil, err
	}
	left, err := procgroup.Sweep(ctx, procsPath(f.workDir), orphanGrace)
	reportOrphans(stdout, left)
	if errors.Is(err, procgroup.ErrOwnerRunning) {
		return nil, fmt.Errorf("a local cloud already runs in %s (%w): make local-down first", f.workDir, err)
	}
	if err != nil {
		return nil, err
	}
	logPath := f.logFile
	if logPath == "" {
		logPath = filepath.Join(f.workDir, "cloud.log")
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(io.MultiWriter(lf, progressWriter{stdout}), nil))
	fmt.Fprintf(stdout, "edp local: %s — synth, deploy through moto's CloudFormation, start the local runtime (log: %s)\n", stack, logPath)
	if f.job != "" {
		fmt.Fprintf(stdout, "edp local: job %s — its command runs on this machine as the task's process (no image is built)\n", f.job)
	}
	return localcloud.Up(ctx, localcloud.Options{
		Stack: stack, Context: f.context, AssemblyDir: assemblyDir, Speedup: f.speedup, WorkDir: f.workDir,
		ProcessFile: procsPath(f.workDir), Logger: log, JobDir: f.job,
	})
}

// reportOrphans names the processes a sweep stopped.
func reportOrphans(w io.Writer, groups []procgroup.Group) {
	for _, g := range groups {
		fmt.Fprintf(w, "edp local: stopped %s (pid %d), left behind by a runtime that did not stop it\n", g.Name, g.PID)
	}
}

// progressWriter shows the cloud's milestones (a few log messages) as
// plain lines; everything else stays in the log file.
type progressWriter struct{ w io.Writer }

var milestones = map[string]bool{
	"synthesizing the stacks (first build of the CDK app takes 1-2 minutes)": true,
	"starting moto_server": true, "stack deployed": true, "local ECS started": true,
	"emulating a rule's ECS target": true, "local ECS service created": true, "emulating Scheduler schedule": true,
	"evaluating the deployed alarms": true, "Lambda function running locally": true, "alarm state changed": true,
	"schedule fired": true, "scaled": true, "rule target started tasks": true, "rule target failed, event dead-lettered": true,
	"Lambda invocation succeeded": true,
}

func (p progressWriter) Write(b []byte) (int, error) {
	var line struct {
		Msg   string `json:"msg"`
		Level string `json:"level"`
	}
	if json.Unmarshal(b, &line) == nil && (milestones[line.Msg] || line.Level == "ERROR") {
		fmt.Fprintf(p.w, "  %s %s\n", time.Now().Format("15:04:05"), line.Msg)
	}
	return len(b), nil
}

// localRun deploys, uploads the configs, shows progress until every upload
// has a run record and nothing runs, prints the table and stops it all.
func localRun(ctx context.Context, f *localFlags, stdout io.Writer) (err error) {
	dir := f.configs
	switch {
	case dir != "":
	case f.job != "":
		dir = filepath.Join(f.job, names.JobConfigDir)
	default:
		dir = "examples"
	}
	files, err := configFiles(dir)
	if err != nil {
		return err
	}
	cloud, err := startCloud(ctx, f, stdout)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "edp local: stopping tasks, Lambda and moto_server")
		err = errors.Join(err, cloud.Close(context.Background()))
	}()
	c, st := cloud.Clients(), cloud.Stack()
	bucket := st.Outputs[names.OutputBucket]
	uploaded := map[string]time.Time{}
	for _, path := range files {
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		key := names.ConfigPrefix + filepath.Base(path)
		uploaded[key] = time.Now()
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(body))}); err != nil {
			return fmt.Errorf("upload %s: %w", key, err)
		}
		fmt.Fprintf(stdout, "edp local: uploaded s3://%s/%s\n", bucket, key)
	}
	if next := cloud.NextScheduledRun(); len(next) > 0 {
		for name, at := range next {
			fmt.Fprintf(stdout, "edp local: schedule %s fires next in %s (Scheduler clock sped up)\n", name, time.Until(at).Round(time.Second))
		}
	}
	deadline := time.Now().Add(f.timeout)
	// A bounded window of the recent-runs index: one LIST and the new
	// entries per refresh, however many runs the bucket holds.
	recent := &stackview.Recent{API: c.S3, Bucket: bucket}
	var runs []runrecord.Entry
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
		s, err := localcloud.Snapshot(ctx, cloud, recent, 2*len(uploaded)+10)
		if err != nil {
			fmt.Fprintln(stdout, "edp local: progress:", err)
			continue
		}
		runs = s.Runs
		line := fmt.Sprintf("  %s queue %d visible / %d in flight · tasks %d running · runs %d done, %d failed · dlq %d",
			time.Now().Format("15:04:05"), s.Queue.Visible, s.Queue.InFlight, s.Running, s.Succeeded, s.Failed, s.DLQ.Visible)
		if why := localWhyWaits(cloud, s); why != "" {
			line += " · waiting: " + why
		}
		fmt.Fprintln(stdout, line)
		if s.Settled(uploaded) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not every upload has a run record after %s", f.timeout)
		}
	}
	dlq, err := stackview.PeekDLQ(ctx, c.SQS, st.Outputs[names.OutputDLQURL])
	if err != nil {
		return err
	}
	recs, err := uploadRecords(ctx, c.S3, bucket, runs, uploaded)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	stackview.WriteTable(stdout, recs, uploaded, dlq)
	// What the stack's alert topic would have sent (e-mail stays outside
	// the local cloud).
	for _, a := range cloud.Alerts() {
		fmt.Fprintf(stdout, "alert: %s %s → %s (%s)\n", a.StateChangeTime, a.AlarmName, a.NewStateValue, a.AlarmDescription)
	}
	return nil
}

// localWhyWaits says why visible work waits in a local cloud run in this
// process (stackview.WhyWaits), from the stack's template and the
// runtime's status.
func localWhyWaits(cloud *localcloud.Cloud, s localcloud.Status) string {
	st := cloud.Stack()
	f := stackview.WaitFacts{Queue: s.Queue, Running: s.Running, Starting: s.Starting}
	f.Backlog, f.HasBacklog = stackview.BacklogAlarm(st)
	now := time.Now()
	if sched, ok := stackScheduleOf(st); ok {
		f.Schedule = sched.String()
		if next, ok := sched.Next(now); ok {
			f.NextFire, f.HasNextFire = next.Sub(now), true
		}
	}
	rs := cloud.Status()
	localFacts(&f, rs, st, now)
	for _, d := range rs.Desired {
		f.Desired += d
		f.HasDesired = true
	}
	for _, a := range rs.Alarms {
		if f.HasBacklog && a.Name == st.Physical[f.Backlog.LogicalID] {
			f.BacklogState = a.State
		}
	}
	return stackview.WhyWaits(stackview.DetectArch(st), f)
}

// uploadRecords reads the record of the newest run of each uploaded key:
// one GET per upload.
func uploadRecords(ctx context.Context, api stackview.Objects, bucket string, runs []runrecord.Entry, uploaded map[string]time.Time) ([]runrecord.Record, error) {
	var out []runrecord.Record
	seen := map[string]bool{}
	for _, e := range runs { // newest first
		if _, ok := uploaded[e.Key]; !ok || seen[e.Key] || e.Status == runrecord.StatusRunning {
			continue
		}
		seen[e.Key] = true
		r, err := stackview.RecordOf(ctx, api, bucket, e.RunID)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source.Key < out[j].Source.Key })
	return out, nil
}

// configFiles lists the configs to upload from dir.
func configFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("configs: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || !names.IsConfigKey(names.ConfigPrefix+e.Name()) {
			continue
		}
		out = append(out, filepath.Join(dir, e.Name()))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no .yaml, .yml or .json config in %s", dir)
	}
	return out, nil
}

// state is what `local up` leaves for `local down`, `smoke -local` and
// users: where the local cloud is. What the runtime started is recorded
// apart, as it starts, in procsPath.
type state struct {
	PID int `json:"pid"`
	// Start is the runtime's start time (procgroup.Process), so `down`
	// never signals a reused PID.
	Start       string            `json:"start,omitempty"`
	Stack       string            `json:"stack"`
	Endpoint    string            `json:"endpoint"`
	ECSEndpoint string            `json:"ecs_endpoint"`
	Speedup     float64           `json:"speedup"`
	Outputs     map[string]string `json:"outputs"`
}

func statePath(workDir string) string { return filepath.Join(workDir, "state.json") }

// procsPath is the procgroup registry of the runtime in workDir: every
// process it has running, so `down` can stop them whatever happened to it.
func procsPath(workDir string) string { return filepath.Join(workDir, "procs.json") }

func (s state) runtime() procgroup.Process { return procgroup.Process{PID: s.PID, Start: s.Start} }

// localUp runs the local cloud in the foreground until SIGINT, SIGTERM or
// SIGHUP.
func localUp(ctx context.Context, f *localFlags, stdout io.Writer) (err error) {
	cloud, err := startCloud(ctx, f, stdout)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cloud.Close(context.Background()), os.Remove(statePath(f.workDir))) }()
	self := procgroup.Self()
	st := state{PID: self.PID, Start: self.Start, Stack: cloud.Stack().Name, Endpoint: cloud.Endpoint(), ECSEndpoint: cloud.ECSEndpoint(), Speedup: cloud.Speedup(), Outputs: cloud.Stack().Outputs}
	raw, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath(f.workDir), raw, 0o644); err != nil {
		return err
	}
	printUsage(stdout, st)
	<-ctx.Done()
	fmt.Fprintln(stdout, "edp local: stopping")
	return nil
}

func printUsage(w io.Writer, st state) {
	b := st.Outputs[names.OutputBucket]
	fmt.Fprintf(w, `
The local cloud is up: %s, deployed through moto's CloudFormation.

  export AWS_ENDPOINT_URL=%s AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s
  aws s3 cp examples/random-forest.yaml s3://%s/configs/my-run.yaml   # triggers a run
  aws s3 ls s3://%s/runs/                                             # run records
  aws sqs get-queue-attributes --queue-url %s --attribute-names All     # the DLQ

Task and Lambda logs: .edp-local/logs/. Stop it with: make local-down
`, st.Stack, st.Endpoint, localcloud.AccessKeyID, localcloud.SecretAccessKey, localcloud.Region, b, b, st.Outputs[names.OutputDLQURL])
}

// localUpDetached starts `edp local up` in the background (its own
// session), waits until it has written its state and returns.
func localUpDetached(ctx context.Context, f *localFlags, args []string, stdout io.Writer) error {
	if st, err := readState(f.workDir); err == nil && st.runtime().Running() {
		return fmt.Errorf("a local cloud is already up (pid %d, %s): make local-down first", st.PID, st.Stack)
	}
	_ = os.Remove(statePath(f.workDir))
	if err := os.MkdirAll(f.workDir, 0o755); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var rest []string
	for _, a := range args {
		if a != "-detach" && a != "--detach" && a != "-detach=true" {
			rest = append(rest, a)
		}
	}
	out, err := os.Create(filepath.Join(f.workDir, "up.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(self, append([]string{"local", "up"}, rest...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), envName("detach")+"=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	fmt.Fprintf(stdout, "edp local: starting in the background (pid %d, output in %s)\n", cmd.Process.Pid, out.Name())
	for {
		if st, err := readState(f.workDir); err == nil {
			printUsage(stdout, st)
			return nil
		}
		select {
		case err := <-done:
			b, _ := os.ReadFile(out.Name())
			return fmt.Errorf("the local cloud exited during start-up (%v):\n%s", err, b)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func readState(workDir string) (state, error) {
	var st state
	raw, err := os.ReadFile(statePath(workDir))
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(raw, &st)
}

// localDown stops a local cloud in the work dir, whatever happened to it.
// The runtime (named by the state of `local up` and by the process file,
// which `local run` writes too) gets SIGTERM and runtimeGrace to stop what
// it started, as Ctrl-C would; then every process the file still records —
// all of them when the runtime was killed — gets SIGTERM, and SIGKILL after
// orphanGrace. Each stopped process is reported.
func localDown(ctx context.Context, f *localFlags, stdout io.Writer) error {
	st, stErr := readState(f.workDir)
	if stErr != nil && !errors.Is(stErr, os.ErrNotExist) {
		return stErr
	}
	reg, regErr := procgroup.Read(procsPath(f.workDir))
	if regErr != nil && !errors.Is(regErr, os.ErrNotExist) {
		return regErr
	}
	var runtimes []procgroup.Process
	if stErr == nil {
		runtimes = append(runtimes, st.runtime())
	}
	if regErr == nil && (stErr != nil || reg.Owner.PID != st.PID) {
		runtimes = append(runtimes, reg.Owner)
	}
	if len(runtimes) == 0 {
		fmt.Fprintln(stdout, "edp local: no local cloud is up")
		return nil
	}
	name := "the local cloud"
	if stErr == nil {
		name = st.Stack
	}
	for _, rt := range runtimes {
		stopped, err := procgroup.Stop(ctx, rt, runtimeGrace)
		switch {
		case err != nil:
			return fmt.Errorf("stop %s (pid %d): %w", name, rt.PID, err)
		case stopped:
			fmt.Fprintf(stdout, "edp local: stopped %s (pid %d)\n", name, rt.PID)
		default:
			fmt.Fprintf(stdout, "edp local: the runtime of %s (pid %d) is gone\n", name, rt.PID)
		}
	}
	left, err := procgroup.Sweep(ctx, procsPath(f.workDir), orphanGrace)
	reportOrphans(stdout, left)
	if err != nil {
		return err
	}
	if err := os.Remove(statePath(f.workDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
