package alarms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scaler is the capacity of the one scalable target the template's
// policies scale (the ECS service's desired count).
type Scaler interface {
	Desired(ctx context.Context) (int, error)
	SetDesired(ctx context.Context, n int) error
}

// Notifier delivers an alarm's state change to an SNS topic. topicRef is
// the alarm action resolved by the Resolver (for a Ref to an AWS::SNS::Topic:
// the topic ARN, which is what CloudFormation's Ref returns).
type Notifier interface {
	Notify(ctx context.Context, topicRef string, change AlarmStateChange) error
}

// Config configures a Loop. Template is required; Source, Scaler and
// Notifier are required as soon as the template needs them.
type Config struct {
	// Template is the deployed CloudFormation template (decoded JSON). Its
	// alarms and Application Auto Scaling resources are what the Loop runs.
	Template map[string]any
	// Resolve resolves intrinsics of the template to physical values.
	Resolve Resolver
	// Source supplies the metrics' data points.
	Source Source
	// Scaler is the scalable target's capacity.
	Scaler Scaler
	// Notifier receives notifications of alarms with SNS topic actions.
	Notifier Notifier
	// StateChanged, when set, receives every alarm's state change, as
	// CloudWatch sends one to the default event bus ("CloudWatch Alarm
	// State Change"), whatever the alarm's actions.
	StateChanged func(ctx context.Context, change AlarmStateChange)
	// Tick is the wall-clock length of one CloudWatch minute: a 60 s alarm
	// period is evaluated every Tick, cooldowns count in these minutes.
	// Default time.Minute; e.g. 2 s speeds everything up 30 times.
	Tick time.Duration
	// Region and AccountID go into alarm ARNs and notifications. Defaults:
	// "us-east-1" and "123456789012".
	Region    string
	AccountID string
	// TrackingOutPeriods is how many consecutive one-minute data points
	// above the target a target-tracking policy waits for before scaling
	// out, like the high alarm Application Auto Scaling creates for it.
	// Default 3.
	TrackingOutPeriods int
	// TrackingInPeriods is the same for scaling in (below the target).
	// Default 15.
	TrackingInPeriods int
	// Logger receives state changes and scaling activities. Default: discard.
	Logger *slog.Logger
}

// AlarmStatus is an alarm's state after the last evaluation.
type AlarmStatus struct {
	LogicalID string
	Name      string
	State     State
	Reason    string
	// Value is the last data point, if HasValue.
	Value    float64
	HasValue bool
}

// Loop evaluates a template's alarms and scaling policies once per
// (sped-up) minute and performs their actions:
//
//   - An alarm's SNS topic actions are notified once per state change, with
//     the message CloudWatch sends (AlarmStateChange).
//   - An alarm's step-scaling policy actions are invoked at every evaluation
//     while the alarm is in the action's state, not only on the change:
//     CloudWatch keeps invoking Auto Scaling actions every period the alarm
//     remains in the state (an SNS topic is notified once). The policy's
//     cooldown keeps that from scaling faster than intended.
//   - Target-tracking policies are evaluated every minute on their own
//     metrics (see Config.TrackingOutPeriods).
//
// Cooldowns are tracked per policy, as Application Auto Scaling documents
// them: during a scale-out cooldown, the capacity the initiating scale-out
// added counts toward the next one (a step policy applies its adjustment to
// the capacity before that scale-out, and only a larger result scales); a
// scale-in is blocked during its policy's scale-in cooldown, and any
// scale-out ends scale-in cooldowns. Capacities are clamped to the scalable
// target's MinCapacity and MaxCapacity.
type Loop struct {
	cfg      Config
	log      *slog.Logger
	alarms   []*alarmRun
	tracking []*trackingRun
	target   *ScalableTarget
	// configured stamps AlarmConfigurationUpdatedTimestamp.
	configured time.Time

	stepMu  sync.Mutex
	elapsed time.Duration // model time: one minute per Step
	steps   []*stepRun

	mu       sync.Mutex
	status   []AlarmStatus
	lastStep time.Time // when the last Step ended
}

type alarmRun struct {
	alarm   *Alarm
	actions map[State][]boundAction
	last    Datapoint
}

// boundAction is an alarm action: a topic to notify or a policy to invoke.
type boundAction struct {
	topic  string
	policy *stepRun
}

type stepRun struct {
	spec *StepScaling
	cd   cooldown
}

type trackingRun struct {
	spec         *TargetTracking
	above, below int
	cd           cooldown
}

// cooldown is a policy's cooldown state, in model time.
type cooldown struct {
	outUntil, inUntil time.Duration
	outBase, outSet   int // capacity before and after the last scale-out
	out, in           bool
}

// NewLoop reads the template and checks that everything it needs is
// configured.
func NewLoop(cfg Config) (*Loop, error) {
	if cfg.Template == nil {
		return nil, errors.New("alarms: no template")
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Minute
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "123456789012"
	}
	if cfg.TrackingOutPeriods <= 0 {
		cfg.TrackingOutPeriods = 3
	}
	if cfg.TrackingInPeriods <= 0 {
		cfg.TrackingInPeriods = 15
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tpl, err := decodeTemplate(cfg.Template)
	if err != nil {
		return nil, fmt.Errorf("alarms: %w", err)
	}
	l := &Loop{cfg: cfg, log: log, configured: time.Now()}

	ids := slices.Sorted(maps.Keys(tpl.Resources))
	targets := map[string]*ScalableTarget{}
	for _, id := range ids {
		if r := tpl.Resources[id]; r.Type == typeScalableTarget {
			if targets[id], err = parseScalableTarget(id, r.Properties); err != nil {
				return nil, fmt.Errorf("alarms: %w", err)
			}
		}
	}
	steps := map[string]*stepRun{}
	var stepOrder []*stepRun
	for _, id := range ids {
		r := tpl.Resources[id]
		if r.Type != typeScalingPolicy {
			continue
		}
		p, err := parseScalingPolicy(id, r.Properties, targets, cfg.Resolve)
		if err != nil {
			return nil, fmt.Errorf("alarms: %w", err)
		}
		switch p := p.(type) {
		case *StepScaling:
			steps[id] = &stepRun{spec: p}
			stepOrder = append(stepOrder, steps[id])
		case *TargetTracking:
			l.tracking = append(l.tracking, &trackingRun{spec: p})
			if err := l.useTarget(targets[p.Target]); err != nil {
				return nil, err
			}
		}
	}
	used := map[*stepRun]bool{}
	notifies := false
	for _, id := range ids {
		r := tpl.Resources[id]
		if r.Type != typeAlarm {
			continue
		}
		spec, err := parseAlarm(id, r.Properties, cfg.Resolve)
		if err != nil {
			return nil, fmt.Errorf("alarms: %w", err)
		}
		run := &alarmRun{alarm: NewAlarm(spec), actions: map[State][]boundAction{}}
		for _, st := range []State{StateAlarm, StateOK, StateInsufficientData} {
			for _, a := range spec.Actions(st) {
				b, err := bindAction(a, tpl, steps, stepOrder)
				if err != nil {
					return nil, fmt.Errorf("alarms: alarm %s: %w", id, err)
				}
				if b.policy != nil {
					used[b.policy] = true
					if err := l.useTarget(targets[b.policy.spec.Target]); err != nil {
						return nil, err
					}
				} else {
					notifies = true
				}
				run.actions[st] = append(run.actions[st], b)
			}
		}
		l.alarms = append(l.alarms, run)
	}
	for _, s := range stepOrder {
		if used[s] {
			l.steps = append(l.steps, s)
		}
	}
	switch {
	case (len(l.alarms) > 0 || len(l.tracking) > 0) && cfg.Source == nil:
		return nil, errors.New("alarms: the template has alarms or target tracking: Config.Source is required")
	case l.target != nil && cfg.Scaler == nil:
		return nil, errors.New("alarms: the template's alarms scale a target: Config.Scaler is required")
	case notifies && cfg.Notifier == nil:
		return nil, errors.New("alarms: the template's alarms notify SNS topics: Config.Notifier is required")
	}
	l.snapshot()
	return l, nil
}

// useTarget records the scalable target a policy scales; the Loop drives one.
func (l *Loop) useTarget(t *ScalableTarget) error {
	if l.target != nil && l.target != t {
		return fmt.Errorf("alarms: policies scale two targets (%s, %s); a Loop drives one", l.target.LogicalID, t.LogicalID)
	}
	l.target = t
	return nil
}

// bindAction classifies an alarm action: a Ref to a step-scaling policy or
// an SNS topic of the template, or an ARN of either.
func bindAction(a Action, tpl *template, steps map[string]*stepRun, order []*stepRun) (boundAction, error) {
	if a.Ref != "" {
		switch typ := tpl.Resources[a.Ref].Type; typ {
		case typeScalingPolicy:
			s := steps[a.Ref]
			if s == nil {
				return boundAction{}, fmt.Errorf("action %s is not a step scaling policy", a.Ref)
			}
			return boundAction{policy: s}, nil
		case typeTopic:
			return boundAction{topic: a.Value}, nil
		default:
			return boundAction{}, fmt.Errorf("action %s: %q actions are not supported", a.Ref, typ)
		}
	}
	switch {
	case strings.HasPrefix(a.Value, "arn:aws:sns:"):
		return boundAction{topic: a.Value}, nil
	case strings.Contains(a.Value, ":scalingPolicy:"):
		_, name, _ := strings.Cut(a.Value, ":policyName/")
		for _, s := range order {
			if s.spec.Name == name {
				return boundAction{policy: s}, nil
			}
		}
		return boundAction{}, fmt.Errorf("action %s: no step scaling policy named %q in the template", a.Value, name)
	}
	return boundAction{}, fmt.Errorf("action %s is not supported (SNS topics and step scaling policies are)", a.Value)
}

// Status returns every alarm's state after the last Step, by logical id.
func (l *Loop) Status() []AlarmStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.status)
}

// LastStep is when the last Step ended (zero before the first): its
// period's data points were read before then, so what happens after it
// counts toward the next period, and the next Step follows about
// Config.Tick later.
func (l *Loop) LastStep() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastStep
}

func (l *Loop) snapshot() {
	st := make([]AlarmStatus, len(l.alarms))
	for i, a := range l.alarms {
		st[i] = AlarmStatus{
			LogicalID: a.alarm.spec.LogicalID, Name: a.alarm.spec.Name,
			State: a.alarm.State(), Reason: a.alarm.Reason(),
			Value: a.last.Value, HasValue: a.last.OK,
		}
	}
	l.mu.Lock()
	l.status = st
	l.mu.Unlock()
}

// Run calls Step every Config.Tick until ctx is done, then returns nil. A
// failed Step is logged and the next one runs as usual.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := l.Step(ctx); err != nil && ctx.Err() == nil {
				l.log.Warn("alarm evaluation failed", "error", err)
			}
		}
	}
}

// Step advances one CloudWatch minute: it evaluates the alarms whose period
// ends now (a 60 s alarm every Step, a 300 s one every fifth), notifies
// topics of state changes, invokes the scaling policies of alarms in their
// action's state, and evaluates target tracking.
//
// An alarm whose metrics cannot be read (a Source error, not missing data)
// is skipped for this period: no data point, no change, no action. Errors
// are joined and returned after everything else ran.
func (l *Loop) Step(ctx context.Context) error {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	l.elapsed += time.Minute
	now := time.Now()
	defer func() {
		l.mu.Lock()
		l.lastStep = time.Now()
		l.mu.Unlock()
	}()
	src := &cachedSource{src: l.cfg.Source, values: map[string]cachedValue{}}
	var errs []error

	type evaluated struct {
		run *alarmRun
		ev  Evaluation
	}
	var evs []evaluated
	for _, a := range l.alarms {
		spec := a.alarm.spec
		if l.elapsed%spec.Period != 0 {
			continue
		}
		v, ok, err := spec.Metrics.Evaluate(ctx, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("alarm %s: %w", spec.Name, err))
			continue
		}
		a.last = Datapoint{Time: now, Value: v, OK: ok}
		ev := a.alarm.Record(a.last)
		if ev.Changed() {
			l.log.Info("alarm state changed", "alarm", spec.Name, "old_state", ev.Old, "new_state", ev.New, "reason", ev.Reason)
		}
		evs = append(evs, evaluated{a, ev})
	}
	for _, e := range evs {
		if !e.ev.Changed() {
			continue
		}
		change := l.stateChange(e.run.alarm.spec, e.ev, now)
		if l.cfg.StateChanged != nil {
			l.cfg.StateChanged(ctx, change)
		}
		for _, b := range e.run.actions[e.ev.New] {
			if b.topic == "" {
				continue
			}
			if err := l.cfg.Notifier.Notify(ctx, b.topic, change); err != nil {
				errs = append(errs, fmt.Errorf("alarm %s: notify %s: %w", change.AlarmName, b.topic, err))
			}
		}
	}
	for _, e := range evs {
		for _, b := range e.run.actions[e.ev.New] {
			if b.policy == nil {
				continue
			}
			if err := l.invokeStep(ctx, b.policy, e.run.alarm.spec, e.ev); err != nil {
				errs = append(errs, fmt.Errorf("alarm %s: policy %s: %w", e.run.alarm.spec.Name, b.policy.spec.Name, err))
			}
		}
	}
	for _, t := range l.tracking {
		if err := l.track(ctx, src, t); err != nil {
			errs = append(errs, fmt.Errorf("target tracking %s: %w", t.spec.Name, err))
		}
	}
	l.snapshot()
	return errors.Join(errs...)
}

// stateChange builds the notification CloudWatch would publish.
func (l *Loop) stateChange(s *AlarmSpec, ev Evaluation, now time.Time) AlarmStateChange {
	return AlarmStateChange{
		AlarmName:                          s.Name,
		AlarmDescription:                   s.Description,
		AWSAccountID:                       l.cfg.AccountID,
		AlarmConfigurationUpdatedTimestamp: formatCloudWatchTime(l.configured),
		NewStateValue:                      ev.New,
		NewStateReason:                     ev.Reason,
		StateChangeTime:                    formatCloudWatchTime(now),
		Region:                             regionName(l.cfg.Region),
		AlarmARN:                           fmt.Sprintf("arn:aws:cloudwatch:%s:%s:alarm:%s", l.cfg.Region, l.cfg.AccountID, s.Name),
		OldStateValue:                      ev.Old,
		OKActions:                          actionValues(s.OKActions),
		AlarmActions:                       actionValues(s.AlarmActions),
		InsufficientDataActions:            actionValues(s.InsufficientDataActions),
		Trigger:                            s.trigger(),
	}
}

// invokeStep runs a step policy once for an alarm in the action's state.
func (l *Loop) invokeStep(ctx context.Context, p *stepRun, alarm *AlarmSpec, ev Evaluation) error {
	cur, err := l.cfg.Scaler.Desired(ctx)
	if err != nil {
		return fmt.Errorf("read desired capacity: %w", err)
	}
	from, cooling := cur, p.cd.out && l.elapsed < p.cd.outUntil
	if cooling {
		// The capacity the initiating scale-out added counts toward this one.
		from = p.cd.outBase
	}
	next, err := p.spec.Desired(from, ev.Values, alarm.Threshold, alarm.Comparison)
	if err != nil {
		return err
	}
	next = l.target.Clamp(next)
	if cooling && next <= cur {
		return nil // only a larger scale-out applies during the cooldown
	}
	return l.scale(ctx, p.spec.Name, &p.cd, cur, next, p.spec.Cooldown, p.spec.Cooldown)
}

// track evaluates a target-tracking policy for this minute.
func (l *Loop) track(ctx context.Context, src Source, t *trackingRun) error {
	v, ok, err := t.spec.Metrics.Evaluate(ctx, src)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		t.above, t.below = 0, 0
		return nil
	case v > t.spec.TargetValue:
		t.above, t.below = t.above+1, 0
	case v < t.spec.TargetValue:
		t.above, t.below = 0, t.below+1
	default:
		t.above, t.below = 0, 0
	}
	outDue := t.above >= l.cfg.TrackingOutPeriods
	inDue := t.below >= l.cfg.TrackingInPeriods && !t.spec.DisableScaleIn
	if !outDue && !inDue {
		return nil
	}
	cur, err := l.cfg.Scaler.Desired(ctx)
	if err != nil {
		return fmt.Errorf("read desired capacity: %w", err)
	}
	next := l.target.Clamp(t.spec.Desired(cur, v))
	if outDue && next > cur && t.cd.out && l.elapsed < t.cd.outUntil && next <= t.cd.outSet {
		return nil // in cooldown, and not a larger scale-out
	}
	if (outDue && next > cur) || (inDue && next < cur) {
		return l.scale(ctx, t.spec.Name, &t.cd, cur, next, t.spec.ScaleOutCooldown, t.spec.ScaleInCooldown)
	}
	return nil
}

// scale sets the capacity from cur to next, honouring and starting cooldowns.
func (l *Loop) scale(ctx context.Context, policy string, cd *cooldown, cur, next int, outCooldown, inCooldown time.Duration) error {
	switch {
	case next == cur:
		return nil
	case next < cur && cd.in && l.elapsed < cd.inUntil:
		l.log.Info("scale-in blocked by cooldown", "policy", policy, "desired", cur, "wanted", next)
		return nil
	}
	if err := l.cfg.Scaler.SetDesired(ctx, next); err != nil {
		return fmt.Errorf("set desired capacity %d: %w", next, err)
	}
	l.log.Info("scaled", "policy", policy, "from", cur, "to", next)
	if next > cur {
		*cd = cooldown{out: true, outUntil: l.elapsed + outCooldown, outBase: cur, outSet: next}
		// A scale-out ends every scale-in cooldown.
		for _, s := range l.steps {
			s.cd.in = false
		}
		for _, t := range l.tracking {
			t.cd.in = false
		}
		return nil
	}
	cd.in, cd.inUntil = true, l.elapsed+inCooldown
	return nil
}

// cachedSource reads each metric once per Step: alarms sharing a metric see
// the same data point, as they would in CloudWatch.
type cachedSource struct {
	src    Source
	values map[string]cachedValue
}

type cachedValue struct {
	v  float64
	ok bool
}

func (c *cachedSource) Value(ctx context.Context, q MetricQuery) (float64, bool, error) {
	k := q.key()
	if cv, hit := c.values[k]; hit {
		return cv.v, cv.ok, nil
	}
	v, ok, err := c.src.Value(ctx, q)
	if err != nil {
		return 0, false, err
	}
	c.values[k] = cachedValue{v, ok}
	return v, ok, nil
}
