package main

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/edp-pipelines/edp/internal/names"
)

// Defaults for the optional settings. The zero value of each Config field
// means "use the default".
const (
	// DefaultMaxTasks bounds the consumer tasks of the family running at once.
	DefaultMaxTasks = 10
	// DefaultMessagesPerTask is the backlog one drain task is expected to
	// work through; see docs/alarm-dispatch.md for how to size it.
	DefaultMessagesPerTask = 100
	// DefaultCapacityProvider runs tasks on on-demand Fargate.
	DefaultCapacityProvider = "FARGATE"
	// DefaultAssignPublicIP keeps tasks off the public internet (private
	// subnets with a NAT gateway or VPC endpoints).
	DefaultAssignPublicIP = "DISABLED"
)

// Upper bounds that catch typos rather than express real limits.
const (
	maxMaxTasks        = 1000
	maxSubnets         = 16 // awsvpcConfiguration limit
	maxSecurityGroups  = 5  // awsvpcConfiguration limit
	maxStartedByLength = 128
)

// ErrConfig marks an invalid or missing setting; the function cannot start.
var ErrConfig = errors.New("invalid configuration")

// startedByPattern is what ECS accepts for RunTask's startedBy.
var startedByPattern = regexp.MustCompile(`^[A-Za-z0-9_/-]+$`)

// Config is the dispatcher's configuration. Required fields have no default;
// every other field works at its zero value, which means the documented
// default. The idiom is the house's: SetDefaults, then Validate, once, where
// the configuration is read (ConfigFromEnv does both); NewHandler takes the
// result as it is.
type Config struct {
	// QueueURL is the work queue whose backlog is read (EDP_QUEUE_URL). Required.
	QueueURL string
	// Cluster is the ECS cluster name or ARN (EDP_CLUSTER). Required.
	Cluster string
	// TaskDefinition is the consumer task definition ARN, family:revision or
	// family (EDP_TASK_DEFINITION). Required. Its family is what running
	// consumer tasks are counted by.
	TaskDefinition string
	// Subnets are the awsvpc subnets (EDP_SUBNETS, comma-separated). Required.
	Subnets []string
	// SecurityGroups are the awsvpc security groups (EDP_SECURITY_GROUPS,
	// comma-separated). Default: none given, so ECS uses the VPC's default group.
	SecurityGroups []string
	// AssignPublicIP is ENABLED or DISABLED (EDP_ASSIGN_PUBLIC_IP).
	// Default: DefaultAssignPublicIP.
	AssignPublicIP string
	// MaxTasks bounds the consumer tasks of the family running or pending at
	// once, whoever started them (EDP_MAX_TASKS). Default: DefaultMaxTasks.
	MaxTasks int
	// MessagesPerTask is the backlog one task is expected to drain
	// (EDP_MESSAGES_PER_TASK). Default: DefaultMessagesPerTask.
	MessagesPerTask int
	// CapacityProvider is FARGATE or FARGATE_SPOT (EDP_CAPACITY_PROVIDER).
	// Default: DefaultCapacityProvider.
	CapacityProvider string
	// ContainerName is the container whose command is overridden with drain
	// mode (EDP_CONTAINER_NAME). Default: names.ContainerName.
	ContainerName string
	// StartedBy marks the tasks this dispatcher starts (EDP_STARTED_BY).
	// Default: names.DefaultStartedBy.
	StartedBy string
}

// SetDefaults gives every optional field left at its zero value its default.
func (c *Config) SetDefaults() {
	if c.AssignPublicIP == "" {
		c.AssignPublicIP = DefaultAssignPublicIP
	}
	if c.MaxTasks == 0 {
		c.MaxTasks = DefaultMaxTasks
	}
	if c.MessagesPerTask == 0 {
		c.MessagesPerTask = DefaultMessagesPerTask
	}
	if c.CapacityProvider == "" {
		c.CapacityProvider = DefaultCapacityProvider
	}
	if c.ContainerName == "" {
		c.ContainerName = names.ContainerName
	}
	if c.StartedBy == "" {
		c.StartedBy = names.DefaultStartedBy
	}
}

// Validate returns nil when c can run, and otherwise every problem in one
// error that wraps ErrConfig, one line per setting, each naming its
// environment variable. It applies no defaults: call SetDefaults first.
func (c Config) Validate() error {
	return c.validate(nil)
}

// validate is Validate for a Config read from the environment: a variable
// in unparsed is reported with that error instead of being checked (its
// field holds the default).
func (c Config) validate(unparsed map[string]error) error {
	var errs []error
	bad := func(env, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", env, fmt.Sprintf(format, args...)))
	}
	if c.QueueURL == "" {
		bad(names.EnvQueueURL, "required")
	}
	if c.Cluster == "" {
		bad(names.EnvCluster, "required")
	}
	if c.TaskDefinition == "" {
		bad(names.EnvTaskDefinition, "required")
	} else if family(c.TaskDefinition) == "" {
		bad(names.EnvTaskDefinition, "%q has no family (want an ARN, family:revision or family)", c.TaskDefinition)
	}
	switch n := len(c.Subnets); {
	case n == 0:
		bad(names.EnvSubnets, "required (at least one subnet id)")
	case n > maxSubnets:
		bad(names.EnvSubnets, "%d subnets, at most %d allowed", n, maxSubnets)
	}
	if n := len(c.SecurityGroups); n > maxSecurityGroups {
		bad(names.EnvSecurityGroups, "%d security groups, at most %d allowed", n, maxSecurityGroups)
	}
	if c.AssignPublicIP != "ENABLED" && c.AssignPublicIP != "DISABLED" {
		bad(names.EnvAssignPublicIP, "%q, want ENABLED or DISABLED", c.AssignPublicIP)
	}
	switch err := unparsed[names.EnvMaxTasks]; {
	case err != nil:
		errs = append(errs, err)
	case c.MaxTasks < 1 || c.MaxTasks > maxMaxTasks:
		bad(names.EnvMaxTasks, "%d, want 1..%d", c.MaxTasks, maxMaxTasks)
	}
	switch err := unparsed[names.EnvMessagesPerTask]; {
	case err != nil:
		errs = append(errs, err)
	case c.MessagesPerTask < 1:
		bad(names.EnvMessagesPerTask, "%d, want at least 1", c.MessagesPerTask)
	}
	if c.CapacityProvider != "FARGATE" && c.CapacityProvider != "FARGATE_SPOT" {
		bad(names.EnvCapacityProvider, "%q, want FARGATE or FARGATE_SPOT", c.CapacityProvider)
	}
	if c.ContainerName == "" {
		bad(names.EnvContainerName, "required")
	}
	if len(c.StartedBy) > maxStartedByLength || !startedByPattern.MatchString(c.StartedBy) {
		bad(names.EnvStartedBy, "%q, want 1..%d of letters, digits, '-', '_' and '/'", c.StartedBy, maxStartedByLength)
	}
	if len(errs) > 0 {
		// Every problem at once: one failed deploy, one fix.
		return fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return nil
}

// ConfigFromEnv reads each variable once through lookup (os.LookupEnv in
// main) over the defaults, and validates the result once. Unset or empty
// variables keep their defaults; a value that is set is never replaced by a
// default, and one that is not a number where a number belongs is reported
// with every other problem.
func ConfigFromEnv(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	c.SetDefaults()
	get := func(env string) (string, bool) {
		v, _ := lookup(env)
		v = strings.TrimSpace(v)
		return v, v != ""
	}
	text := func(env string, dst *string, norm func(string) string) {
		if v, ok := get(env); ok {
			*dst = norm(v)
		}
	}
	list := func(env string, dst *[]string) {
		if v, ok := get(env); ok {
			*dst = splitList(v)
		}
	}
	unparsed := map[string]error{}
	number := func(env string, dst *int) {
		v, ok := get(env)
		if !ok {
			return
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			unparsed[env] = fmt.Errorf("%s: %q is not a whole number", env, v)
			return
		}
		*dst = n
	}
	same := func(s string) string { return s }
	text(names.EnvQueueURL, &c.QueueURL, same)
	text(names.EnvCluster, &c.Cluster, same)
	text(names.EnvTaskDefinition, &c.TaskDefinition, same)
	list(names.EnvSubnets, &c.Subnets)
	list(names.EnvSecurityGroups, &c.SecurityGroups)
	text(names.EnvAssignPublicIP, &c.AssignPublicIP, strings.ToUpper)
	number(names.EnvMaxTasks, &c.MaxTasks)
	number(names.EnvMessagesPerTask, &c.MessagesPerTask)
	text(names.EnvCapacityProvider, &c.CapacityProvider, strings.ToUpper)
	text(names.EnvContainerName, &c.ContainerName, same)
	text(names.EnvStartedBy, &c.StartedBy, same)
	if err := c.validate(unparsed); err != nil {
		return Config{}, err
	}
	return c, nil
}

// splitList splits a comma-separated list, trimming blanks and dropping
// empty items (so a trailing comma is harmless).
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// family returns the task definition family of an ARN
// (arn:aws:ecs:r:a:task-definition/family:rev), "family:rev" or "family".
func family(taskDef string) string {
	s := taskDef
	if strings.HasPrefix(s, "arn:") {
		_, after, ok := strings.Cut(s, ":task-definition/")
		if !ok {
			return ""
		}
		s = after
	}
	fam, _, _ := strings.Cut(s, ":")
	if strings.Contains(fam, "/") {
		return ""
	}
	return fam
}
