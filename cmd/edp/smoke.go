package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/sim"
	"github.com/edp-pipelines/edp/internal/smoke"
)

// smokeFlags are the flags of `edp smoke`.
type smokeFlags struct {
	stack, config, workDir, timings string
	local                           bool
	timeout                         time.Duration
}

func newSmokeFlagSet(stderr io.Writer) (*flag.FlagSet, *smokeFlags) {
	f := &smokeFlags{}
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.stack, "stack", "", "stack to check (required): EdpOneOff, EdpAlarmService, EdpAlarmDispatch, EdpCron, or oneoff|alarm-service|alarm-dispatch|cron")
	fs.BoolVar(&f.local, "local", false, "check the local cloud: the one that edp local up runs (<work-dir>/state.json), else one started for the test and stopped after")
	fs.StringVar(&f.config, "config", "examples/random-forest.yaml", "pipeline config to upload (as configs/smoke-<time>-<random>.yaml; it stays in the bucket)")
	fs.DurationVar(&f.timeout, "timeout", 0, "give up waiting for the run after this long; 0: by architecture (AWS: one-off 5m, alarm-* max wait + 5 alarm periods + 3m, cron 30m and refused if the next run is later; local: 2m, alarm-* sped up)")
	fs.StringVar(&f.workDir, "work-dir", ".edp-local", "where edp local up keeps its state (and -local keeps a started cloud's binaries and logs)")
	fs.StringVar(&f.timings, "timings", "", "after a pass, add the run's task start (and for EdpOneOff its delay after the upload) to this calibration `file` for edp simulate -timings (created if missing; docs/choosing.md)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: edp smoke -stack STACK [-local] [-config FILE] [-timeout D] [-work-dir DIR] [-timings FILE]")
		fmt.Fprintln(stderr, "Uploads one config, waits for its run and checks the run record, its artifacts and an empty DLQ.")
		fmt.Fprintln(stderr, "Exit 0: PASS, 1: FAIL (the reason is printed), 2: usage error. Each flag falls back to EDP_<FLAG>.")
		fs.PrintDefaults()
	}
	return fs, f
}

// usageError marks a problem with how a verb was called (exit 2): edp smoke
// and edp simulate.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// cmdSmoke runs `edp smoke`.
func cmdSmoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSmokeFlagSet(stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "edp smoke:", err)
		return 2
	}
	res, err := smokeCommand(ctx, f, fs.Args(), stdout)
	if err == nil && res.Passed() && f.timings != "" {
		if err := recordTimings(f.timings, res); err != nil {
			// The verdict is about the stack: a pass stays a pass.
			fmt.Fprintln(stderr, "edp smoke: warning: -timings:", err)
		} else {
			fmt.Fprintf(stdout, "edp smoke: added the run's timings to %s (edp simulate -timings %s)\n", f.timings, f.timings)
		}
	}
	return smokeExit(res, err, stderr)
}

// recordTimings adds what the run measured to the calibration file.
func recordTimings(path string, res smoke.Result) error {
	if res.Measured == nil {
		return fmt.Errorf("nothing measured: %w", res.MeasureError)
	}
	var c *sim.Calibration
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c, err = sim.ReadCalibration(strings.NewReader(""))
	case err == nil:
		c, err = sim.ReadCalibration(bytes.NewReader(old))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.Add(sim.SampleTaskStart, res.Measured.TaskStart.Seconds())
	if res.Measured.HasEventDelay {
		c.Add(sim.SampleEventDelay, res.Measured.EventDelay.Seconds())
	}
	var b bytes.Buffer
	if err := c.Write(&b); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// smokeExit prints an error and maps the outcome to the exit code.
func smokeExit(res smoke.Result, err error, stderr io.Writer) int {
	var ue usageError
	switch {
	case errors.As(err, &ue) || errors.Is(err, smoke.ErrRefused):
		fmt.Fprintln(stderr, "edp smoke:", err)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "FAIL %s: %v\n", res.Stack, err)
		return 1
	case !res.Passed():
		return 1 // Run printed the verdict with its reasons
	}
	return 0
}

// smokeCommand checks the flags, picks the deployment and runs the test.
func smokeCommand(ctx context.Context, f *smokeFlags, rest []string, stdout io.Writer) (smoke.Result, error) {
	if len(rest) > 0 {
		return smoke.Result{}, usageError{fmt.Errorf("unexpected arguments %q", rest)}
	}
	if f.stack == "" {
		return smoke.Result{}, usageError{errors.New("-stack is required (EdpOneOff, EdpAlarmService, EdpAlarmDispatch, EdpCron, or an architecture name)")}
	}
	stack, err := stackFor(f.stack)
	if err != nil {
		return smoke.Result{}, usageError{err}
	}
	if f.timeout < 0 {
		return smoke.Result{}, usageError{fmt.Errorf("-timeout %s is negative", f.timeout)}
	}
	body, err := os.ReadFile(f.config)
	if err != nil {
		return smoke.Result{Stack: stack}, usageError{fmt.Errorf("-config: %w", err)}
	}
	opts := smoke.Options{Stack: stack, Config: body, ConfigName: filepath.Base(f.config), Timeout: f.timeout, Out: stdout}
	if !f.local {
		return smokeAWS(ctx, opts, f.timings != "")
	}
	if st, err := readState(f.workDir); err == nil && syscall.Kill(st.PID, 0) == nil {
		if st.Stack != stack {
			return smoke.Result{Stack: stack}, usageError{fmt.Errorf("the local cloud up in %s runs %s, not %s: `make local-down`, or pass -stack %s", f.workDir, st.Stack, stack, st.Stack)}
		}
		speedup := st.Speedup
		if speedup <= 0 { // a state written before the field existed
			speedup = localDefaultSpeedup()
		}
		if f.timings != "" {
			opts.ECS = localcloud.LocalECS(st.ECSEndpoint)
		}
		return smokeLocal(ctx, opts, st.Endpoint, st.ECSEndpoint, speedup)
	}
	return smokeOwnCloud(ctx, opts, f.workDir, f.timings != "", stdout)
}

// smokeAWS checks a stack on AWS with the SDK's default configuration
// (credentials, region, profile from the environment).
func smokeAWS(ctx context.Context, opts smoke.Options, measure bool) (smoke.Result, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return smoke.Result{Stack: opts.Stack}, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		return smoke.Result{Stack: opts.Stack}, usageError{errors.New("no AWS region: set AWS_REGION (or a profile's region), or pass -local")}
	}
	opts.Where = "AWS " + cfg.Region
	opts.CFN, opts.S3, opts.SQS = cloudformation.NewFromConfig(cfg), s3.NewFromConfig(cfg), sqs.NewFromConfig(cfg)
	if measure {
		opts.ECS = ecs.NewFromConfig(cfg)
	}
	return smoke.Run(ctx, opts)
}

// smokeLocal checks a stack in a local cloud that runs elsewhere (another
// process, or the test's): its AWS endpoint, and the local ECS endpoint that
// a cron stack's schedule target is started on.
func smokeLocal(ctx context.Context, opts smoke.Options, endpoint, ecsEndpoint string, speedup float64) (smoke.Result, error) {
	trigger := func(ctx context.Context, st *localcloud.Stack) ([]string, error) {
		return localcloud.FireSchedulesAt(ctx, ecsEndpoint, st)
	}
	return runLocalSmoke(ctx, opts, &smoke.Local{Endpoint: endpoint, Speedup: speedup, Trigger: trigger})
}

func runLocalSmoke(ctx context.Context, opts smoke.Options, local *smoke.Local) (smoke.Result, error) {
	c, err := localcloud.NewClients(ctx, local.Endpoint)
	if err != nil {
		return smoke.Result{Stack: opts.Stack}, err
	}
	opts.Local, opts.CFN, opts.S3, opts.SQS = local, c.CFN, c.S3, c.SQS
	return smoke.Run(ctx, opts)
}

// smokeOwnCloud starts a local cloud of the stack (as `edp local up` would,
// with its defaults), checks it and stops it.
func smokeOwnCloud(ctx context.Context, opts smoke.Options, workDir string, measure bool, stdout io.Writer) (smoke.Result, error) {
	_, lf := newLocalFlagSet("up", io.Discard)
	lf.arch, lf.workDir, lf.logFile = opts.Stack, workDir, filepath.Join(workDir, "smoke-cloud.log")
	fmt.Fprintln(stdout, "edp smoke: no local cloud is up; starting one for the test")
	cloud, err := startCloud(ctx, lf, stdout)
	if err != nil {
		return smoke.Result{Stack: opts.Stack}, fmt.Errorf("start the local cloud: %w", err)
	}
	defer func() {
		fmt.Fprintln(stdout, "edp smoke: stopping the local cloud")
		// The verdict is about the stack; a task slow to stop only warrants a note.
		if cerr := cloud.Close(context.WithoutCancel(ctx)); cerr != nil {
			fmt.Fprintln(stdout, "edp smoke: warning: stop the local cloud:", cerr)
		}
	}()
	if measure {
		opts.ECS = localcloud.LocalECS(cloud.ECSEndpoint())
	}
	trigger := func(ctx context.Context, _ *localcloud.Stack) ([]string, error) { return cloud.FireSchedules(ctx) }
	return runLocalSmoke(ctx, opts, &smoke.Local{Endpoint: cloud.Endpoint(), Speedup: cloud.Speedup(), Trigger: trigger})
}

// localDefaultSpeedup is `edp local`'s default -speedup, which a cloud
// described by state.json is assumed to run with (the state does not say).
func localDefaultSpeedup() float64 {
	_, lf := newLocalFlagSet("up", io.Discard)
	return lf.speedup
}
