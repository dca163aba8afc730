package localcloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"github.com/edp-pipelines/edp/internal/localcloud/alarms"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/procgroup"
)

// Options configure Up. Every field works at its zero value.
type Options struct {
	// RepoRoot is the repository root. Default ".".
	RepoRoot string
	// Stack is the stack to deploy (names.Stack*). Default EdpOneOff.
	Stack string
	// Context overrides cdk.json's context for the synth (-c key=value).
	Context map[string]string
	// AssemblyDir, when set, is a synthesized cloud assembly to deploy
	// as is (no synth).
	AssemblyDir string
	// Speedup compresses time: a CloudWatch period, Scheduler time and the
	// consumer's 20 s long poll all run Speedup times faster. Default 30.
	Speedup float64
	// WorkDir holds the local binaries and the task and Lambda logs.
	// Default RepoRoot/.edp-local.
	WorkDir string
	// TaskEndpoint, when set, is the AWS endpoint given to tasks and the
	// Lambda instead of the emulator's own (a fault proxy in tests).
	TaskEndpoint string
	// Moto, when set, is a running emulator to use (it is reset first);
	// default: start one, stopped by Close.
	Moto *motoserver.Server
	// ProcessFile, when set, is a procgroup registry file: every process
	// the cloud starts (moto_server, each task, each Lambda environment)
	// is recorded there as it starts and removed once it has ended, so
	// that procgroup.Sweep can stop them whatever happened to this
	// process. Up refuses a file whose owner still runs or that names live
	// processes (sweep it first). Default: nothing is recorded.
	ProcessFile string
	// JobDir, when set, is a command job's directory (docs/jobs.md): the
	// synth gets it as edp:jobDir, and every task runs the job's command
	// on this machine, from this directory, with its work directories
	// under WorkDir/work.
	JobDir string
	// TaskEnv is added to every task's environment, over the template's
	// (tests: a PATH with the interpreter a job needs). Default none.
	TaskEnv map[string]string
	// Logger receives progress; default discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.RepoRoot == "" {
		o.RepoRoot = "."
	}
	if o.Stack == "" {
		o.Stack = names.StackOneOff
	}
	if o.Speedup <= 0 {
		o.Speedup = 30
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join(o.RepoRoot, ".edp-local")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Cloud is a running local cloud: moto with the deployed stack, the local
// ECS, and the runners of rules, schedules, alarms and the Lambda.
type Cloud struct {
	opts    Options
	moto    *motoserver.Server
	ownMoto bool
	clients *Clients
	stack   *Stack
	ecs     *ecsemu.Emulator
	ecsURL  string
	procs   *procgroup.Registry // nil unless Options.ProcessFile
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closers []func() error
	// schedules are the deployed schedules being emulated.
	schedules []deployedSchedule
	// alarms evaluates the deployed alarms, when the stack has any, with
	// the metrics of source.
	alarms *alarms.Loop
	source *cloudSource
	// functions are the stack's Lambda functions running locally, by name.
	functions map[string]*deployedFunction
	// invocations are the functions' and the rules' invocations.
	invocations invocationLog
	// alerts are the notifications of topics without a Lambda subscriber.
	alertsMu sync.Mutex
	alerts   []alarms.AlarmStateChange
	// Started is when the runtime began.
	Started time.Time
}

// Up starts the emulator, synthesizes, deploys opts.Stack and starts the
// runtime for what the stack defines. Close ends all of it.
func Up(ctx context.Context, opts Options) (_ *Cloud, err error) {
	opts.setDefaults()
	log := opts.Logger
	c := &Cloud{opts: opts, moto: opts.Moto}
	defer func() {
		if err != nil {
			_ = c.Close(context.Background())
		}
	}()
	if err := os.MkdirAll(filepath.Join(opts.WorkDir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if opts.ProcessFile != "" {
		if c.procs, err = procgroup.New(opts.ProcessFile); err != nil {
			return nil, err
		}
	}
	jobEnv, err := opts.jobEnv()
	if err != nil {
		return nil, err
	}
	asm := opts.AssemblyDir
	if asm == "" {
		if asm, err = Synthesize(ctx, SynthOptions{RepoRoot: opts.RepoRoot, Context: opts.Context, Logger: log}); err != nil {
			return nil, err
		}
	}
	bins, err := buildBinaries(ctx, opts.RepoRoot, filepath.Join(opts.WorkDir, "bin"), log)
	if err != nil {
		return nil, err
	}
	if c.moto == nil {
		log.Info("starting moto_server")
		if c.moto, err = motoserver.StartWith(ctx, motoserver.Options{Track: c.tracker("moto_server")}); err != nil {
			return nil, err
		}
		c.ownMoto = true
	} else if err := c.moto.Reset(ctx); err != nil {
		return nil, err
	}
	if c.clients, err = NewClients(ctx, c.moto.Endpoint); err != nil {
		return nil, err
	}
	log.Info("deploying through moto's CloudFormation", "stack", opts.Stack, "endpoint", c.moto.Endpoint)
	if c.stack, err = Deploy(ctx, c.clients, asm, opts.Stack, DeployOptions{Endpoint: c.moto.Endpoint, Logger: log}); err != nil {
		return nil, err
	}
	taskEndpoint := opts.TaskEndpoint
	if taskEndpoint == "" {
		taskEndpoint = c.moto.Endpoint
	}
	defs, err := c.taskDefinitions(ctx, taskEndpoint)
	if err != nil {
		return nil, err
	}
	cluster, err := c.clusterName()
	if err != nil {
		return nil, err
	}
	c.ecs, err = ecsemu.New(ecsemu.Config{
		Region: Region, AccountID: Account, Cluster: cluster,
		TaskDefinitions: ecsemu.TaskDefinitionsOf(defs...),
		Launcher: &ecsemu.ExecLauncher{
			Entrypoint: []string{bins.consumer},
			BaseEnv:    []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")},
			Output:     c.taskOutput,
			Track:      c.trackTask,
		},
		ExtraEnv: merge(merge(awsEnv(taskEndpoint), jobEnv), opts.TaskEnv),
		// A capped drain task lists its family's tasks (consumer/taskcap):
		// its ECS calls go to the local ECS, the rest through taskEndpoint.
		APIEndpointEnv: []string{"AWS_ENDPOINT_URL_ECS"},
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	if c.ecsURL, err = c.ecs.Start(ctx); err != nil {
		return nil, err
	}
	log.Info("local ECS started", "endpoint", c.ecsURL, "cluster", cluster)

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	c.Started = time.Now()
	if err := c.startRuntime(runCtx, bins, taskEndpoint); err != nil {
		return nil, err
	}
	c.goRun("status", func() error { return c.writeStatus(runCtx) })
	return c, nil
}

// jobEnv is what every task needs to run a command job here: the job's
// directory and a work root on this machine instead of the image's. It
// also passes the job directory to the synth (edp:jobDir), unless -c did.
func (o *Options) jobEnv() (map[string]string, error) {
	if o.JobDir == "" {
		return nil, nil
	}
	dir, err := filepath.Abs(o.JobDir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, names.JobContextFile)); err != nil {
		return nil, fmt.Errorf("job directory %s: %w (a job directory holds %s with its edp:job* keys)", o.JobDir, err, names.JobContextFile)
	}
	work := filepath.Join(o.WorkDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if work, err = filepath.Abs(work); err != nil {
		return nil, err
	}
	if _, set := o.Context["edp:jobDir"]; !set {
		o.Context = merge(o.Context, map[string]string{"edp:jobDir": dir})
	}
	return map[string]string{names.EnvJobDir: dir, names.EnvWorkDir: work}, nil
}

// merge returns a new map of a's entries and b's, b's winning.
func merge(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// Close stops every task (SIGTERM, then SIGKILL after the task
// definition's stop timeout), the runners, the Lambda and the emulator.
func (c *Cloud) Close(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
	}
	var errs []error
	if c.ecs != nil {
		errs = append(errs, c.ecs.Close(ctx))
	}
	c.wg.Wait()
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	if c.ownMoto && c.moto != nil {
		c.moto.Stop()
	}
	if c.procs != nil {
		// Keeps the file when something is still tracked, for a sweep.
		errs = append(errs, c.procs.Close())
	}
	return errors.Join(errs...)
}

// tracker returns the Track hook of a starter: it records each process
// group under name in the process file (a no-op without one).
func (c *Cloud) tracker(name string) func(pid int) func() {
	if c.procs == nil {
		return nil
	}
	return func(pid int) func() {
		untrack, err := c.procs.Track(name, pid)
		if err != nil {
			c.opts.Logger.Error("record process", "name", name, "pid", pid, "error", err)
		}
		return untrack
	}
}

// trackTask is the local ECS's Track hook.
func (c *Cloud) trackTask(spec ecsemu.ProcessSpec, pid int) func() {
	if c.procs == nil {
		return func() {}
	}
	return c.tracker("task " + spec.TaskArn[strings.LastIndex(spec.TaskArn, "/")+1:])(pid)
}

// Endpoint is the AWS endpoint of the local cloud (moto).
func (c *Cloud) Endpoint() string { return c.moto.Endpoint }

// ECSEndpoint is the local ECS API's endpoint.
func (c *Cloud) ECSEndpoint() string { return c.ecsURL }

// Clients are SDK clients for the local cloud.
func (c *Cloud) Clients() *Clients { return c.clients }

// Stack is the deployed stack.
func (c *Cloud) Stack() *Stack { return c.stack }

// Tasks are the local ECS tasks, running and stopped.
func (c *Cloud) Tasks() []ecsemu.TaskInfo { return c.ecs.Tasks() }

// ECS is the local ECS emulator.
func (c *Cloud) ECS() *ecsemu.Emulator { return c.ecs }

// WorkDir is the runtime's work directory (logs, RuntimeStatusFile).
func (c *Cloud) WorkDir() string { return c.opts.WorkDir }

// LongPollSeconds is the long poll a task waits in the local cloud for the
// task definition's wait of seconds: divided by the speed-up, rounded, at
// least 1 s (SQS takes whole seconds), so at the default speed-up of 30 the
// consumer's 20 s long poll lasts 1 s, which is 30 s of model time.
func LongPollSeconds(seconds int, speedup float64) int {
	return max(1, int(math.Round(float64(seconds)/speedup)))
}

// Speedup is the time compression factor.
func (c *Cloud) Speedup() float64 { return c.opts.Speedup }

// go runs f until the cloud closes.
func (c *Cloud) goRun(name string, f func() error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := f(); err != nil {
			c.opts.Logger.Error("runner stopped", "runner", name, "error", err)
		}
	}()
}

func (c *Cloud) taskOutput(spec ecsemu.ProcessSpec) (io.Writer, io.Writer) {
	id := spec.TaskArn[strings.LastIndex(spec.TaskArn, "/")+1:]
	f, err := os.OpenFile(filepath.Join(c.opts.WorkDir, "logs", "task-"+id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil
	}
	return f, f
}

// awsEnv is the environment that points an AWS SDK at the local cloud.
func awsEnv(endpoint string) map[string]string {
	return map[string]string{
		"AWS_ENDPOINT_URL":      endpoint,
		"AWS_ACCESS_KEY_ID":     AccessKeyID,
		"AWS_SECRET_ACCESS_KEY": SecretAccessKey,
		"AWS_REGION":            Region,
		"AWS_DEFAULT_REGION":    Region,
		// No IMDS lookups on a developer machine.
		"AWS_EC2_METADATA_DISABLED": "true",
	}
}

// clusterName is the deployed cluster's name.
func (c *Cloud) clusterName() (string, error) {
	ids := c.stack.Resources("AWS::ECS::Cluster")
	if len(ids) != 1 {
		return "", fmt.Errorf("stack %s has %d ECS clusters, want 1", c.stack.Name, len(ids))
	}
	p := c.stack.Physical[ids[0]]
	return p[strings.LastIndex(p, "/")+1:], nil
}

// taskDefinitions reads the deployed task definitions from moto's ECS:
// command, environment, stop timeout. Queue URLs point at endpoint, and the
// long-poll wait is divided by the speed-up.
func (c *Cloud) taskDefinitions(ctx context.Context, endpoint string) ([]ecsemu.TaskDefinition, error) {
	var out []ecsemu.TaskDefinition
	for _, id := range c.stack.Resources("AWS::ECS::TaskDefinition") {
		arn := c.stack.Physical[id]
		d, err := c.clients.ECS.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(arn)})
		if err != nil {
			return nil, fmt.Errorf("describe task definition %s: %w", arn, err)
		}
		td := d.TaskDefinition
		if len(td.ContainerDefinitions) != 1 {
			return nil, fmt.Errorf("task definition %s has %d containers, want 1", arn, len(td.ContainerDefinitions))
		}
		cd := td.ContainerDefinitions[0]
		env := map[string]string{}
		for _, kv := range cd.Environment {
			env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
		}
		for _, k := range []string{names.EnvQueueURL, names.EnvDLQURL} {
			if v, ok := env[k]; ok {
				env[k] = RewriteURL(v, endpoint)
			}
		}
		if v, err := strconv.Atoi(env[names.EnvWaitSeconds]); err == nil {
			env[names.EnvWaitSeconds] = strconv.Itoa(LongPollSeconds(v, c.opts.Speedup))
		}
		stop := 30 * time.Second
		if cd.StopTimeout != nil {
			stop = time.Duration(*cd.StopTimeout) * time.Second
		}
		out = append(out, ecsemu.TaskDefinition{
			Arn: aws.ToString(td.TaskDefinitionArn), Family: aws.ToString(td.Family),
			Container: aws.ToString(cd.Name), Command: cd.Command, Env: env, StopTimeout: stop,
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("stack %s has no task definition", c.stack.Name)
	}
	return out, nil
}

// binaries are the host builds of the consumer, the Lambda and AWS's
// Lambda Runtime Interface Emulator that runs it.
type binaries struct{ consumer, dispatch, rie string }

// buildBinaries builds the consumer, the alarm-dispatch bootstrap and
// aws-lambda-rie (a tool of go.mod) for this machine (the assets in the
// assembly are for the task's and the function's architecture).
func buildBinaries(ctx context.Context, root, dir string, log *slog.Logger) (binaries, error) {
	// Absolute, since the builds run in root.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, err
	}
	b := binaries{consumer: filepath.Join(dir, "consumer"), dispatch: filepath.Join(dir, "alarm-dispatch", "bootstrap"),
		rie: filepath.Join(dir, "aws-lambda-rie")}
	for _, x := range []struct{ out, pkg, tags string }{
		{b.consumer, "./consumer", ""},
		{b.dispatch, "./lambdas/alarm-dispatch", "lambda.norpc"},
		{b.rie, "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie", ""},
	} {
		args := []string{"build", "-o", x.out}
		if x.tags != "" {
			args = append(args, "-tags", x.tags)
		}
		cmd := exec.CommandContext(ctx, "go", append(args, x.pkg)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("build %s: %w\n%s", x.pkg, err, out)
		}
	}
	log.Info("built local binaries", "consumer", b.consumer, "alarm_dispatch", b.dispatch, "rie", b.rie)
	return b, nil
}

// ecsRunner adapts the local ECS to TaskRunner.
type ecsRunner struct{ e *ecsemu.Emulator }

func (r ecsRunner) RunTask(ctx context.Context, t TaskRequest) ([]string, error) {
	return r.e.RunTask(ctx, ecsemu.RunTaskInput{TaskDefinition: t.TaskDefinition, Count: t.Count, StartedBy: t.StartedBy, Overrides: t.Env})
}

// startRuntime starts a runner for each kind of resource moto cannot run.
func (c *Cloud) startRuntime(ctx context.Context, bins binaries, taskEndpoint string) error {
	log := c.opts.Logger
	run := ecsRunner{c.ecs}
	var rules []string
	for _, id := range c.stack.Resources("AWS::Events::Rule") {
		rules = append(rules, ruleName(c.stack.Physical[id]))
	}
	targets, err := shadowECSTargets(ctx, c.clients, c.moto.Endpoint, rules)
	if err != nil {
		return err
	}
	d := &deliverer{run: run, dlq: c.clients.SQS, speedup: c.opts.Speedup, log: log}
	for _, t := range targets {
		log.Info("emulating a rule's ECS target", "rule", t.rule, "shadow_queue", t.shadowURL, "dead_letter_queue", t.dlqURL)
		c.goRun("rule target "+t.rule, func() error { return c.runRuleTarget(ctx, t, d) })
	}
	for _, id := range c.stack.Resources("AWS::ECS::Service") {
		name := serviceName(c.stack.Physical[id])
		td := c.stack.Properties(id)["TaskDefinition"]
		tdArn, err := c.resolve(td)
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		if err := c.ecs.CreateService(name, tdArn); err != nil {
			return err
		}
		desired := 1 // ECS's default for a new service without DesiredCount
		if v, ok := c.stack.Properties(id)["DesiredCount"].(float64); ok {
			desired = int(v)
		}
		if err := c.ecs.SetDesiredCount(name, desired); err != nil {
			return err
		}
		log.Info("local ECS service created", "service", name, "desired", desired)
	}
	if err := c.startSchedules(ctx, run); err != nil {
		return err
	}
	return c.startAlarms(ctx, bins, taskEndpoint)
}

// resolve turns a Ref or Fn::GetAtt of the template into the deployed
// physical id (for Ref) — the forms edp's templates use for names and ARNs.
func (c *Cloud) resolve(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			if p, ok := c.stack.Physical[ref]; ok {
				return p, nil
			}
			if _, inTemplate := c.stack.Types[ref]; inTemplate {
				// Deployed, but not listed by moto (metric-math alarms, scaling
				// policies): name it as CloudFormation would.
				return c.stack.Name + "-" + ref, nil
			}
			return "", fmt.Errorf("no deployed resource %s", ref)
		}
		if att, ok := x["Fn::GetAtt"].([]any); ok && len(att) == 2 {
			id, _ := att[0].(string)
			p, ok := c.stack.Physical[id]
			if !ok {
				return "", fmt.Errorf("no deployed resource %s", id)
			}
			return attribute(c.stack.Types[id], p, fmt.Sprint(att[1]))
		}
	}
	return "", fmt.Errorf("cannot resolve %v", v)
}

// attribute derives the attributes edp's templates read from a physical id.
func attribute(typ, physical, att string) (string, error) {
	last := physical[strings.LastIndex(physical, "/")+1:]
	switch {
	case typ == "AWS::SQS::Queue" && att == "QueueName":
		return last, nil
	case typ == "AWS::SQS::Queue" && att == "Arn":
		return "arn:aws:sqs:" + Region + ":" + Account + ":" + last, nil
	case typ == "AWS::ECS::Service" && att == "Name":
		return serviceName(physical), nil
	case typ == "AWS::ECS::Cluster" && att == "Arn":
		return "arn:aws:ecs:" + Region + ":" + Account + ":cluster/" + last, nil
	case att == "Arn" && strings.HasPrefix(physical, "arn:"):
		return physical, nil
	}
	return "", fmt.Errorf("attribute %s of %s %s is not known locally", att, typ, physical)
}

func ruleName(physical string) string {
	if i := strings.LastIndex(physical, "/"); i >= 0 {
		return physical[i+1:]
	}
	if i := strings.Index(physical, "|"); i >= 0 {
		return physical[i+1:]
	}
	return physical
}

func serviceName(physical string) string { return physical[strings.LastIndex(physical, "/")+1:] }
