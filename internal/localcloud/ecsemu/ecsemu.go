// Package ecsemu emulates, on a loopback port, the part of the Amazon ECS
// control plane that edp's programs call, and the ECS agent's task
// scale-in protection endpoint, running every task as a local process.
//
// The alarm-dispatch Lambda and the consumer talk to it unmodified: point
// the SDK's ECS client at the endpoint Start returns (AWS_ENDPOINT_URL_ECS or
// BaseEndpoint, any static credentials; Config.APIEndpointEnv does it for
// the tasks), and every task process finds the agent and its metadata
// through the ECS_AGENT_URI and ECS_CONTAINER_METADATA_URI_V4 it is started
// with.
//
// What is emulated, for one cluster:
//
//   - The ECS JSON API (AWS JSON 1.1, X-Amz-Target
//     AmazonEC2ContainerServiceV20141113.<Op>) at "/": RunTask, ListTasks
//     (what edp's dispatcher and capped drains call), DescribeTasks and
//     StopTask (for operators of a running local cloud). RunTask validates what ECS
//     validates for a Fargate task (count 1..10, launch type or capacity
//     provider strategy but not both, an awsvpc network configuration,
//     container override names, startedBy) and honours clientToken: a repeat
//     with the same parameters returns the same tasks, a repeat with other
//     parameters fails with ConflictException.
//   - Tasks: PENDING while the Launcher starts the process, RUNNING once it
//     runs, STOPPED when it exits (exit code recorded). StopTask, scale-in
//     and Close stop a task the way ECS does: SIGTERM, then SIGKILL once the
//     task definition's stop timeout has passed.
//   - Services (created with CreateService): a reconcile loop keeps the
//     tasks of each service at its desired count (SetDesiredCount, which
//     the local Application Auto Scaling calls in process), replaces tasks that exit on their own (with a growing
//     delay when they keep exiting), and on scale-in stops only tasks
//     without scale-in protection, waiting for protection to be dropped or
//     to expire before it stops the rest.
//   - The agent's task-protection endpoint at
//     /agent/<task-id>/task-protection/v1/state (PUT and GET), with the
//     agent's request and response shapes; like ECS, it refuses tasks that
//     do not belong to a service (TASK_NOT_VALID).
//   - The task metadata endpoint v4's task answer at
//     /metadata/v4/<task-id>/task (GET), which every task finds through the
//     ECS_CONTAINER_METADATA_URI_V4 it is started with: its cluster (ARN,
//     as on Fargate), task ARN, family, revision, statuses and its one
//     container, in the agent's shape.
//
// Not emulated: other clusters, task definition registration (Config
// resolves the deployed ones), placement, capacity shortfalls other than
// the whole cluster's (SetCapacity), deployments, IAM, the container
// metadata and stats endpoints (only /task is served), and every other API
// call — UpdateService, DescribeServices and TagResource among them, which
// nothing of edp calls — answered UnknownOperationException.
// State lives in memory; stopped tasks stay listed until Close.
package ecsemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of Config and of task definitions.
const (
	DefaultRegion    = "us-east-1"
	DefaultAccountID = "123456789012"
	DefaultCluster   = "default"
	// DefaultStopTimeout is the wait between SIGTERM and SIGKILL when the
	// task definition sets none (Fargate's default).
	DefaultStopTimeout = 30 * time.Second
)

// AgentURIEnv is the variable that tells a task where its agent is; the
// emulator sets it in every task's environment.
const AgentURIEnv = "ECS_AGENT_URI"

// MetadataURIEnv is the variable that tells a task where its task metadata
// endpoint v4 is; the emulator sets it in every task's environment.
const MetadataURIEnv = "ECS_CONTAINER_METADATA_URI_V4"

// Task statuses, as ECS reports them in lastStatus and desiredStatus.
const (
	StatusPending = "PENDING"
	StatusRunning = "RUNNING"
	StatusStopped = "STOPPED"
)

// ErrClosed is returned (wrapped) by calls that would start tasks after
// Close has begun.
var ErrClosed = errors.New("ecs emulator closed")

// TaskDefinition is what the emulator needs of a deployed task definition
// with one essential container.
type TaskDefinition struct {
	// Arn is the task definition ARN; default one made from Family
	// (revision 1).
	Arn string
	// Family is the task definition family; default the one in Arn.
	Family string
	// Container is the container's name; container overrides must name it.
	// Empty accepts any name.
	Container string
	// Command is the container's command: the arguments after its
	// entrypoint, unless a RunTask override replaces them.
	Command []string
	// Env is the container's environment.
	Env map[string]string
	// StopTimeout is the wait between SIGTERM and SIGKILL when the task is
	// stopped. Default: DefaultStopTimeout.
	StopTimeout time.Duration
}

// ProcessSpec is one task process to start.
type ProcessSpec struct {
	// TaskArn is the ARN of the task the process runs.
	TaskArn string
	// Command is the argument list after the container's entrypoint.
	Command []string
	// Env is the process's complete environment, each layer over the one
	// before: AWS_REGION and AWS_DEFAULT_REGION (as Fargate sets them), the
	// task definition's, the overrides', Config.ExtraEnv, ECS_AGENT_URI.
	Env map[string]string
}

// Launcher starts task processes. ctx bounds the start only: the process
// runs until it exits or is signalled.
type Launcher interface {
	Launch(ctx context.Context, spec ProcessSpec) (Process, error)
}

// Process is one running task process.
type Process interface {
	// Signal sends sig to the process (the emulator sends SIGTERM).
	Signal(sig os.Signal) error
	// Kill ends the process and everything it started at once.
	Kill() error
	// Done is closed once the process has exited.
	Done() <-chan struct{}
	// ExitCode is the exit status once Done is closed: 128+n for death by
	// signal n, as ECS reports it.
	ExitCode() int
}

// Config configures an Emulator. Fields marked required have no default;
// the others work at their zero value.
type Config struct {
	// Region and AccountID go into the ARNs the emulator makes.
	// Defaults: DefaultRegion, DefaultAccountID.
	Region, AccountID string
	// Cluster is the name of the one cluster; calls naming another cluster
	// (by name or ARN) fail with ClusterNotFoundException. Default:
	// DefaultCluster, which is also what a call without a cluster means.
	Cluster string
	// TaskDefinitions resolves a taskDefinition as callers pass it (ARN,
	// family:revision or family) to the deployed task definition. Required;
	// TaskDefinitionsOf makes one from a list.
	TaskDefinitions func(ref string) (TaskDefinition, bool)
	// Launcher starts the task processes. Required.
	Launcher Launcher
	// ExtraEnv is added to every task's environment, over the task
	// definition's and the overrides' (endpoints and credentials of the
	// local cloud). It may not set ECS_AGENT_URI or
	// ECS_CONTAINER_METADATA_URI_V4.
	ExtraEnv map[string]string
	// APIEndpointEnv names variables the emulator sets, in every task's
	// environment and over ExtraEnv, to its own API endpoint, e.g.
	// AWS_ENDPOINT_URL_ECS: a task's ECS calls (ListTasks) then reach this
	// emulator while its other AWS calls go where ExtraEnv says. Default
	// none.
	APIEndpointEnv []string
	// Logger receives the emulator's logs (use a JSON handler). Default:
	// discard.
	Logger *slog.Logger
}

// withDefaults returns c with every unset optional field set.
func (c Config) withDefaults() Config {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Cluster == "" {
		c.Cluster = DefaultCluster
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// validate reports every problem of c in one error.
func (c Config) validate() error {
	var errs []error
	if c.TaskDefinitions == nil {
		errs = append(errs, errors.New("Config.TaskDefinitions is required"))
	}
	if c.Launcher == nil {
		errs = append(errs, errors.New("Config.Launcher is required"))
	}
	for _, k := range []string{AgentURIEnv, MetadataURIEnv} {
		if _, ok := c.ExtraEnv[k]; ok {
			errs = append(errs, fmt.Errorf("Config.ExtraEnv may not set %s: the emulator sets it per task", k))
		}
		if slices.Contains(c.APIEndpointEnv, k) {
			errs = append(errs, fmt.Errorf("Config.APIEndpointEnv may not name %s: the emulator sets it per task", k))
		}
	}
	if strings.ContainsAny(c.Cluster, "/:") {
		errs = append(errs, fmt.Errorf("Config.Cluster %q: want a name, not an ARN", c.Cluster))
	}
	return errors.Join(errs...)
}

// TaskDefinitionsOf returns a Config.TaskDefinitions that finds one of defs
// by ARN, by family:revision (the end of its ARN) or by family.
func TaskDefinitionsOf(defs ...TaskDefinition) func(ref string) (TaskDefinition, bool) {
	return func(ref string) (TaskDefinition, bool) {
		for _, d := range defs {
			arn, family := d.Arn, d.Family
			if family == "" {
				family = familyOf(arn)
			}
			if ref == arn || ref == family || (arn != "" && strings.HasSuffix(arn, "/"+ref) && strings.HasPrefix(ref, family+":")) {
				return d, true
			}
		}
		return TaskDefinition{}, false
	}
}

// familyOf returns the family of a task definition ARN or family:revision.
func familyOf(ref string) string {
	if i := strings.LastIndex(ref, "task-definition/"); i >= 0 {
		ref = ref[i+len("task-definition/"):]
	}
	family, _, _ := strings.Cut(ref, ":")
	return family
}

// Emulator is the ECS control plane and agent emulator. Create it with New,
// start it with Start and end it with Close; its methods are safe for
// concurrent use.
type Emulator struct {
	cfg        Config
	clusterArn string
	log        *slog.Logger
	handler    http.Handler

	// runMu serializes task starts, so a client token's tasks are recorded
	// before a repeat of the token is looked at, and a service's reconcile
	// sees the tasks the previous one started. It is taken before mu.
	runMu sync.Mutex

	mu       sync.Mutex
	started  bool
	closed   bool
	endpoint string
	tasks    map[string]*task // by task ID
	order    []*task          // in creation order
	seq      int64            // creation counter, for ListTasks tokens
	services map[string]*service
	tokens   map[string]tokenEntry
	// noCapacity makes RunTask start nothing (SetCapacity).
	noCapacity bool

	life       context.Context // ends when Close begins
	endLife    context.CancelFunc
	wake       chan struct{} // pokes the reconcile loop
	reconciled chan struct{} // closed when the reconcile loop has returned
	wg         sync.WaitGroup
	srv        *http.Server
	served     chan struct{}
}

// New validates cfg (after applying defaults) and returns an Emulator that
// is not yet serving.
func New(cfg Config) (*Emulator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("new ecs emulator: %w", err)
	}
	life, end := context.WithCancel(context.Background())
	e := &Emulator{
		cfg:        cfg,
		clusterArn: fmt.Sprintf("arn:aws:ecs:%s:%s:cluster/%s", cfg.Region, cfg.AccountID, cfg.Cluster),
		log:        cfg.Logger.With("component", "ecsemu", "cluster", cfg.Cluster),
		tasks:      map[string]*task{},
		services:   map[string]*service{},
		tokens:     map[string]tokenEntry{},
		life:       life,
		endLife:    end,
		wake:       make(chan struct{}, 1),
		reconciled: make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{$}", e.serveAPI)
	mux.HandleFunc("/agent/{id}/task-protection/v1/state", e.serveAgent)
	mux.HandleFunc("/metadata/v4/{id}/task", e.serveTaskMetadata)
	e.handler = mux
	return e, nil
}

// Start listens on a free loopback port and serves the ECS API at "/", the
// agent endpoints under /agent/ and the task metadata under /metadata/. It returns the endpoint's base URL,
// e.g. http://127.0.0.1:40123. ctx bounds the start only.
func (e *Emulator) Start(ctx context.Context) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("start ecs emulator: %w", err)
	}
	endpoint := "http://" + ln.Addr().String()
	if err := e.begin(endpoint); err != nil {
		_ = ln.Close()
		return "", err
	}
	srv := &http.Server{Handler: e.handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	e.mu.Lock()
	e.srv, e.served = srv, served
	e.mu.Unlock()
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serve", "error", err.Error())
		}
	}()
	e.log.InfoContext(ctx, "ecs emulator listening", "endpoint", endpoint)
	return endpoint, nil
}

// begin records the endpoint tasks are told about and starts the reconcile
// loop. Start calls it once it listens; tests that serve the handler
// without a socket call it directly.
func (e *Emulator) begin(endpoint string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return errors.New("start ecs emulator: already started or closed")
	}
	e.started, e.endpoint = true, endpoint
	go e.reconcileLoop()
	return nil
}

// Close stops every task that still runs (SIGTERM, SIGKILL after its stop
// timeout), waits for them to exit and then stops the server. Task
// processes may call the agent while they stop. If ctx ends first, the
// remaining processes are killed at once and Close returns ctx's error.
func (e *Emulator) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	started := e.started
	e.mu.Unlock()
	e.endLife()
	if started {
		<-e.reconciled
	}
	// runMu waits for a RunTask that is launching processes right now; no
	// task starts after this.
	e.runMu.Lock()
	e.mu.Lock()
	var live []*task
	for _, t := range e.order {
		if t.lastStatus != StatusStopped {
			e.stopLocked(t, stopCodeUser, "Local cloud shut down")
			live = append(live, t)
		}
	}
	e.mu.Unlock()
	e.runMu.Unlock()

	var errs []error
	for i, t := range live {
		select {
		case <-t.done:
			continue
		case <-ctx.Done():
		}
		// Out of time: kill what is left. Every live task has a process,
		// since no launch is under way.
		killed := 0
		for _, r := range live[i:] {
			select {
			case <-r.done:
			default:
				_ = r.proc.Kill()
				killed++
			}
		}
		errs = append(errs, fmt.Errorf("close ecs emulator: %d tasks killed: %w", killed, ctx.Err()))
		break
	}

	e.mu.Lock()
	srv, served := e.srv, e.served
	e.mu.Unlock()
	if srv != nil {
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
			errs = append(errs, fmt.Errorf("close ecs emulator server: %w", err))
		}
		<-served
	}
	if len(errs) == 0 {
		e.wg.Wait()
	}
	return errors.Join(errs...)
}

// TaskInfo is a snapshot of one task.
type TaskInfo struct {
	Arn               string
	TaskDefinitionArn string
	Family            string
	// Group is "family:<family>", "service:<name>" or what RunTask set.
	Group string
	// StartedBy is RunTask's startedBy, or "ecs-svc/…" for service tasks.
	StartedBy string
	// Service is the service's name for service tasks, else empty.
	Service       string
	LastStatus    string
	DesiredStatus string
	// Protected reports scale-in protection in force now; ProtectedUntil is
	// when it lapses.
	Protected      bool
	ProtectedUntil time.Time
	CreatedAt      time.Time
	StartedAt      time.Time // zero until RUNNING
	StoppedAt      time.Time // zero until STOPPED
	StopCode       string
	StoppedReason  string
	// ExitCode is the process's exit code once STOPPED (nil if it never ran).
	ExitCode *int
	// Command is the command the process was started with.
	Command []string
	// OverrideEnv is the environment the RunTask overrides set.
	OverrideEnv map[string]string
}

// Tasks returns a snapshot of every task, in the order they were created.
func (e *Emulator) Tasks() []TaskInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	out := make([]TaskInfo, 0, len(e.order))
	for _, t := range e.order {
		info := TaskInfo{
			Arn:               t.arn,
			TaskDefinitionArn: t.def.Arn,
			Family:            t.def.Family,
			Group:             t.group,
			StartedBy:         t.startedBy,
			Service:           t.service,
			LastStatus:        t.lastStatus,
			DesiredStatus:     t.desiredStatus,
			Protected:         t.protected(now),
			CreatedAt:         t.createdAt,
			StartedAt:         t.startedAt,
			StoppedAt:         t.stoppedAt,
			StopCode:          t.stopCode,
			StoppedReason:     t.stoppedReason,
			Command:           slices.Clone(t.command),
			OverrideEnv:       cloneMap(t.overrideEnv),
		}
		if info.Protected {
			info.ProtectedUntil = t.protectedUntil
		}
		if t.exitCode != nil {
			c := *t.exitCode
			info.ExitCode = &c
		}
		out = append(out, info)
	}
	return out
}

// CreateService adds a service that runs tasks of the task definition
// taskDef (resolved through Config.TaskDefinitions) with a desired count
// of 0, as the deployed stack creates it.
func (e *Emulator) CreateService(name, taskDef string) error {
	def, ok := e.cfg.TaskDefinitions(taskDef)
	if !ok {
		return fmt.Errorf("create service %s: task definition %q not found", name, taskDef)
	}
	if name == "" || strings.ContainsAny(name, "/:") {
		return fmt.Errorf("create service %q: want a name", name)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, dup := e.services[name]; dup {
		return fmt.Errorf("create service %s: already exists", name)
	}
	e.services[name] = &service{
		name:      name,
		arn:       fmt.Sprintf("arn:aws:ecs:%s:%s:service/%s/%s", e.cfg.Region, e.cfg.AccountID, e.cfg.Cluster, name),
		id:        "ecs-svc/" + randomDigits(19),
		def:       e.normalize(def),
		createdAt: time.Now(),
	}
	return nil
}

// SetDesiredCount sets how many tasks the service should run (what
// Application Auto Scaling does); the reconcile loop starts or stops tasks
// to match.
func (e *Emulator) SetDesiredCount(service string, n int) error {
	if n < 0 {
		return fmt.Errorf("set desired count of %s: %d is negative", service, n)
	}
	e.mu.Lock()
	s, ok := e.services[service]
	if ok && s.desired != n {
		e.log.Info("desired count set", "service", service, "from", s.desired, "to", n)
		s.desired = n
	}
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("set desired count of %s: service not found", service)
	}
	e.poke()
	return nil
}

// DesiredCount returns the service's desired count (0 for an unknown one).
func (e *Emulator) DesiredCount(service string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s, ok := e.services[service]; ok {
		return s.desired
	}
	return 0
}

// RunningCount returns how many of the service's tasks run and are meant
// to (lastStatus and desiredStatus RUNNING), as ECS's runningCount.
func (e *Emulator) RunningCount(service string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	running, _ := e.countLocked(service)
	return running
}

// RunTaskInput is a RunTask call made in Go, for the emulated EventBridge
// and Scheduler targets; it takes the same path as the API call.
type RunTaskInput struct {
	// TaskDefinition is an ARN, family:revision or family. Required.
	TaskDefinition string
	// Count is the number of tasks, 1..10; 0 means 1.
	Count int
	// StartedBy and Group are RunTask's; Group defaults to
	// "family:<family>".
	StartedBy, Group string
	// Command overrides the container's command when not nil.
	Command []string
	// Overrides are environment variables set over the task definition's.
	Overrides map[string]string
	// ClientToken makes the call idempotent, as RunTask's clientToken.
	ClientToken string
}

// RunTask starts tasks as the RunTask API would and returns their ARNs.
func (e *Emulator) RunTask(ctx context.Context, in RunTaskInput) ([]string, error) {
	req := runRequest{
		Cluster:        e.cfg.Cluster,
		TaskDefinition: in.TaskDefinition,
		StartedBy:      in.StartedBy,
		Group:          in.Group,
		ClientToken:    in.ClientToken,
	}
	if in.Count != 0 {
		req.Count = &in.Count
	}
	if in.Command != nil || len(in.Overrides) > 0 {
		// An override names its container; the Go caller need not know it.
		o := containerOverride{Name: "main", Command: in.Command}
		if def, ok := e.cfg.TaskDefinitions(in.TaskDefinition); ok && def.Container != "" {
			o.Name = def.Container
		}
		for _, k := range sortedKeys(in.Overrides) {
			o.Environment = append(o.Environment, keyValue{Name: k, Value: in.Overrides[k]})
		}
		req.Overrides = &taskOverride{ContainerOverrides: []containerOverride{o}}
	}
	if f := e.capacityFailures(req); f != nil {
		return nil, fmt.Errorf("run task %s: %d tasks: %w", in.TaskDefinition, len(f), ErrNoCapacity)
	}
	tasks, err := e.runTask(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("run task %s: %w", in.TaskDefinition, err)
	}
	arns := make([]string, len(tasks))
	for i, t := range tasks {
		arns[i] = t.TaskArn
	}
	return arns, nil
}

// poke wakes the reconcile loop.
func (e *Emulator) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
