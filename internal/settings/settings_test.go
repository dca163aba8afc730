package settings

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func lookup(m map[string]any) Lookup {
	return func(k string) any { return m[k] }
}

func TestDefaultsWhenNothingSet(t *testing.T) {
	t.Parallel()
	got, err := FromContext(lookup(nil))
	if err != nil {
		t.Fatalf("FromContext: %v", err)
	}
	if diff := cmp.Diff(Defaults(), got); diff != "" {
		t.Fatalf("defaults differ (-want +got):\n%s", diff)
	}
}

// cdk.json is what users edit: its context must match Defaults exactly, so
// the docs, the file and the code tell one story.
func TestCdkJSONMatchesDefaults(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	got, err := FromContext(lookup(doc.Context))
	if err != nil {
		t.Fatalf("cdk.json context is invalid: %v", err)
	}
	if diff := cmp.Diff(Defaults(), got); diff != "" {
		t.Fatalf("cdk.json differs from Defaults (-defaults +cdk.json):\n%s", diff)
	}
	for k := range doc.Context {
		if strings.HasPrefix(k, "edp:") && !contains(Keys(), k) {
			t.Errorf("cdk.json sets unknown key %q", k)
		}
	}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func TestCommandLineStringsAreParsed(t *testing.T) {
	t.Parallel()
	got, err := FromContext(lookup(map[string]any{
		KeyMaxTasks:                    "25",
		KeyScaleOutThreshold:           " 100 ",
		KeyCPU:                         "1024",
		KeyMemory:                      "2048",
		KeyScalingMode:                 "backlog",
		KeyNetwork:                     "import",
		KeyVpcID:                       "vpc-0123456789abcdef0",
		KeySchedule:                    "rate(6 hours)",
		KeyScheduleTimeZone:            "Europe/Berlin",
		KeyAccount:                     "123456789012",
		KeyRegion:                      "eu-west-1",
		KeyVisibilityTimeout:           float64(600),
		KeyRemovalPolicy:               "destroy",
		KeyLogRetentionDays:            "7",
		KeyCapacityProvider:            "FARGATE_SPOT",
		KeyArchitecture:                "x86_64",
		KeyScaleInIdleMinutes:          10,
		KeyDispatchReservedConcurrency: "1",
	}))
	if err != nil {
		t.Fatalf("FromContext: %v", err)
	}
	want := Defaults()
	want.MaxTasks, want.ScaleOutThreshold, want.CPU, want.MemoryMiB = 25, 100, 1024, 2048
	want.ScalingMode, want.Network, want.VpcID = ScalingBacklog, NetworkImport, "vpc-0123456789abcdef0"
	want.Schedule, want.ScheduleTimeZone = "rate(6 hours)", "Europe/Berlin"
	want.Account, want.Region, want.VisibilityTimeoutSeconds = "123456789012", "eu-west-1", 600
	want.RemovalPolicy, want.LogRetentionDays, want.CapacityProvider, want.ScaleInIdleMinutes = "destroy", 7, "FARGATE_SPOT", 10
	want.Architecture, want.DispatchReservedConcurrency = "x86_64", 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestInvalidContextNamesKeyAndAllowedValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ctx  map[string]any
		key  string
		want string // a fragment of the allowed values
	}{
		{"max tasks not a number", map[string]any{KeyMaxTasks: "many"}, KeyMaxTasks, "integer from 1 to 1000"},
		{"max tasks zero", map[string]any{KeyMaxTasks: 0.0}, KeyMaxTasks, "integer from 1 to 1000"},
		{"fractional threshold", map[string]any{KeyScaleOutThreshold: 2.5}, KeyScaleOutThreshold, "integer"},
		{"retention above SQS max", map[string]any{KeyRetentionDays: "15"}, KeyRetentionDays, "from 1 to 14"},
		{"receive count zero", map[string]any{KeyMaxReceiveCount: "0"}, KeyMaxReceiveCount, "from 1 to 1000"},
		{"visibility too short", map[string]any{KeyVisibilityTimeout: "10"}, KeyVisibilityTimeout, "from 30 to 43200"},
		{"cpu not Fargate", map[string]any{KeyCPU: "300"}, KeyCPU, "256, 512, 1024"},
		{"memory does not fit cpu", map[string]any{KeyCPU: "256", KeyMemory: "4096"}, KeyMemory, "512, 1024, 2048"},
		{"architecture", map[string]any{KeyArchitecture: "arm"}, KeyArchitecture, `"arm64", "x86_64"`},
		{"log retention", map[string]any{KeyLogRetentionDays: "10"}, KeyLogRetentionDays, "14, 30"},
		{"removal policy", map[string]any{KeyRemovalPolicy: "delete"}, KeyRemovalPolicy, `"retain", "destroy"`},
		{"network mode", map[string]any{KeyNetwork: "nat"}, KeyNetwork, `"public", "private", "import", "default"`},
		{"vpc id with the default vpc", map[string]any{KeyNetwork: "default", KeyVpcID: "vpc-0123456789abcdef0"}, KeyVpcID, "only used with"},
		{"spot on arm64 names the capacity key", map[string]any{KeyCapacityProvider: "FARGATE_SPOT"}, KeyCapacityProvider, "X86_64 tasks only"},
		{"spot on arm64 names the architecture key", map[string]any{KeyCapacityProvider: "FARGATE_SPOT", KeyArchitecture: "arm64"}, KeyArchitecture, "X86_64 tasks only"},
		{"reserved concurrency negative", map[string]any{KeyDispatchReservedConcurrency: "-1"}, KeyDispatchReservedConcurrency, "from 0 to 1000"},
		{"import without vpc", map[string]any{KeyNetwork: "import"}, KeyVpcID, "required"},
		{"vpc without import", map[string]any{KeyVpcID: "vpc-0123456789abcdef0"}, KeyVpcID, "only used with"},
		{"malformed vpc id", map[string]any{KeyNetwork: "import", KeyVpcID: "my-vpc"}, KeyVpcID, "vpc-"},
		{"scaling mode", map[string]any{KeyScalingMode: "target"}, KeyScalingMode, `"step", "backlog"`},
		{"schedule", map[string]any{KeySchedule: "0 2 * * *"}, KeySchedule, "cron("},
		{"schedule rate unit", map[string]any{KeySchedule: "rate(5 seconds)"}, KeySchedule, "rate(N minutes|hours|days)"},
		{"time zone", map[string]any{KeyScheduleTimeZone: "Mars Standard"}, KeyScheduleTimeZone, "IANA"},
		{"capacity provider", map[string]any{KeyCapacityProvider: "EC2"}, KeyCapacityProvider, "FARGATE_SPOT"},
		{"account", map[string]any{KeyAccount: "12345"}, KeyAccount, "12-digit"},
		{"region", map[string]any{KeyRegion: "moon-1"}, KeyRegion, "region"},
		{"wrong JSON type", map[string]any{KeyNetwork: 3.0}, KeyNetwork, "one of"},
		{"max wait beyond retention", map[string]any{KeyRetentionDays: "1", KeyMaxWaitMinutes: "1000"}, KeyMaxWaitMinutes, "half of"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := FromContext(lookup(tc.ctx))
			if err == nil {
				t.Fatalf("want an error for %v", tc.ctx)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tc.key+`"`) {
				t.Errorf("error %q does not name key %q", msg, tc.key)
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not say %q", msg, tc.want)
			}
		})
	}
}
