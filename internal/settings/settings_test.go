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
		KeyAlertEmail:                  " ops@example.com ",
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
	want.AlertEmail = "ops@example.com"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
}

func TestAlertEmailIsOptionalAndTakesOnePlausibleAddress(t *testing.T) {
	t.Parallel()
	if got := Defaults().AlertEmail; got != "" {
		t.Errorf("default AlertEmail = %q, want none", got)
	}
	for _, addr := range []string{"", "ops@example.com", "first.last+edp@sub.example.co.uk", "o'brien@example.ie", "ops-1@xn--bcher-kva.example"} {
		t.Run(addr, func(t *testing.T) {
			t.Parallel()
			got, err := FromContext(lookup(map[string]any{KeyAlertEmail: addr}))
			if err != nil {
				t.Fatalf("FromContext: %v", err)
			}
			if got.AlertEmail != addr {
				t.Errorf("AlertEmail = %q, want %q", got.AlertEmail, addr)
			}
		})
	}
}

// Every key is documented in docs/configuration.md, the reference users
// read, as a row of one of its tables.
func TestEveryKeyIsDocumented(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(raw), "\n| `"+k+"` |") {
			t.Errorf("docs/configuration.md has no row for %s", k)
		}
	}
}

// Names as the IANA database spells them, from its own files (zone1970.tab
// and backward): one, two and three parts, signs, hyphens and underscores.
func TestScheduleTimeZoneAcceptsIANANames(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{
		"UTC", "Etc/UTC", "GMT", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Sydney",
		"America/Argentina/Buenos_Aires", "America/Port-au-Prince", "Etc/GMT+5", "Etc/GMT-14",
	} {
		t.Run(zone, func(t *testing.T) {
			t.Parallel()
			got, err := FromContext(lookup(map[string]any{KeyScheduleTimeZone: zone}))
			if err != nil {
				t.Fatalf("FromContext: %v", err)
			}
			if got.ScheduleTimeZone != zone {
				t.Errorf("ScheduleTimeZone = %q, want %q", got.ScheduleTimeZone, zone)
			}
		})
	}
}

// keyWant is one expected problem: the key it names and a fragment of what
// the key allows.
type keyWant struct{ key, want string }

func bad(key, want string) []keyWant { return []keyWant{{key, want}} }

func TestInvalidContextNamesKeyAndAllowedValues(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		ctx  map[string]any
		want []keyWant // every problem: each key's own in the order of the rules table, then those between keys
	}{
		{"max tasks not a number", map[string]any{KeyMaxTasks: "many"}, bad(KeyMaxTasks, "integer from 1 to 1000")},
		{"max tasks zero", map[string]any{KeyMaxTasks: 0.0}, bad(KeyMaxTasks, "integer from 1 to 1000")},
		{"fractional threshold", map[string]any{KeyScaleOutThreshold: 2.5}, bad(KeyScaleOutThreshold, "integer")},
		{"retention above SQS max", map[string]any{KeyRetentionDays: "15"}, bad(KeyRetentionDays, "from 1 to 13")},
		// A redriven message keeps its enqueue time: a work queue that keeps
		// messages as long as its DLQs do can lose one the moment it is
		// redriven (issue 14, finding 5).
		{"retention as long as the DLQs'", map[string]any{KeyRetentionDays: 14.0},
			bad(KeyRetentionDays, "must be an integer from 1 to 13, got 14: dead-letter queues keep messages 14 days (the SQS maximum) and a redriven message keeps its first enqueue time")},
		{"max wait beyond the longest retention", map[string]any{KeyMaxWaitMinutes: "10000"}, bad(KeyMaxWaitMinutes, "from 1 to 9360")},
		{"receive count zero", map[string]any{KeyMaxReceiveCount: "0"}, bad(KeyMaxReceiveCount, "from 1 to 1000")},
		{"visibility too short", map[string]any{KeyVisibilityTimeout: "10"}, bad(KeyVisibilityTimeout, "from 30 to 43200")},
		{"cpu not Fargate", map[string]any{KeyCPU: "300"}, bad(KeyCPU, "256, 512, 1024")},
		{"memory does not fit cpu", map[string]any{KeyCPU: "256", KeyMemory: "4096"}, bad(KeyMemory, "512, 1024, 2048")},
		{"architecture", map[string]any{KeyArchitecture: "arm"}, bad(KeyArchitecture, `"arm64", "x86_64"`)},
		{"log retention", map[string]any{KeyLogRetentionDays: "10"}, bad(KeyLogRetentionDays, "14, 30")},
		{"removal policy", map[string]any{KeyRemovalPolicy: "delete"}, bad(KeyRemovalPolicy, `"retain", "destroy"`)},
		{"network mode", map[string]any{KeyNetwork: "nat"}, bad(KeyNetwork, `"public", "private", "import", "default"`)},
		{"vpc id with the default vpc", map[string]any{KeyNetwork: "default", KeyVpcID: "vpc-0123456789abcdef0"}, bad(KeyVpcID, "only used with")},
		{"spot on arm64 names the capacity key", map[string]any{KeyCapacityProvider: "FARGATE_SPOT"}, bad(KeyCapacityProvider, "X86_64 tasks only")},
		{"spot on arm64 names the architecture key", map[string]any{KeyCapacityProvider: "FARGATE_SPOT", KeyArchitecture: "arm64"}, bad(KeyArchitecture, "X86_64 tasks only")},
		{"reserved concurrency negative", map[string]any{KeyDispatchReservedConcurrency: "-1"}, bad(KeyDispatchReservedConcurrency, "from 0 to 1000")},
		{"import without vpc", map[string]any{KeyNetwork: "import"}, bad(KeyVpcID, "required")},
		{"vpc without import", map[string]any{KeyVpcID: "vpc-0123456789abcdef0"}, bad(KeyVpcID, "only used with")},
		{"malformed vpc id", map[string]any{KeyNetwork: "import", KeyVpcID: "my-vpc"}, bad(KeyVpcID, "vpc-")},
		{"scaling mode", map[string]any{KeyScalingMode: "target"}, bad(KeyScalingMode, `"step", "backlog"`)},
		{"schedule", map[string]any{KeySchedule: "0 2 * * *"}, bad(KeySchedule, "cron(")},
		{"schedule with spaces inside the parentheses", map[string]any{KeySchedule: " cron( 0 2 * * ? * ) "}, bad(KeySchedule, "write cron(0 2 * * ? *)")},
		{"schedule rate unit", map[string]any{KeySchedule: "rate(5 seconds)"}, bad(KeySchedule, "rate(N minutes|hours|days)")},
		{"time zone", map[string]any{KeyScheduleTimeZone: "Mars Standard"}, bad(KeyScheduleTimeZone, "IANA")},
		// Scheduler refuses a zone the IANA database does not have, at
		// deploy (issue 14, finding 7); the shape alone does not tell.
		{"time zone misspelt", map[string]any{KeyScheduleTimeZone: "Europe/Berln"}, bad(KeyScheduleTimeZone, `got "Europe/Berln": no such zone in the IANA time zone database (Area/Location, e.g. Europe/Berlin`)},
		{"time zone unknown area", map[string]any{KeyScheduleTimeZone: "Mars/Olympus_Mons"}, bad(KeyScheduleTimeZone, "no such zone")},
		{"time zone Local", map[string]any{KeyScheduleTimeZone: "Local"}, bad(KeyScheduleTimeZone, `"Local" is not an IANA zone name`)},
		{"time zone lower case", map[string]any{KeyScheduleTimeZone: "europe/berlin"}, bad(KeyScheduleTimeZone, "case-sensitive")},
		{"time zone utc lower case", map[string]any{KeyScheduleTimeZone: "utc"}, bad(KeyScheduleTimeZone, "case-sensitive")},
		{"time zone system file", map[string]any{KeyScheduleTimeZone: "localtime"}, bad(KeyScheduleTimeZone, "case-sensitive")},
		{"time zone path", map[string]any{KeyScheduleTimeZone: "../zoneinfo/UTC"}, bad(KeyScheduleTimeZone, `such as "UTC" or "Europe/Berlin", got "../zoneinfo/UTC"`)},
		{"time zone empty", map[string]any{KeyScheduleTimeZone: " "}, bad(KeyScheduleTimeZone, `got ""`)},
		{"capacity provider", map[string]any{KeyCapacityProvider: "EC2"}, bad(KeyCapacityProvider, "FARGATE_SPOT")},
		// edp:alertEmail: one plausible address, or unset.
		{"alert email without @", map[string]any{KeyAlertEmail: "ops"}, bad(KeyAlertEmail, `must be one e-mail address such as ops@example.com, or unset for no subscription, got "ops": not an e-mail address`)},
		{"alert email without local part", map[string]any{KeyAlertEmail: "@example.com"}, bad(KeyAlertEmail, "not an e-mail address")},
		{"alert email with two @", map[string]any{KeyAlertEmail: "ops@@example.com"}, bad(KeyAlertEmail, "not an e-mail address")},
		{"alert email list", map[string]any{KeyAlertEmail: "ops@example.com,dev@example.com"}, bad(KeyAlertEmail, "one address only")},
		{"alert email list with semicolons", map[string]any{KeyAlertEmail: "ops@example.com; dev@example.com"}, bad(KeyAlertEmail, "one address only")},
		{"alert email list with spaces", map[string]any{KeyAlertEmail: "ops@example.com dev@example.com"}, bad(KeyAlertEmail, "one address only")},
		{"alert email with display name", map[string]any{KeyAlertEmail: "Ops <ops@example.com>"}, bad(KeyAlertEmail, "just the address, without a display name or angle brackets: ops@example.com")},
		{"alert email in angle brackets", map[string]any{KeyAlertEmail: "<ops@example.com>"}, bad(KeyAlertEmail, "just the address")},
		{"alert email to a bare host", map[string]any{KeyAlertEmail: "ops@localhost"}, bad(KeyAlertEmail, `the domain "localhost" is not one mail can be sent to`)},
		{"alert email domain with empty label", map[string]any{KeyAlertEmail: "ops@example..com"}, bad(KeyAlertEmail, "e-mail address")},
		{"alert email domain ending in a dot", map[string]any{KeyAlertEmail: "ops@example.com."}, bad(KeyAlertEmail, "e-mail address")},
		{"alert email too long", map[string]any{KeyAlertEmail: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com"}, bad(KeyAlertEmail, "more than the 254")},
		{"alert email not a string", map[string]any{KeyAlertEmail: 3.0}, bad(KeyAlertEmail, "got 3")},
		{"account", map[string]any{KeyAccount: "12345"}, bad(KeyAccount, "12-digit")},
		{"region", map[string]any{KeyRegion: "moon-1"}, bad(KeyRegion, "region")},
		{"wrong JSON type", map[string]any{KeyNetwork: 3.0}, bad(KeyNetwork, "one of")},
		{"empty string is not the default", map[string]any{KeyRemovalPolicy: " "}, bad(KeyRemovalPolicy, `got ""`)},
		{"max wait beyond retention", map[string]any{KeyRetentionDays: "1", KeyMaxWaitMinutes: "1000"}, bad(KeyMaxWaitMinutes, "half of")},

		// More than one problem: every one is reported, in key order.
		{"two bad keys", map[string]any{KeyMaxTasks: "lots", KeyCPU: "300"},
			[]keyWant{{KeyCPU, "256, 512, 1024"}, {KeyMaxTasks, "integer from 1 to 1000"}}},
		{"an unreadable key hides no other", map[string]any{KeyScaleOutThreshold: 2.5, KeyNetwork: "nat", KeySchedule: "daily"},
			[]keyWant{{KeyNetwork, "one of"}, {KeyScaleOutThreshold, "got 2.5"}, {KeySchedule, "cron("}}},
		{"a key and a rule between two others", map[string]any{KeyRegion: "moon-1", KeyCPU: "256", KeyMemory: "4096"},
			[]keyWant{{KeyRegion, "region"}, {KeyMemory, "does not fit"}}},
		// A rule between keys is not checked against a key that is already
		// wrong: "4096 MiB does not fit cpu=300" would only repeat it.
		{"no follow-up problem of a bad key", map[string]any{KeyCPU: "300", KeyMemory: "4096", KeyNetwork: "nat", KeyVpcID: "vpc-0123456789abcdef0"},
			[]keyWant{{KeyCPU, "256, 512"}, {KeyNetwork, "one of"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromContext(lookup(tc.ctx))
			if err == nil {
				t.Fatalf("want an error for %v", tc.ctx)
			}
			if diff := cmp.Diff(Settings{}, got); diff != "" {
				t.Errorf("settings returned with an error (-want +got):\n%s", diff)
			}
			checkProblems(t, err, tc.want)
		})
	}
}

// checkProblems asserts that err wraps ErrInvalid and holds exactly the
// problems of want, in order, each naming its key and saying what it allows.
func checkProblems(t *testing.T, err error, want []keyWant) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error does not wrap ErrInvalid: %v", err)
	}
	var problems []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		problems = j.Unwrap()
	}
	if len(problems) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(problems), len(want), err)
	}
	for i, p := range problems {
		msg := p.Error()
		if !errors.Is(p, ErrInvalid) {
			t.Errorf("problem %q does not wrap ErrInvalid", msg)
		}
		if !strings.Contains(msg, `"`+want[i].key+`"`) {
			t.Errorf("problem %d %q does not name key %q", i, msg, want[i].key)
		}
		if !strings.Contains(msg, want[i].want) {
			t.Errorf("problem %d %q does not say %q", i, msg, want[i].want)
		}
	}
}

// The message users see quotes the key, the allowed values and the value
// given; docs/configuration.md shows it.
func TestInvalidContextMessage(t *testing.T) {
	t.Parallel()
	_, err := FromContext(lookup(map[string]any{KeyMaxTasks: "lots"}))
	const want = `invalid CDK context: context key "edp:maxTasks": must be an integer from 1 to 1000, got "lots"`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	_, err = FromContext(lookup(map[string]any{KeyMaxTasks: "lots", KeyCPU: "300"}))
	const both = `invalid CDK context: context key "edp:cpu": must be one of 256, 512, 1024, 2048, 4096, 8192, 16384, got 300` + "\n" + want
	if err == nil || err.Error() != both {
		t.Fatalf("error = %v, want\n%s", err, both)
	}
}

// Settings built in code follow the same idiom as the context: the zero
// value plus SetDefaults is Defaults, and Validate reports every problem.
func TestSetDefaultsThenValidate(t *testing.T) {
	t.Parallel()
	var s Settings
	s.SetDefaults()
	if diff := cmp.Diff(Defaults(), s); diff != "" {
		t.Fatalf("zero value + SetDefaults differs from Defaults (-want +got):\n%s", diff)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}

	// Set fields keep their values.
	kept := Settings{MaxTasks: 25, Network: NetworkPrivate}
	kept.SetDefaults()
	if kept.MaxTasks != 25 || kept.Network != NetworkPrivate || kept.CPU != 512 {
		t.Errorf("SetDefaults changed set fields or missed unset ones: %+v", kept)
	}

	s.MaxTasks, s.Architecture, s.CapacityProvider = 0, "x86_64", "FARGATE_SPOT"
	s.MemoryMiB = 512
	checkProblems(t, s.Validate(), []keyWant{{KeyMaxTasks, "got 0"}, {KeyMemory, "does not fit"}})

	// Validate applies no defaults: a zero field is a value like any other.
	err := Settings{}.Validate()
	for _, frag := range []string{`"edp:maxTasks": must be an integer from 1 to 1000, got 0`, `"edp:removalPolicy": must be one of "retain", "destroy", got ""`} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("Validate of the zero value = %v, want a problem %s", err, frag)
		}
	}
}
