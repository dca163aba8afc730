// Package settings turns CDK context values into validated, typed settings
// for the edp stacks. It is standard-library only so its rules are tested
// without starting jsii.
//
// Every knob has a documented default (see Defaults and docs/configuration.md);
// FromContext reads each key exactly once through a lookup function and
// returns an error that names the offending key and the allowed values.
package settings

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Context keys. Every key is prefixed with "edp:" so it cannot collide with
// CDK's own feature flags.
const (
	KeyAccount            = "edp:account"
	KeyRegion             = "edp:region"
	KeyRemovalPolicy      = "edp:removalPolicy"
	KeyNoncurrentDays     = "edp:noncurrentVersionDays"
	KeyRetentionDays      = "edp:queueRetentionDays"
	KeyMaxReceiveCount    = "edp:maxReceiveCount"
	KeyVisibilityTimeout  = "edp:visibilityTimeoutSeconds"
	KeyCPU                = "edp:cpu"
	KeyMemory             = "edp:memoryMiB"
	KeyArchitecture       = "edp:architecture"
	KeyLogRetentionDays   = "edp:logRetentionDays"
	KeyNetwork            = "edp:network"
	KeyVpcID              = "edp:vpcId"
	KeyEmptyReceives      = "edp:emptyReceives"
	KeyScaleOutThreshold  = "edp:scaleOutThreshold"
	KeyMaxWaitMinutes     = "edp:maxWaitMinutes"
	KeyMaxTasks           = "edp:maxTasks"
	KeyScalingMode        = "edp:scalingMode"
	KeyBacklogPerTask     = "edp:backlogPerTask"
	KeyScaleInIdleMinutes = "edp:scaleInIdleMinutes"
	KeyMessagesPerTask    = "edp:messagesPerTask"
	KeyCapacityProvider   = "edp:capacityProvider"
	KeySchedule           = "edp:schedule"
	KeyScheduleTimeZone   = "edp:scheduleTimeZone"

	KeyDispatchReservedConcurrency = "edp:dispatchReservedConcurrency"
)

// Network modes.
const (
	NetworkPublic  = "public"  // new VPC, public subnets, no NAT; tasks get a public IP (default)
	NetworkPrivate = "private" // new VPC, isolated subnets, VPC endpoints for every AWS API the tasks use
	NetworkImport  = "import"  // existing VPC looked up by id (needs AWS credentials at synth)
	NetworkDefault = "default" // the account's default VPC, looked up at synth (needs AWS credentials); public subnets
)

// Scaling modes of the alarm-scaled service.
const (
	ScalingStep    = "step"    // step scaling on queue-length and oldest-age alarms (default)
	ScalingBacklog = "backlog" // target tracking on backlog per task, plus step scaling out of zero
)

// Settings are the validated knobs for every stack. The zero value is not
// meaningful: start from Defaults.
type Settings struct {
	Account string // target account; "" = environment-agnostic (CDK_DEFAULT_ACCOUNT at deploy)
	Region  string // target region; "" = environment-agnostic

	RemovalPolicy  string // "retain" (default) keeps bucket and queues on destroy; "destroy" deletes them (dev)
	NoncurrentDays int    // days before non-current object versions expire; default 30

	QueueRetentionDays       int // message retention on queue and DLQ, 1..14; default 14
	MaxReceiveCount          int // receives before redrive to the DLQ, 1..1000; default 3
	VisibilityTimeoutSeconds int // queue visibility timeout, 30..43200; default 300

	CPU              int    // Fargate task CPU units; default 512
	MemoryMiB        int    // Fargate task memory; default 1024 (must fit CPU)
	Architecture     string // "arm64" (default) or "x86_64"
	LogRetentionDays int    // CloudWatch Logs retention; default 30

	Network string // NetworkPublic (default), NetworkPrivate or NetworkImport
	VpcID   string // required with NetworkImport

	EmptyReceives int // drain mode exits after this many empty receives in a row; default 3

	ScaleOutThreshold  int    // N: visible messages that start consumers; default 10
	MaxWaitMinutes     int    // oldest message age that starts consumers below N; default 15
	MaxTasks           int    // upper bound of consumer tasks; default 10
	ScalingMode        string // ScalingStep (default) or ScalingBacklog
	BacklogPerTask     int    // target messages per task in backlog mode; default 10
	ScaleInIdleMinutes int    // minutes of an empty queue before scaling in to 0; default 5
	MessagesPerTask    int    // alarm-dispatch: backlog one started task is expected to drain; default 100
	CapacityProvider   string // "FARGATE" (default) or "FARGATE_SPOT" (x86_64 only) for alarm-dispatch tasks

	// DispatchReservedConcurrency reserves Lambda concurrency for the
	// alarm-dispatch function; 0 (default) reserves none, because a
	// reservation fails the deploy on accounts whose concurrency quota is
	// small. The handler is safe to run concurrently either way.
	DispatchReservedConcurrency int

	Schedule         string // EventBridge Scheduler expression; default "cron(0 2 * * ? *)"
	ScheduleTimeZone string // IANA time zone of the schedule; default "UTC"
}

// Defaults returns the settings used when no context overrides them. They
// match cdk.json.
func Defaults() Settings {
	return Settings{
		RemovalPolicy:            "retain",
		NoncurrentDays:           30,
		QueueRetentionDays:       14,
		MaxReceiveCount:          3,
		VisibilityTimeoutSeconds: 300,
		CPU:                      512,
		MemoryMiB:                1024,
		Architecture:             "arm64",
		LogRetentionDays:         30,
		Network:                  NetworkPublic,
		EmptyReceives:            3,
		ScaleOutThreshold:        10,
		MaxWaitMinutes:           15,
		MaxTasks:                 10,
		ScalingMode:              ScalingStep,
		BacklogPerTask:           10,
		ScaleInIdleMinutes:       5,
		MessagesPerTask:          100,
		CapacityProvider:         "FARGATE",
		Schedule:                 "cron(0 2 * * ? *)",
		ScheduleTimeZone:         "UTC",
	}
}

// Lookup returns the context value for key, or nil when it is not set.
// awscdk's Node().TryGetContext fits after a small adapter.
type Lookup func(key string) any

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid CDK context")

// LogRetentionChoices are the retention periods CloudWatch Logs accepts.
var LogRetentionChoices = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

// fargateMemory lists the memory sizes (MiB) Fargate allows for each CPU value.
var fargateMemory = map[int][]int{
	256:   {512, 1024, 2048},
	512:   rangeStep(1024, 4096, 1024),
	1024:  rangeStep(2048, 8192, 1024),
	2048:  rangeStep(4096, 16384, 1024),
	4096:  rangeStep(8192, 30720, 1024),
	8192:  rangeStep(16384, 61440, 4096),
	16384: rangeStep(32768, 122880, 8192),
}

func rangeStep(lo, hi, step int) []int {
	var out []int
	for v := lo; v <= hi; v += step {
		out = append(out, v)
	}
	return out
}

var (
	accountRe  = regexp.MustCompile(`^[0-9]{12}$`)
	regionRe   = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
	vpcRe      = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	timeZoneRe = regexp.MustCompile(`^(UTC|[A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$`)
)

// FromContext reads every key through get, applies defaults for absent keys
// and validates the result. The first error names its key.
func FromContext(get Lookup) (Settings, error) {
	s := Defaults()
	r := reader{get: get}

	s.Account = r.str(KeyAccount, s.Account, func(v string) bool { return v == "" || accountRe.MatchString(v) }, "a 12-digit AWS account id")
	s.Region = r.str(KeyRegion, s.Region, func(v string) bool { return v == "" || regionRe.MatchString(v) }, "an AWS region name such as eu-west-1")
	s.RemovalPolicy = r.oneOf(KeyRemovalPolicy, s.RemovalPolicy, "retain", "destroy")
	s.NoncurrentDays = r.intIn(KeyNoncurrentDays, s.NoncurrentDays, 1, 3650)
	s.QueueRetentionDays = r.intIn(KeyRetentionDays, s.QueueRetentionDays, 1, 14)
	s.MaxReceiveCount = r.intIn(KeyMaxReceiveCount, s.MaxReceiveCount, 1, 1000)
	s.VisibilityTimeoutSeconds = r.intIn(KeyVisibilityTimeout, s.VisibilityTimeoutSeconds, 30, 43200)
	s.CPU = r.intChoice(KeyCPU, s.CPU, 256, 512, 1024, 2048, 4096, 8192, 16384)
	s.MemoryMiB = r.intIn(KeyMemory, s.MemoryMiB, 512, 122880)
	s.Architecture = r.oneOf(KeyArchitecture, s.Architecture, "arm64", "x86_64")
	s.LogRetentionDays = r.intChoice(KeyLogRetentionDays, s.LogRetentionDays, LogRetentionChoices...)
	s.Network = r.oneOf(KeyNetwork, s.Network, NetworkPublic, NetworkPrivate, NetworkImport, NetworkDefault)
	s.VpcID = r.str(KeyVpcID, s.VpcID, func(v string) bool { return v == "" || vpcRe.MatchString(v) }, "a VPC id such as vpc-0123456789abcdef0")
	s.EmptyReceives = r.intIn(KeyEmptyReceives, s.EmptyReceives, 1, 100)
	s.ScaleOutThreshold = r.intIn(KeyScaleOutThreshold, s.ScaleOutThreshold, 1, 100000)
	s.MaxWaitMinutes = r.intIn(KeyMaxWaitMinutes, s.MaxWaitMinutes, 1, 14*24*60)
	s.MaxTasks = r.intIn(KeyMaxTasks, s.MaxTasks, 1, 1000)
	s.ScalingMode = r.oneOf(KeyScalingMode, s.ScalingMode, ScalingStep, ScalingBacklog)
	s.BacklogPerTask = r.intIn(KeyBacklogPerTask, s.BacklogPerTask, 1, 100000)
	s.ScaleInIdleMinutes = r.intIn(KeyScaleInIdleMinutes, s.ScaleInIdleMinutes, 1, 60)
	s.MessagesPerTask = r.intIn(KeyMessagesPerTask, s.MessagesPerTask, 1, 100000)
	s.CapacityProvider = r.oneOf(KeyCapacityProvider, s.CapacityProvider, "FARGATE", "FARGATE_SPOT")
	s.DispatchReservedConcurrency = r.intIn(KeyDispatchReservedConcurrency, s.DispatchReservedConcurrency, 0, 1000)
	s.Schedule = r.checked(KeySchedule, s.Schedule, ValidateSchedule,
		`an EventBridge Scheduler expression: "cron(min hour day-of-month month day-of-week year)", "rate(N minutes|hours|days)" or "at(yyyy-mm-ddThh:mm:ss)"`)
	s.ScheduleTimeZone = r.str(KeyScheduleTimeZone, s.ScheduleTimeZone, timeZoneRe.MatchString, `an IANA time zone such as "UTC" or "Europe/Berlin"`)
	if r.err != nil {
		return Settings{}, r.err
	}
	if err := s.crossCheck(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// crossCheck validates rules that involve more than one key.
func (s Settings) crossCheck() error {
	allowed := fargateMemory[s.CPU]
	if !containsInt(allowed, s.MemoryMiB) {
		return fmt.Errorf("%w: context key %q: %d MiB does not fit %s=%d; allowed: %s",
			ErrInvalid, KeyMemory, s.MemoryMiB, KeyCPU, s.CPU, joinInts(allowed))
	}
	if s.Network == NetworkImport && s.VpcID == "" {
		return fmt.Errorf("%w: context key %q is required when %s=%s", ErrInvalid, KeyVpcID, KeyNetwork, NetworkImport)
	}
	if s.Network != NetworkImport && s.VpcID != "" {
		return fmt.Errorf("%w: context key %q is only used with %s=%s (got %s=%s)", ErrInvalid, KeyVpcID, KeyNetwork, NetworkImport, KeyNetwork, s.Network)
	}
	// Fargate Spot runs Linux X86_64 tasks only: an ARM64 task started on
	// FARGATE_SPOT is refused by ECS at run time, long after the deploy.
	if s.CapacityProvider == "FARGATE_SPOT" && s.Architecture != "x86_64" {
		return fmt.Errorf("%w: context keys %q and %q: %s=%s cannot run on %s=FARGATE_SPOT (Fargate Spot supports X86_64 tasks only); set %s=x86_64 or %s=FARGATE",
			ErrInvalid, KeyCapacityProvider, KeyArchitecture, KeyArchitecture, s.Architecture, KeyCapacityProvider, KeyArchitecture, KeyCapacityProvider)
	}
	// A backlog older than the retention period is deleted by SQS: the
	// oldest-age trigger must fire well before that.
	if limit := s.QueueRetentionDays * 24 * 60 / 2; s.MaxWaitMinutes > limit {
		return fmt.Errorf("%w: context key %q: %d minutes must be at most half of %s (%d minutes), or waiting messages may expire",
			ErrInvalid, KeyMaxWaitMinutes, s.MaxWaitMinutes, KeyRetentionDays, limit)
	}
	return nil
}

// reader keeps the first error, so FromContext reads linearly.
type reader struct {
	get Lookup
	err error
}

func (r *reader) fail(key string, got any, want string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: context key %q: must be %s, got %s", ErrInvalid, key, want, show(got))
	}
}

func (r *reader) raw(key string) (any, bool) {
	v := r.get(key)
	if v == nil {
		return nil, false
	}
	return v, true
}

func (r *reader) str(key, def string, ok func(string) bool, want string) string {
	v, set := r.raw(key)
	if !set {
		return def
	}
	s, isStr := v.(string)
	if !isStr || !ok(strings.TrimSpace(s)) {
		r.fail(key, v, want)
		return def
	}
	return strings.TrimSpace(s)
}

// checked is str for values whose validator explains what is wrong: its
// reason follows the usual "must be ..., got ..." message.
func (r *reader) checked(key, def string, validate func(string) error, want string) string {
	var reason error
	first := r.err == nil
	v := r.str(key, def, func(s string) bool { reason = validate(s); return reason == nil }, want)
	if first && reason != nil {
		r.err = fmt.Errorf("%w: %w", r.err, reason)
	}
	return v
}

func (r *reader) oneOf(key, def string, allowed ...string) string {
	want := "one of " + strings.Join(quoteAll(allowed), ", ")
	return r.str(key, def, func(v string) bool { return containsStr(allowed, v) }, want)
}

func (r *reader) integer(key string, def int, want string) (int, bool) {
	v, set := r.raw(key)
	if !set {
		return def, true
	}
	switch x := v.(type) {
	case float64: // JSON numbers from cdk.json
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return int(x), true
		}
	case int:
		return x, true
	case string: // -c key=value on the command line
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, true
		}
	}
	r.fail(key, v, want)
	return def, false
}

func (r *reader) intIn(key string, def, lo, hi int) int {
	want := fmt.Sprintf("an integer from %d to %d", lo, hi)
	n, ok := r.integer(key, def, want)
	if ok && (n < lo || n > hi) {
		r.fail(key, n, want)
		return def
	}
	return n
}

func (r *reader) intChoice(key string, def int, allowed ...int) int {
	want := "one of " + joinInts(allowed)
	n, ok := r.integer(key, def, want)
	if ok && !containsInt(allowed, n) {
		r.fail(key, n, want)
		return def
	}
	return n
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	default:
		return fmt.Sprintf("%v (%T)", v, v)
	}
}

func containsStr(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strconv.Quote(s)
	}
	return out
}

func joinInts(list []int) string {
	s := append([]int(nil), list...)
	sort.Ints(s)
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// Keys lists every context key FromContext reads, sorted.
func Keys() []string {
	keys := []string{KeyAccount, KeyRegion, KeyRemovalPolicy, KeyNoncurrentDays, KeyRetentionDays, KeyMaxReceiveCount,
		KeyVisibilityTimeout, KeyCPU, KeyMemory, KeyArchitecture, KeyLogRetentionDays, KeyNetwork, KeyVpcID,
		KeyEmptyReceives, KeyScaleOutThreshold, KeyMaxWaitMinutes, KeyMaxTasks, KeyScalingMode, KeyBacklogPerTask,
		KeyScaleInIdleMinutes, KeyMessagesPerTask, KeyCapacityProvider, KeySchedule, KeyScheduleTimeZone,
		KeyDispatchReservedConcurrency}
	sort.Strings(keys)
	return keys
}
