// Package settings turns CDK context values into validated, typed settings
// for the edp stacks. It is standard-library only so its rules are tested
// without starting jsii.
//
// Settings follow one idiom: SetDefaults fills every field left at its zero
// value with its documented default (see docs/configuration.md), and Validate
// returns every problem at once, each naming its context key. FromContext is
// the app's entry: it reads each key exactly once through a lookup function
// and validates once.
package settings

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
	// The IANA database inside the binary: edp:scheduleTimeZone is checked
	// the same on machines without a system zoneinfo database (slim CI
	// images, Windows).
	_ "time/tzdata"
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
	KeyAlertEmail         = "edp:alertEmail"
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

	// The job the consumer runs (docs/jobs.md); every key but KeyJob is
	// only used with edp:job=command.
	KeyJob                 = "edp:job"
	KeyJobDir              = "edp:jobDir"
	KeyJobCommand          = "edp:jobCommand"
	KeyJobValidateCommand  = "edp:jobValidateCommand"
	KeyJobMaxConfigBytes   = "edp:jobMaxConfigBytes"
	KeyJobMaxOutputFiles   = "edp:jobMaxOutputFiles"
	KeyJobMaxOutputBytes   = "edp:jobMaxOutputBytes"
	KeyJobTimeoutMinutes   = "edp:jobTimeoutMinutes"
	KeyJobKillGraceSeconds = "edp:jobKillGraceSeconds"
	KeyJobConcurrency      = "edp:jobConcurrency"
	KeyJobReadPrefixes     = "edp:jobReadPrefixes"
	KeyJobReadBuckets      = "edp:jobReadBuckets"
)

// DeadLetterRetentionDays is how long every dead-letter queue keeps a
// message: 14 days, the SQS maximum. A message moved back to its source
// queue keeps its first enqueue time, so the work queue must keep messages
// for less (AWS's guidance: a DLQ's retention longer than its source's), or
// a redriven message could expire at once. edp:queueRetentionDays is
// therefore at most MaxQueueRetentionDays.
const DeadLetterRetentionDays = 14

// MaxQueueRetentionDays is the longest retention edp:queueRetentionDays
// allows: one day less than every dead-letter queue keeps.
const MaxQueueRetentionDays = DeadLetterRetentionDays - 1

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

// Settings are the knobs of every stack. The zero value of a field means its
// default (the comment after each field names it): call SetDefaults, then
// Validate, once — or let FromContext do both for the app's context.
type Settings struct {
	Account string // target account; "" = environment-agnostic (CDK_DEFAULT_ACCOUNT at deploy)
	Region  string // target region; "" = environment-agnostic

	RemovalPolicy  string // "retain" (default) keeps bucket and queues on destroy; "destroy" deletes them (dev)
	NoncurrentDays int    // days before non-current object versions expire; default 30

	QueueRetentionDays       int // message retention of the work queue, 1..MaxQueueRetentionDays; default 7
	MaxReceiveCount          int // receives before redrive to the DLQ, 1..1000; default 3
	VisibilityTimeoutSeconds int // queue visibility timeout, 30..43200; default 300

	CPU              int    // Fargate task CPU units; default 512
	MemoryMiB        int    // Fargate task memory; default 1024 (must fit CPU)
	Architecture     string // "arm64" (default) or "x86_64"
	LogRetentionDays int    // CloudWatch Logs retention, one of LogRetentionChoices; default 30

	Network string // NetworkPublic (default), NetworkPrivate, NetworkImport or NetworkDefault
	VpcID   string // "" (default); required with NetworkImport, rejected with the other modes

	EmptyReceives int // drain mode exits after this many empty receives in a row; default 3

	// AlertEmail is one e-mail address subscribed to each stack's alert
	// topic; "" (default) subscribes none.
	AlertEmail string

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
	ScheduleTimeZone string // IANA time zone name of the schedule, case as in the database; default "UTC"

	// Job is what the consumer runs per message: names.JobIris (default),
	// the built-in trainer, or names.JobCommand, a command of the user's
	// own image (docs/jobs.md). Every Job* field below is only used with
	// names.JobCommand; with names.JobIris each must keep its default.
	Job string
	// JobDir is the job directory: the user's Dockerfile and files, and
	// optionally names.JobContextFile. Relative to the app's working
	// directory or absolute. Required with names.JobCommand.
	JobDir string
	// JobCommand is the argv run per message (never through a shell);
	// required with names.JobCommand. JobValidateCommand, optional, checks
	// a config without running it. Nil: unset.
	JobCommand, JobValidateCommand []string
	JobMaxConfigBytes              int // largest config given to the job; default 1 MiB
	JobMaxOutputFiles              int // most files one run publishes; default 1000
	JobMaxOutputBytes              int // most bytes one run publishes; default 1 GiB (at most the task's 20 GiB ephemeral storage)
	JobTimeoutMinutes              int // a run longer than this is stopped; default 15
	JobKillGraceSeconds            int // from SIGTERM to SIGKILL when a run is stopped; default 10
	JobConcurrency                 int // runs at once per task; default 1
	// JobReadPrefixes are key prefixes of the stack's bucket the job may
	// read; nil means the default ["data/"], an empty list none.
	JobReadPrefixes []string
	// JobReadBuckets are other buckets the job may read (get and list);
	// default none.
	JobReadBuckets []string
}

// Defaults returns the settings used when no context overrides them: the
// zero Settings after SetDefaults. They match cdk.json.
func Defaults() Settings {
	var s Settings
	s.SetDefaults()
	return s
}

// GoMemLimit is the consumer's GOMEMLIMIT for a task of memoryMiB: 90 %,
// leaving the rest for the stacks of goroutines and the OS. The stacks set
// it in the task definition; benchmarks give it to the consumer they start.
func GoMemLimit(memoryMiB int) string { return strconv.Itoa(memoryMiB*9/10) + "MiB" }

// SetDefaults gives every field left at its zero value its default.
func (s *Settings) SetDefaults() {
	for _, r := range rules {
		r.setDefault(s)
	}
}

// Validate returns nil when every setting is allowed, alone and together
// with the others. Otherwise it returns every problem, joined (errors.Join),
// each wrapping ErrInvalid and naming its context key. It does not apply
// defaults: call SetDefaults first.
func (s Settings) Validate() error {
	return s.validate(nil)
}

// Lookup returns the context value for key, or nil when it is not set.
// awscdk's Node().TryGetContext fits after a small adapter.
type Lookup func(key string) any

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid CDK context")

// FromContext reads every key once through get, over the defaults, and
// validates the result once. A value of the wrong type or shape (a word
// where a number belongs) is reported with every other problem, never on
// its own, so one synth names everything that needs fixing.
func FromContext(get Lookup) (Settings, error) {
	var s Settings
	s.SetDefaults()
	unreadable := map[string]error{}
	for _, r := range rules {
		if v := get(r.name()); v != nil {
			if err := r.read(&s, v); err != nil {
				unreadable[r.name()] = err
			}
		}
	}
	if err := s.validate(unreadable); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// validate checks every key, then the rules between keys. A key in
// unreadable is reported with that error instead of being checked (its
// field still holds the default). A rule between keys is skipped when one
// of its keys is already reported: it would only repeat the problem.
func (s Settings) validate(unreadable map[string]error) error {
	var errs []error
	bad := map[string]bool{}
	for _, r := range rules {
		err := unreadable[r.name()]
		if err == nil {
			err = r.check(s)
		}
		if err != nil {
			errs = append(errs, err)
			bad[r.name()] = true
		}
	}
	for _, c := range crossChecks {
		if !slices.ContainsFunc(c.keys, func(k string) bool { return bad[k] }) {
			if err := c.check(s); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// LogRetentionChoices are the retention periods CloudWatch Logs accepts.
var LogRetentionChoices = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var (
	accountRe = regexp.MustCompile(`^[0-9]{12}$`)
	regionRe  = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)
	vpcRe     = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	// zoneNameRe is the shape of an IANA zone name: one to three parts such
	// as "UTC", "Europe/Berlin" or "America/Argentina/Buenos_Aires".
	zoneNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z][A-Za-z0-9_+-]*){0,2}$`)
)

// rules has one entry per context key: its field, its default and what it
// allows. SetDefaults, FromContext, Validate and Keys all read it, so a new
// key is one line here.
var rules = []rule{
	strRule{KeyAccount, func(s *Settings) *string { return &s.Account }, "", "a 12-digit AWS account id", optional(accountRe)},
	strRule{KeyRegion, func(s *Settings) *string { return &s.Region }, "", "an AWS region name such as eu-west-1", optional(regionRe)},
	oneOf(KeyRemovalPolicy, func(s *Settings) *string { return &s.RemovalPolicy }, "retain", "retain", "destroy"),
	intRule{key: KeyNoncurrentDays, field: func(s *Settings) *int { return &s.NoncurrentDays }, def: 30, lo: 1, hi: 3650},
	intRule{key: KeyRetentionDays, field: func(s *Settings) *int { return &s.QueueRetentionDays }, def: 7, lo: 1, hi: MaxQueueRetentionDays,
		why: fmt.Sprintf("dead-letter queues keep messages %d days (the SQS maximum) and a redriven message keeps its first enqueue time, so the work queue must keep them for less", DeadLetterRetentionDays)},
	intRule{key: KeyMaxReceiveCount, field: func(s *Settings) *int { return &s.MaxReceiveCount }, def: 3, lo: 1, hi: 1000},
	intRule{key: KeyVisibilityTimeout, field: func(s *Settings) *int { return &s.VisibilityTimeoutSeconds }, def: 300, lo: 30, hi: 43200},
	intRule{key: KeyCPU, field: func(s *Settings) *int { return &s.CPU }, def: 512, choices: []int{256, 512, 1024, 2048, 4096, 8192, 16384}},
	intRule{key: KeyMemory, field: func(s *Settings) *int { return &s.MemoryMiB }, def: 1024, lo: 512, hi: 122880},
	oneOf(KeyArchitecture, func(s *Settings) *string { return &s.Architecture }, "arm64", "arm64", "x86_64"),
	intRule{key: KeyLogRetentionDays, field: func(s *Settings) *int { return &s.LogRetentionDays }, def: 30, choices: LogRetentionChoices},
	oneOf(KeyNetwork, func(s *Settings) *string { return &s.Network }, NetworkPublic, NetworkPublic, NetworkPrivate, NetworkImport, NetworkDefault),
	strRule{KeyVpcID, func(s *Settings) *string { return &s.VpcID }, "", "a VPC id such as vpc-0123456789abcdef0", optional(vpcRe)},
	intRule{key: KeyEmptyReceives, field: func(s *Settings) *int { return &s.EmptyReceives }, def: 3, lo: 1, hi: 100},
	strRule{KeyAlertEmail, func(s *Settings) *string { return &s.AlertEmail }, "", "one e-mail address such as ops@example.com, or unset for no subscription", alertEmail},
	intRule{key: KeyScaleOutThreshold, field: func(s *Settings) *int { return &s.ScaleOutThreshold }, def: 10, lo: 1, hi: 100000},
	// At most half the longest retention: the rule between the two keys
	// below checks it against the retention actually set.
	intRule{key: KeyMaxWaitMinutes, field: func(s *Settings) *int { return &s.MaxWaitMinutes }, def: 15, lo: 1, hi: MaxQueueRetentionDays * 24 * 60 / 2},
	intRule{key: KeyMaxTasks, field: func(s *Settings) *int { return &s.MaxTasks }, def: 10, lo: 1, hi: 1000},
	oneOf(KeyScalingMode, func(s *Settings) *string { return &s.ScalingMode }, ScalingStep, ScalingStep, ScalingBacklog),
	intRule{key: KeyBacklogPerTask, field: func(s *Settings) *int { return &s.BacklogPerTask }, def: 10, lo: 1, hi: 100000},
	intRule{key: KeyScaleInIdleMinutes, field: func(s *Settings) *int { return &s.ScaleInIdleMinutes }, def: 5, lo: 1, hi: 60},
	intRule{key: KeyMessagesPerTask, field: func(s *Settings) *int { return &s.MessagesPerTask }, def: 100, lo: 1, hi: 100000},
	oneOf(KeyCapacityProvider, func(s *Settings) *string { return &s.CapacityProvider }, "FARGATE", "FARGATE", "FARGATE_SPOT"),
	intRule{key: KeyDispatchReservedConcurrency, field: func(s *Settings) *int { return &s.DispatchReservedConcurrency }, def: 0, lo: 0, hi: 1000},
	strRule{KeySchedule, func(s *Settings) *string { return &s.Schedule }, "cron(0 2 * * ? *)",
		`an EventBridge Scheduler expression: "cron(min hour day-of-month month day-of-week year)", "rate(N minutes|hours|days)" or "at(yyyy-mm-ddThh:mm:ss)"`,
		ValidateSchedule},
	strRule{KeyScheduleTimeZone, func(s *Settings) *string { return &s.ScheduleTimeZone }, "UTC", `an IANA time zone name, exactly as the database spells it, such as "UTC" or "Europe/Berlin"`, ianaZone},

	oneOf(KeyJob, func(s *Settings) *string { return &s.Job }, names.JobIris, names.JobIris, names.JobCommand),
	strRule{KeyJobDir, func(s *Settings) *string { return &s.JobDir }, "", "a directory holding a Dockerfile (relative to the app's working directory, or absolute)", jobDir},
	listRule{KeyJobCommand, func(s *Settings) *[]string { return &s.JobCommand }, nil, commandWant, false, command},
	listRule{KeyJobValidateCommand, func(s *Settings) *[]string { return &s.JobValidateCommand }, nil, commandWant, false, command},
	intRule{key: KeyJobMaxConfigBytes, field: func(s *Settings) *int { return &s.JobMaxConfigBytes }, def: 1 << 20, lo: 1, hi: 16 << 20},
	intRule{key: KeyJobMaxOutputFiles, field: func(s *Settings) *int { return &s.JobMaxOutputFiles }, def: 1000, lo: 1, hi: 100000},
	intRule{key: KeyJobMaxOutputBytes, field: func(s *Settings) *int { return &s.JobMaxOutputBytes }, def: 1 << 30, lo: 1, hi: MaxJobOutputBytes,
		why: "a run's outputs must fit the task's ephemeral storage (20 GiB on Fargate)"},
	intRule{key: KeyJobTimeoutMinutes, field: func(s *Settings) *int { return &s.JobTimeoutMinutes }, def: 15, lo: 1, hi: 720},
	intRule{key: KeyJobKillGraceSeconds, field: func(s *Settings) *int { return &s.JobKillGraceSeconds }, def: 10, lo: 1, hi: 60},
	intRule{key: KeyJobConcurrency, field: func(s *Settings) *int { return &s.JobConcurrency }, def: 1, lo: 1, hi: 64},
	listRule{KeyJobReadPrefixes, func(s *Settings) *[]string { return &s.JobReadPrefixes }, []string{"data/"},
		`a list of key prefixes such as ["data/"] (JSON array or comma-separated), each ending in "/"`, true, readPrefixes},
	listRule{KeyJobReadBuckets, func(s *Settings) *[]string { return &s.JobReadBuckets }, nil,
		`a list of S3 bucket names (JSON array or comma-separated)`, true, readBuckets},
}

// crossCheck is a rule that involves more than one key.
type crossCheck struct {
	keys  []string // the keys the rule reads
	check func(Settings) error
}

var crossChecks = append([]crossCheck{
	{[]string{KeyCPU, KeyMemory}, func(s Settings) error {
		if allowed := fargateMemory[s.CPU]; !slices.Contains(allowed, s.MemoryMiB) {
			return fmt.Errorf("%w: context key %q: %d MiB does not fit %s=%d; allowed: %s",
				ErrInvalid, KeyMemory, s.MemoryMiB, KeyCPU, s.CPU, joinInts(allowed))
		}
		return nil
	}},
	{[]string{KeyNetwork, KeyVpcID}, func(s Settings) error {
		if s.Network == NetworkImport && s.VpcID == "" {
			return fmt.Errorf("%w: context key %q is required when %s=%s", ErrInvalid, KeyVpcID, KeyNetwork, NetworkImport)
		}
		if s.Network != NetworkImport && s.VpcID != "" {
			return fmt.Errorf("%w: context key %q is only used with %s=%s (got %s=%s)", ErrInvalid, KeyVpcID, KeyNetwork, NetworkImport, KeyNetwork, s.Network)
		}
		return nil
	}},
	// Fargate Spot runs Linux X86_64 tasks only: an ARM64 task started on
	// FARGATE_SPOT is refused by ECS at run time, long after the deploy.
	{[]string{KeyCapacityProvider, KeyArchitecture}, func(s Settings) error {
		if s.CapacityProvider == "FARGATE_SPOT" && s.Architecture != "x86_64" {
			return fmt.Errorf("%w: context keys %q and %q: %s=%s cannot run on %s=FARGATE_SPOT (Fargate Spot supports X86_64 tasks only); set %s=x86_64 or %s=FARGATE",
				ErrInvalid, KeyCapacityProvider, KeyArchitecture, KeyArchitecture, s.Architecture, KeyCapacityProvider, KeyArchitecture, KeyCapacityProvider)
		}
		return nil
	}},
	// A backlog older than the retention period is deleted by SQS: the
	// oldest-age trigger must fire well before that.
	{[]string{KeyMaxWaitMinutes, KeyRetentionDays}, func(s Settings) error {
		if limit := s.QueueRetentionDays * 24 * 60 / 2; s.MaxWaitMinutes > limit {
			return fmt.Errorf("%w: context key %q: %d minutes must be at most half of %s (%d minutes), or waiting messages may expire",
				ErrInvalid, KeyMaxWaitMinutes, s.MaxWaitMinutes, KeyRetentionDays, limit)
		}
		return nil
	}},
}, jobChecks()...)

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

// rule is one context key of Settings.
type rule interface {
	name() string
	// setDefault gives the key's field its default if it is zero.
	setDefault(s *Settings)
	// read stores a context value in the key's field, or says why it cannot:
	// a value of the wrong type or shape. Whether the value is allowed is
	// check's business.
	read(s *Settings, v any) error
	// check reports the field's value if the key does not allow it.
	check(s Settings) error
	// isDefault reports whether the key's field holds its default.
	isDefault(s Settings) bool
}

// problem is the message of a value a key does not allow.
func problem(key, want, got string) error {
	return fmt.Errorf("%w: context key %q: must be %s, got %s", ErrInvalid, key, want, got)
}

// intRule is a whole-number key: a range lo..hi, or one of choices.
type intRule struct {
	key     string
	field   func(*Settings) *int
	def     int
	lo, hi  int
	choices []int
	why     string // optional: why the limits are what they are, added to the message of a value outside them
}

func (r intRule) name() string { return r.key }

func (r intRule) setDefault(s *Settings) {
	if p := r.field(s); *p == 0 {
		*p = r.def
	}
}

func (r intRule) want() string {
	if r.choices != nil {
		return "one of " + joinInts(r.choices)
	}
	return fmt.Sprintf("an integer from %d to %d", r.lo, r.hi)
}

func (r intRule) read(s *Settings, v any) error {
	switch x := v.(type) {
	case float64: // JSON numbers from cdk.json
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			*r.field(s) = int(x)
			return nil
		}
	case int:
		*r.field(s) = x
		return nil
	case string: // -c key=value on the command line
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			*r.field(s) = n
			return nil
		}
	}
	return problem(r.key, r.want(), show(v))
}

func (r intRule) check(s Settings) error {
	if n := *r.field(&s); !r.allows(n) {
		err := problem(r.key, r.want(), strconv.Itoa(n))
		if r.why != "" {
			return fmt.Errorf("%w: %s", err, r.why)
		}
		return err
	}
	return nil
}

func (r intRule) isDefault(s Settings) bool { return *r.field(&s) == r.def }

func (r intRule) allows(n int) bool {
	if r.choices != nil {
		return slices.Contains(r.choices, n)
	}
	return n >= r.lo && n <= r.hi
}

// strRule is a string key. Context values are trimmed.
type strRule struct {
	key   string
	field func(*Settings) *string
	def   string
	want  string
	// allow returns nil for an allowed value; otherwise errNotAllowed, or a
	// reason that explains what is wrong and follows the message.
	allow func(string) error
}

// errNotAllowed is what allow returns when the "must be" message says it all.
var errNotAllowed = errors.New("not allowed")

func (r strRule) name() string { return r.key }

func (r strRule) setDefault(s *Settings) {
	if p := r.field(s); *p == "" {
		*p = r.def
	}
}

func (r strRule) read(s *Settings, v any) error {
	x, ok := v.(string)
	if !ok {
		return problem(r.key, r.want, show(v))
	}
	*r.field(s) = strings.TrimSpace(x)
	return nil
}

func (r strRule) check(s Settings) error {
	v := *r.field(&s)
	reason := r.allow(v)
	if reason == nil {
		return nil
	}
	err := problem(r.key, r.want, strconv.Quote(v))
	if errors.Is(reason, errNotAllowed) {
		return err
	}
	return fmt.Errorf("%w: %w", err, reason)
}

func (r strRule) isDefault(s Settings) bool { return *r.field(&s) == r.def }

// oneOf is a key whose value is one of allowed.
func oneOf(key string, field func(*Settings) *string, def string, allowed ...string) strRule {
	return strRule{key, field, def, "one of " + strings.Join(quoteAll(allowed), ", "), func(v string) error {
		if slices.Contains(allowed, v) {
			return nil
		}
		return errNotAllowed
	}}
}

// matches allows the values re matches.
func matches(re *regexp.Regexp) func(string) error {
	return func(v string) error {
		if re.MatchString(v) {
			return nil
		}
		return errNotAllowed
	}
}

// ianaZone allows the names of the IANA time zone database, the names
// EventBridge Scheduler takes. Scheduler matches them exactly, so the case
// must be the database's; "Local" is Go's name for the synthesizing
// machine's zone, which Scheduler does not know.
func ianaZone(v string) error {
	switch {
	case v == "Local":
		return errors.New(`"Local" is not an IANA zone name; name the zone, e.g. "Europe/Berlin"`)
	case !zoneNameRe.MatchString(v):
		return errNotAllowed
	}
	for _, part := range strings.Split(v, "/") {
		if part[0] < 'A' || part[0] > 'Z' {
			return fmt.Errorf("zone names are case-sensitive and each part starts with a capital letter (%q, not %q)", "America/New_York", "america/new_york")
		}
	}
	if _, err := time.LoadLocation(v); err != nil {
		return errors.New("no such zone in the IANA time zone database (Area/Location, e.g. Europe/Berlin, America/New_York, Asia/Tokyo)")
	}
	return nil
}

// maxEmailLength is the longest address SMTP carries (RFC 5321's path
// limit, less the angle brackets).
const maxEmailLength = 254

// emailDomainRe is a domain mail can be delivered to: two or more dot-separated
// labels ("example.com"), not a bare host name such as "localhost".
var emailDomainRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$`)

// alertEmail allows "" (no subscription) and one plausible address: what
// net/mail parses as a single bare address, with a deliverable domain. It
// cannot tell whether the mailbox exists; SNS asks its owner to confirm the
// subscription.
func alertEmail(v string) error {
	if v == "" {
		return nil
	}
	const oneOnly = "one address only: each stack subscribes one e-mail endpoint (use a mailing list for several people)"
	if list, err := mail.ParseAddressList(v); err == nil && len(list) > 1 {
		return errors.New(oneOnly)
	}
	addr, err := mail.ParseAddress(v)
	switch {
	case err != nil && strings.ContainsAny(v, ",; \t"):
		return errors.New(oneOnly)
	case err != nil:
		return fmt.Errorf("not an e-mail address: %s", strings.TrimPrefix(err.Error(), "mail: "))
	}
	if addr.Name != "" || addr.Address != v {
		return fmt.Errorf("just the address, without a display name or angle brackets: %s", addr.Address)
	}
	if len(v) > maxEmailLength {
		return fmt.Errorf("%d characters, more than the %d an address can have", len(v), maxEmailLength)
	}
	if _, domain, _ := strings.Cut(v, "@"); !emailDomainRe.MatchString(domain) {
		return fmt.Errorf("the domain %q is not one mail can be sent to; use a full domain such as example.com", domain)
	}
	return nil
}

// optional allows "" (unset) and the values re matches.
func optional(re *regexp.Regexp) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return matches(re)(v)
	}
}

// show renders a context value of any type for a message.
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

func quoteAll(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = strconv.Quote(s)
	}
	return out
}

func joinInts(list []int) string {
	s := slices.Sorted(slices.Values(list))
	parts := make([]string, len(s))
	for i, n := range s {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// Keys lists every context key FromContext reads, sorted.
func Keys() []string {
	keys := make([]string, len(rules))
	for i, r := range rules {
		keys[i] = r.name()
	}
	slices.Sort(keys)
	return keys
}
