package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/names"
)

// envOf turns a map into a lookup function like os.LookupEnv.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// minimalEnv has only the required variables.
func minimalEnv() map[string]string {
	return map[string]string{
		names.EnvQueueURL:       "https://sqs.us-east-1.amazonaws.com/123456789012/edp-queue",
		names.EnvCluster:        "edp-cluster",
		names.EnvTaskDefinition: "arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:7",
		names.EnvSubnets:        "subnet-0a1b2c3d4e5f60718",
	}
}

func TestConfigFromEnvDefaults(t *testing.T) {
	t.Parallel()
	got, err := ConfigFromEnv(envOf(minimalEnv()))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		QueueURL:         "https://sqs.us-east-1.amazonaws.com/123456789012/edp-queue",
		Cluster:          "edp-cluster",
		TaskDefinition:   "arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:7",
		Subnets:          []string{"subnet-0a1b2c3d4e5f60718"},
		AssignPublicIP:   "DISABLED",
		MaxTasks:         10,
		MessagesPerTask:  100,
		CapacityProvider: "FARGATE",
		ContainerName:    names.ContainerName,
		StartedBy:        names.DefaultStartedBy,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestConfigFromEnvAll(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	env[names.EnvSubnets] = " subnet-a , subnet-b,, "
	env[names.EnvSecurityGroups] = "sg-1,sg-2"
	env[names.EnvAssignPublicIP] = "enabled"
	env[names.EnvMaxTasks] = "50"
	env[names.EnvMessagesPerTask] = " 250 "
	env[names.EnvCapacityProvider] = "fargate_spot"
	env[names.EnvContainerName] = "worker"
	env[names.EnvStartedBy] = "edp/dispatch_2"
	got, err := ConfigFromEnv(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		QueueURL:         env[names.EnvQueueURL],
		Cluster:          "edp-cluster",
		TaskDefinition:   env[names.EnvTaskDefinition],
		Subnets:          []string{"subnet-a", "subnet-b"},
		SecurityGroups:   []string{"sg-1", "sg-2"},
		AssignPublicIP:   "ENABLED",
		MaxTasks:         50,
		MessagesPerTask:  250,
		CapacityProvider: "FARGATE_SPOT",
		ContainerName:    "worker",
		StartedBy:        "edp/dispatch_2",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestConfigFromEnvErrors: every bad setting is reported and named.
func TestConfigFromEnvErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		set      map[string]string
		unset    []string
		wantVars []string
	}{
		{"nothing set", nil, []string{names.EnvQueueURL, names.EnvCluster, names.EnvTaskDefinition, names.EnvSubnets},
			[]string{names.EnvQueueURL, names.EnvCluster, names.EnvTaskDefinition, names.EnvSubnets}},
		{"blank queue", map[string]string{names.EnvQueueURL: "  "}, nil, []string{names.EnvQueueURL}},
		{"subnets only commas", map[string]string{names.EnvSubnets: ", ,"}, nil, []string{names.EnvSubnets}},
		{"too many security groups", map[string]string{names.EnvSecurityGroups: "a,b,c,d,e,f"}, nil, []string{names.EnvSecurityGroups}},
		{"bad task definition", map[string]string{names.EnvTaskDefinition: "arn:aws:ecs:us-east-1:1:cluster/x"}, nil, []string{names.EnvTaskDefinition}},
		{"max tasks not a number", map[string]string{names.EnvMaxTasks: "ten"}, nil, []string{names.EnvMaxTasks}},
		{"bad number and missing cluster together", map[string]string{names.EnvMaxTasks: "ten"}, []string{names.EnvCluster},
			[]string{names.EnvMaxTasks, names.EnvCluster}},
		{"max tasks zero", map[string]string{names.EnvMaxTasks: "0"}, nil, []string{names.EnvMaxTasks}},
		{"max tasks negative", map[string]string{names.EnvMaxTasks: "-3"}, nil, []string{names.EnvMaxTasks}},
		{"max tasks too big", map[string]string{names.EnvMaxTasks: "100000"}, nil, []string{names.EnvMaxTasks}},
		{"messages per task fraction", map[string]string{names.EnvMessagesPerTask: "2.5"}, nil, []string{names.EnvMessagesPerTask}},
		{"messages per task zero", map[string]string{names.EnvMessagesPerTask: "0"}, nil, []string{names.EnvMessagesPerTask}},
		{"capacity provider", map[string]string{names.EnvCapacityProvider: "EC2"}, nil, []string{names.EnvCapacityProvider}},
		{"public ip", map[string]string{names.EnvAssignPublicIP: "yes"}, nil, []string{names.EnvAssignPublicIP}},
		{"started by", map[string]string{names.EnvStartedBy: "edp dispatch!"}, nil, []string{names.EnvStartedBy}},
		{"started by too long", map[string]string{names.EnvStartedBy: strings.Repeat("a", 129)}, nil, []string{names.EnvStartedBy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := minimalEnv()
			for k, v := range tt.set {
				env[k] = v
			}
			for _, k := range tt.unset {
				delete(env, k)
			}
			_, err := ConfigFromEnv(envOf(env))
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("err = %v, want ErrConfig", err)
			}
			for _, v := range tt.wantVars {
				if !strings.Contains(err.Error(), v) {
					t.Errorf("error %q does not name %s", err, v)
				}
			}
		})
	}
}

func TestConfigZeroValueDefaults(t *testing.T) {
	t.Parallel()
	c := Config{QueueURL: "q", Cluster: "c", TaskDefinition: "fam", Subnets: []string{"s"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("zero-valued optional fields rejected: %v", err)
	}
	if c.MaxTasks != DefaultMaxTasks || c.MessagesPerTask != DefaultMessagesPerTask ||
		c.CapacityProvider != DefaultCapacityProvider || c.AssignPublicIP != DefaultAssignPublicIP ||
		c.ContainerName != names.ContainerName || c.StartedBy != names.DefaultStartedBy {
		t.Errorf("defaults not applied: %+v", c)
	}
	// Set fields keep their values.
	set := Config{MaxTasks: 3, StartedBy: "me"}
	set.SetDefaults()
	if set.MaxTasks != 3 || set.StartedBy != "me" {
		t.Errorf("SetDefaults replaced set fields: %+v", set)
	}
}

// TestValidateAppliesNoDefaults: Validate checks what it is given, so a
// zero field is a problem like any other, and it reports them all.
func TestValidateAppliesNoDefaults(t *testing.T) {
	t.Parallel()
	err := Config{}.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate() = %v, want ErrConfig", err)
	}
	want := "invalid configuration: " + strings.Join([]string{
		names.EnvQueueURL + ": required",
		names.EnvCluster + ": required",
		names.EnvTaskDefinition + ": required",
		names.EnvSubnets + ": required (at least one subnet id)",
		names.EnvAssignPublicIP + `: "", want ENABLED or DISABLED`,
		names.EnvMaxTasks + ": 0, want 1..1000",
		names.EnvMessagesPerTask + ": 0, want at least 1",
		names.EnvCapacityProvider + `: "", want FARGATE or FARGATE_SPOT`,
		names.EnvContainerName + ": required",
		names.EnvStartedBy + `: "", want 1..128 of letters, digits, '-', '_' and '/'`,
	}, "\n")
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestFamily(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"arn:aws:ecs:us-east-1:123456789012:task-definition/edp-consumer:7": "edp-consumer",
		"arn:aws-cn:ecs:cn-north-1:123456789012:task-definition/fam":        "fam",
		"edp-consumer:12": "edp-consumer",
		"edp-consumer":    "edp-consumer",
		"arn:aws:ecs:us-east-1:123456789012:cluster/edp": "",
		"a/b:1": "",
		"":      "",
	} {
		if got := family(in); got != want {
			t.Errorf("family(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestColdStartFailsNamingVariable: the cold start refuses a bad
// environment before it builds any client, with one message that names
// every bad variable, one line each: an unparsable number does not hide the
// other problems.
func TestColdStartFailsNamingVariable(t *testing.T) {
	t.Parallel()
	env := minimalEnv()
	env[names.EnvMessagesPerTask] = "many"
	_, err := coldStart(context.Background(), envOf(env), slog.New(slog.DiscardHandler), io.Discard)
	const one = `invalid configuration: EDP_MESSAGES_PER_TASK: "many" is not a whole number`
	if !errors.Is(err, ErrConfig) || err.Error() != one {
		t.Fatalf("coldStart = %v, want ErrConfig: %s", err, one)
	}

	delete(env, names.EnvCluster)
	env[names.EnvMaxTasks] = "0"
	_, err = coldStart(context.Background(), envOf(env), slog.New(slog.DiscardHandler), io.Discard)
	const all = "invalid configuration: EDP_CLUSTER: required\nEDP_MAX_TASKS: 0, want 1..1000\n" + `EDP_MESSAGES_PER_TASK: "many" is not a whole number`
	if !errors.Is(err, ErrConfig) || err.Error() != all {
		t.Fatalf("coldStart = %v, want ErrConfig:\n%s", err, all)
	}
}
