package ecsemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"syscall"
	"time"
)

// Stop codes, as ECS reports them.
const (
	stopCodeUser          = "UserInitiated"
	stopCodeScheduler     = "ServiceSchedulerInitiated"
	stopCodeExited        = "EssentialContainerExited"
	stopCodeFailedToStart = "TaskFailedToStart"
)

// Limits ECS applies to RunTask.
const (
	maxRunCount       = 10
	maxStartedBy      = 128
	maxGroup          = 255
	maxClientToken    = 64
	maxStoppedReason  = 255
	maxRestartBackoff = time.Minute
	// steadyRun is how long a service task must have run for its exit to
	// count as a fresh failure rather than one more in a crash loop.
	steadyRun = time.Minute
)

var startedByPattern = regexp.MustCompile(`^[A-Za-z0-9_/-]+$`)

// task is one task; its fields are guarded by Emulator.mu.
type task struct {
	id, arn, containerArn string
	seq                   int64
	def                   TaskDefinition
	group, startedBy      string
	service               string // name, for service tasks
	launchType            string
	capacityProvider      string
	command               []string
	overrideEnv           map[string]string
	overrides             *taskOverride // as requested, echoed by the API
	tags                  []tag

	lastStatus, desiredStatus                   string
	createdAt, startedAt, stoppingAt, stoppedAt time.Time
	stopCode, stoppedReason                     string
	stopRequested                               bool
	exitCode                                    *int
	proc                                        Process
	protectedUntil                              time.Time // zero: not protected

	done chan struct{} // closed once STOPPED
}

// protected reports whether scale-in protection is in force at now.
func (t *task) protected(now time.Time) bool {
	return !t.protectedUntil.IsZero() && now.Before(t.protectedUntil)
}

// service is one service; its fields are guarded by Emulator.mu.
type service struct {
	name, arn, id string
	def           TaskDefinition
	desired       int
	createdAt     time.Time
	// crashes counts service tasks in a row that exited on their own;
	// replacements wait until notBefore.
	crashes   int
	notBefore time.Time
	// waiting is how many protected tasks the last scale-in had to leave
	// running (logged when it changes).
	waiting int
}

// tokenEntry is what a client token started.
type tokenEntry struct {
	fingerprint string
	arns        []string
}

// normalize fills in a task definition's ARN and family from each other
// and its stop timeout.
func (e *Emulator) normalize(d TaskDefinition) TaskDefinition {
	if d.Family == "" {
		d.Family = familyOf(d.Arn)
	}
	if d.Arn == "" {
		d.Arn = fmt.Sprintf("arn:aws:ecs:%s:%s:task-definition/%s:1", e.cfg.Region, e.cfg.AccountID, d.Family)
	}
	if d.StopTimeout <= 0 {
		d.StopTimeout = DefaultStopTimeout
	}
	return d
}

// launchSpec is what startTasks needs: who asks, for how many tasks, of
// which definition, with which overrides.
type launchSpec struct {
	def                          TaskDefinition
	count                        int
	group, startedBy, service    string
	launchType, capacityProvider string
	command                      []string // nil: the definition's
	overrideEnv                  map[string]string
	overrides                    *taskOverride
	tags                         []tag
}

// runTask is RunTask, for the API and for Go callers: validate, honour the
// client token, start the tasks.
func (e *Emulator) runTask(ctx context.Context, req runRequest) ([]taskView, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := e.checkCluster(req.Cluster); err != nil {
		return nil, err
	}
	if req.TaskDefinition == "" {
		return nil, invalidParameter("TaskDefinition can not be blank.")
	}
	count := 1
	if req.Count != nil {
		count = *req.Count
	}
	if count < 1 || count > maxRunCount {
		return nil, invalidParameter("count must be between 1 and %d, got %d.", maxRunCount, count)
	}
	def, ok := e.cfg.TaskDefinitions(req.TaskDefinition)
	if !ok {
		return nil, &apiError{Type: "ClientException", Message: fmt.Sprintf("Unable to describe task definition %s.", req.TaskDefinition)}
	}
	def = e.normalize(def)
	if req.StartedBy != "" && (len(req.StartedBy) > maxStartedBy || !startedByPattern.MatchString(req.StartedBy)) {
		return nil, invalidParameter("startedBy %q: up to %d letters, numbers, hyphens, forward slashes and underscores are allowed.", req.StartedBy, maxStartedBy)
	}
	if len(req.Group) > maxGroup {
		return nil, invalidParameter("group is longer than %d characters.", maxGroup)
	}
	if len(req.ClientToken) > maxClientToken {
		return nil, invalidParameter("clientToken is longer than %d characters.", maxClientToken)
	}
	spec := launchSpec{
		def: def, count: count, group: req.Group, startedBy: req.StartedBy,
		launchType: req.LaunchType, overrides: req.Overrides, tags: req.Tags,
	}
	if spec.group == "" {
		spec.group = "family:" + def.Family
	}
	if len(req.CapacityProviderStrategy) > 0 {
		spec.capacityProvider = req.CapacityProviderStrategy[0].CapacityProvider
		spec.launchType = "FARGATE"
	}
	if req.Overrides != nil {
		for _, o := range req.Overrides.ContainerOverrides {
			if o.Name == "" {
				return nil, invalidParameter("Container override must name a container.")
			}
			if def.Container != "" && o.Name != def.Container {
				return nil, invalidParameter("Override for container named %s is not a container in the TaskDefinition.", o.Name)
			}
			if o.Command != nil {
				spec.command = slices.Clone(o.Command)
			}
			for _, kv := range o.Environment {
				if spec.overrideEnv == nil {
					spec.overrideEnv = map[string]string{}
				}
				spec.overrideEnv[kv.Name] = kv.Value
			}
		}
	}

	e.runMu.Lock()
	defer e.runMu.Unlock()
	var fingerprint string
	if req.ClientToken != "" {
		fingerprint = fingerprintOf(req)
		e.mu.Lock()
		prev, seen := e.tokens[req.ClientToken]
		var views []taskView
		if seen && prev.fingerprint == fingerprint {
			for _, arn := range prev.arns {
				if t := e.taskLocked(arn); t != nil {
					views = append(views, e.viewLocked(t))
				}
			}
		}
		e.mu.Unlock()
		if seen && prev.fingerprint != fingerprint {
			return nil, &apiError{
				Type:        "ConflictException",
				Message:     "The clientToken is already in use with a different RunTask request.",
				ResourceIDs: slices.Clone(prev.arns),
			}
		}
		if seen {
			e.log.InfoContext(ctx, "run task repeated", "client_token", req.ClientToken, "tasks", len(views))
			return views, nil
		}
	}
	tasks, err := e.startTasks(spec)
	e.mu.Lock()
	defer e.mu.Unlock()
	if req.ClientToken != "" && len(tasks) > 0 {
		entry := tokenEntry{fingerprint: fingerprint}
		for _, t := range tasks {
			entry.arns = append(entry.arns, t.arn)
		}
		e.tokens[req.ClientToken] = entry
	}
	if err != nil {
		return nil, err
	}
	views := make([]taskView, len(tasks))
	for i, t := range tasks {
		views[i] = e.viewLocked(t)
	}
	return views, nil
}

// fingerprintOf is the identity of a RunTask request for its client token:
// everything but the token.
func fingerprintOf(req runRequest) string {
	req.ClientToken = ""
	b, _ := json.Marshal(req) // plain structs: cannot fail
	return string(b)
}

// startTasks creates spec.count tasks and launches their processes. The
// caller holds runMu. A process that fails to start leaves its task
// STOPPED (TaskFailedToStart), as ECS does; the error is for the emulator
// not running.
func (e *Emulator) startTasks(spec launchSpec) ([]*task, error) {
	var started []*task
	for range spec.count {
		e.mu.Lock()
		if e.closed || !e.started {
			e.mu.Unlock()
			return started, &apiError{Type: "ServerException", Message: "The ECS emulator is not running.", status: 500, cause: ErrClosed}
		}
		t := e.newTaskLocked(spec)
		env := e.environmentLocked(t)
		e.mu.Unlock()

		p, err := e.cfg.Launcher.Launch(e.life, ProcessSpec{TaskArn: t.arn, Command: slices.Clone(t.command), Env: env})

		e.mu.Lock()
		now := time.Now()
		if err != nil {
			t.lastStatus, t.desiredStatus = StatusStopped, StatusStopped
			t.stoppedAt = now
			t.stopCode = stopCodeFailedToStart
			t.stoppedReason = truncate("CannotStartContainerError: "+err.Error(), maxStoppedReason)
			e.crashedLocked(t, now)
			close(t.done)
			e.mu.Unlock()
			e.log.Error("task failed to start", "task_arn", t.arn, "family", t.def.Family, "service", t.service, "error", err.Error())
			started = append(started, t)
			e.poke()
			continue
		}
		t.proc, t.lastStatus, t.startedAt = p, StatusRunning, now
		e.wg.Add(1)
		go e.watch(t, p)
		if t.stopRequested { // stopped while it was being launched
			e.wg.Add(1)
			go e.terminate(t, p)
		}
		e.mu.Unlock()
		e.log.Info("task started", "task_arn", t.arn, "family", t.def.Family, "group", t.group,
			"started_by", t.startedBy, "service", t.service, "command", t.command)
		started = append(started, t)
	}
	return started, nil
}

// newTaskLocked registers a PENDING task of spec.
func (e *Emulator) newTaskLocked(spec launchSpec) *task {
	id := randomHex(16)
	e.seq++
	t := &task{
		id:               id,
		arn:              fmt.Sprintf("arn:aws:ecs:%s:%s:task/%s/%s", e.cfg.Region, e.cfg.AccountID, e.cfg.Cluster, id),
		seq:              e.seq,
		def:              spec.def,
		group:            spec.group,
		startedBy:        spec.startedBy,
		service:          spec.service,
		launchType:       spec.launchType,
		capacityProvider: spec.capacityProvider,
		command:          spec.command,
		overrideEnv:      cloneMap(spec.overrideEnv),
		overrides:        spec.overrides,
		tags:             spec.tags,
		lastStatus:       StatusPending,
		desiredStatus:    StatusRunning,
		createdAt:        time.Now(),
		done:             make(chan struct{}),
	}
	t.containerArn = fmt.Sprintf("arn:aws:ecs:%s:%s:container/%s/%s/%s", e.cfg.Region, e.cfg.AccountID, e.cfg.Cluster, id, randomHex(16))
	if t.command == nil {
		t.command = slices.Clone(spec.def.Command)
	}
	e.tasks[id] = t
	e.order = append(e.order, t)
	return t
}

// environmentLocked is the task's environment: the platform's region,
// the task definition's, the overrides', ExtraEnv, the API endpoint under
// the names of APIEndpointEnv, and the agent's and the metadata's URIs.
func (e *Emulator) environmentLocked(t *task) map[string]string {
	env := map[string]string{"AWS_REGION": e.cfg.Region, "AWS_DEFAULT_REGION": e.cfg.Region}
	for _, layer := range []map[string]string{t.def.Env, t.overrideEnv, e.cfg.ExtraEnv} {
		for k, v := range layer {
			env[k] = v
		}
	}
	for _, k := range e.cfg.APIEndpointEnv {
		env[k] = e.endpoint
	}
	env[AgentURIEnv] = e.endpoint + "/agent/" + t.id
	env[MetadataURIEnv] = e.endpoint + "/metadata/v4/" + t.id
	return env
}

// watch records the task's end when its process exits.
func (e *Emulator) watch(t *task, p Process) {
	defer e.wg.Done()
	<-p.Done()
	code := p.ExitCode()
	e.mu.Lock()
	now := time.Now()
	t.lastStatus, t.desiredStatus, t.stoppedAt = StatusStopped, StatusStopped, now
	t.exitCode = &code
	t.protectedUntil = time.Time{}
	if !t.stopRequested {
		t.stopCode, t.stoppedReason = stopCodeExited, "Essential container in task exited"
		e.crashedLocked(t, now)
	}
	stopCode, reason := t.stopCode, t.stoppedReason
	close(t.done)
	e.mu.Unlock()
	e.log.Info("task stopped", "task_arn", t.arn, "family", t.def.Family, "service", t.service,
		"exit_code", code, "stop_code", stopCode, "stopped_reason", reason,
		"ran_ms", now.Sub(t.startedAt).Milliseconds())
	e.poke()
}

// crashedLocked delays the replacement of a service task that ended
// without being asked to, so a task that keeps failing does not make the
// reconcile loop start processes as fast as it can.
func (e *Emulator) crashedLocked(t *task, now time.Time) {
	s, ok := e.services[t.service]
	if !ok {
		return
	}
	if !t.startedAt.IsZero() && now.Sub(t.startedAt) >= steadyRun {
		s.crashes = 0
	}
	s.crashes++
	s.notBefore = now.Add(restartBackoff(s.crashes))
}

// restartBackoff is the wait before replacing the n-th service task in a
// row that exited on its own: 1 s, doubling, at most maxRestartBackoff.
func restartBackoff(n int) time.Duration {
	return min(time.Second<<min(n-1, 10), maxRestartBackoff)
}

// stopLocked asks a task to stop (desired STOPPED) and, once it has a
// process, sends SIGTERM and SIGKILL after the stop timeout. Stopping a
// task twice changes nothing.
func (e *Emulator) stopLocked(t *task, code, reason string) {
	if t.lastStatus == StatusStopped || t.stopRequested {
		return
	}
	t.stopRequested = true
	t.desiredStatus = StatusStopped
	t.stoppingAt = time.Now()
	t.stopCode, t.stoppedReason = code, truncate(reason, maxStoppedReason)
	if t.proc != nil {
		e.wg.Add(1)
		go e.terminate(t, t.proc)
	}
}

// terminate sends SIGTERM and kills the process if it has not exited when
// the task definition's stop timeout has passed.
func (e *Emulator) terminate(t *task, p Process) {
	defer e.wg.Done()
	e.log.Info("stopping task", "task_arn", t.arn, "service", t.service,
		"stop_timeout_ms", t.def.StopTimeout.Milliseconds())
	if err := p.Signal(syscall.SIGTERM); err != nil {
		e.log.Warn("signal task", "task_arn", t.arn, "signal", "SIGTERM", "error", err.Error())
	}
	timer := time.NewTimer(t.def.StopTimeout)
	defer timer.Stop()
	select {
	case <-p.Done():
		return
	case <-timer.C:
	}
	e.log.Warn("task still running after its stop timeout: killing it", "task_arn", t.arn,
		"stop_timeout_ms", t.def.StopTimeout.Milliseconds())
	if err := p.Kill(); err != nil {
		e.log.Error("kill task", "task_arn", t.arn, "error", err.Error())
	}
}

// reconcileLoop runs reconcile whenever something changed, and when a
// protection lapses or a restart delay ends, until Close begins.
func (e *Emulator) reconcileLoop() {
	defer close(e.reconciled)
	for {
		next := e.reconcile()
		var timer *time.Timer
		var due <-chan time.Time
		if !next.IsZero() {
			timer = time.NewTimer(time.Until(next))
			due = timer.C
		}
		select {
		case <-e.life.Done():
		case <-e.wake:
		case <-due:
		}
		if timer != nil {
			timer.Stop()
		}
		if e.life.Err() != nil {
			return
		}
	}
}

// reconcile brings every service to its desired count: it starts missing
// tasks and, on scale-in, stops unprotected tasks (newest first). It
// returns when it wants to look again without being poked (a protection
// lapsing while scale-in waits, a restart delay ending), or zero.
func (e *Emulator) reconcile() time.Time {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	var next time.Time
	later := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	e.mu.Lock()
	names := make([]string, 0, len(e.services))
	for name := range e.services {
		names = append(names, name)
	}
	e.mu.Unlock()
	sort.Strings(names)

	for _, name := range names {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return time.Time{}
		}
		s := e.services[name]
		now := time.Now()
		var active []*task
		for _, t := range e.order {
			if t.service == name && t.desiredStatus == StatusRunning {
				active = append(active, t)
			}
		}
		missing := s.desired - len(active)
		if missing < 0 {
			excess := -missing
			for i := len(active) - 1; i >= 0 && excess > 0; i-- {
				if t := active[i]; !t.protected(now) {
					e.stopLocked(t, stopCodeScheduler, "Scaling activity initiated by (deployment "+s.id+")")
					excess--
				}
			}
			if excess > 0 {
				for _, t := range active {
					if t.protected(now) {
						later(t.protectedUntil)
					}
				}
			}
			if excess != s.waiting && excess > 0 {
				e.log.Info("scale-in waits for protected tasks", "service", name,
					"desired", s.desired, "protected_tasks", excess)
			}
			s.waiting = excess
		} else {
			s.waiting = 0
		}
		if missing > 0 && now.Before(s.notBefore) {
			later(s.notBefore)
			missing = 0
		}
		spec := launchSpec{
			def: s.def, count: missing, group: "service:" + name, startedBy: s.id, service: name,
			launchType: "FARGATE",
		}
		e.mu.Unlock()
		if missing > 0 {
			if _, err := e.startTasks(spec); err != nil {
				return time.Time{}
			}
		}
	}
	return next
}

// countLocked returns the service's running and pending tasks (those
// meant to run).
func (e *Emulator) countLocked(service string) (running, pending int) {
	for _, t := range e.order {
		if t.service != service || t.desiredStatus != StatusRunning {
			continue
		}
		switch t.lastStatus {
		case StatusRunning:
			running++
		case StatusPending:
			pending++
		}
	}
	return running, pending
}

// taskLocked finds a task by ARN or ID.
func (e *Emulator) taskLocked(ref string) *task {
	if t, ok := e.tasks[ref]; ok {
		return t
	}
	for _, t := range e.order {
		if t.arn == ref {
			return t
		}
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	out := make([]byte, n)
	for i := range out {
		d, _ := rand.Int(rand.Reader, big.NewInt(10))
		out[i] = byte('0' + d.Int64())
	}
	return string(out)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
