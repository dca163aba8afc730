package stacks_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/stacks"
)

// One App for the whole package: jsii start-up costs seconds, each App less.
var (
	defaults  = settings.Defaults()
	templates = map[string]assertions.Template{}
	built     = map[string]awscdk.Stack{}
	// cleanups are output directories of Apps built lazily by tests.
	cleanups []string
)

var builders = map[string]func(app awscdk.App, props *stacks.Props) awscdk.Stack{
	names.StackOneOff: func(a awscdk.App, p *stacks.Props) awscdk.Stack {
		return stacks.NewOneOffStack(a, names.StackOneOff, p)
	},
	names.StackAlarmService: func(a awscdk.App, p *stacks.Props) awscdk.Stack {
		return stacks.NewAlarmServiceStack(a, names.StackAlarmService, p)
	},
	names.StackAlarmDispatch: func(a awscdk.App, p *stacks.Props) awscdk.Stack {
		return stacks.NewAlarmDispatchStack(a, names.StackAlarmDispatch, p)
	},
	names.StackCron: func(a awscdk.App, p *stacks.Props) awscdk.Stack { return stacks.NewCronStack(a, names.StackCron, p) },
}

func newApp(t testing.TB) awscdk.App {
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(tempDir(t))})
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(nil), nil)
	return app
}

func tempDir(t testing.TB) string {
	if t != nil {
		return t.TempDir()
	}
	d, err := os.MkdirTemp("", "edp-cdk-test-")
	if err != nil {
		panic(err)
	}
	return d
}

func TestMain(m *testing.M) {
	app := newApp(nil)
	outdir := *app.Outdir()
	for id, b := range builders {
		built[id] = b(app, &stacks.Props{Settings: defaults, RepoRoot: ".."})
	}
	for id, st := range built {
		templates[id] = assertions.Template_FromStack(st, nil)
	}
	code := m.Run()
	for _, d := range append(cleanups, outdir) {
		os.RemoveAll(d)
	}
	jsii.Close()
	os.Exit(code)
}

// resources returns the template's resources of one type as plain JSON values.
func resources(t *testing.T, tpl assertions.Template, typ string) map[string]map[string]any {
	t.Helper()
	raw, err := json.Marshal(tpl.FindResources(jsii.String(typ), nil))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func props(t *testing.T, tpl assertions.Template, typ string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, r := range resources(t, tpl, typ) {
		p, _ := r["Properties"].(map[string]any)
		out = append(out, p)
	}
	return out
}

// forEachStack runs f as a subtest per stack. CDK assertions panic on a
// mismatch; the panic becomes that subtest's failure, so one mismatch does
// not hide the others.
func forEachStack(t *testing.T, f func(t *testing.T, tpl assertions.Template)) {
	for id, tpl := range templates {
		t.Run(id, func(t *testing.T) {
			defer failOnPanic(t)
			f(t, tpl)
		})
	}
}

func failOnPanic(t *testing.T) {
	if r := recover(); r != nil {
		t.Errorf("assertion failed: %v", r)
	}
}

func TestNoUnsuppressedNagFindings(t *testing.T) {
	for id, st := range built {
		t.Run(id, func(t *testing.T) {
			ann := assertions.Annotations_FromStack(st)
			nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
			for kind, msgs := range map[string]any{
				"error":   ann.FindError(jsii.String("*"), nag),
				"warning": ann.FindWarning(jsii.String("*"), nag),
			} {
				raw, _ := json.Marshal(msgs)
				var list []any
				if err := json.Unmarshal(raw, &list); err != nil {
					t.Fatal(err)
				}
				if len(list) != 0 {
					t.Errorf("%d cdk-nag %s(s): %s", len(list), kind, raw)
				}
			}
		})
	}
}

func TestBucketIsPrivateEncryptedVersionedAndSendsEventsToEventBridge(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		tpl.ResourceCountIs(jsii.String("AWS::S3::Bucket"), jsii.Number(1))
		tpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
			"NotificationConfiguration": map[string]any{"EventBridgeConfiguration": map[string]any{"EventBridgeEnabled": true}},
			"PublicAccessBlockConfiguration": map[string]any{
				"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
			},
			"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
				map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
			}},
			"VersioningConfiguration": map[string]any{"Status": "Enabled"},
			"LifecycleConfiguration": map[string]any{"Rules": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{
					"NoncurrentVersionExpiration": map[string]any{"NoncurrentDays": 30}, "Status": "Enabled",
				}),
			})},
		})
		// Retained by default: a stack deletion must not delete users' data.
		tpl.HasResource(jsii.String("AWS::S3::Bucket"), map[string]any{"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
		// No custom-resource Lambda for bucket notifications.
		tpl.ResourceCountIs(jsii.String("Custom::S3BucketNotifications"), jsii.Number(0))
		tpl.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{
					"Effect": "Deny", "Action": "s3:*",
					"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
				}),
				assertions.Match_ObjectLike(&map[string]any{
					"Effect": "Deny", "Action": "s3:*",
					"Condition": map[string]any{"NumericLessThan": map[string]any{"s3:TlsVersion": 1.2}},
				}),
			})},
		})
	})
}

func TestQueuesAreEncryptedRetainedAndRedrive(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		queues := props(t, tpl, "AWS::SQS::Queue")
		if len(queues) < 3 {
			t.Fatalf("want at least queue, DLQ and delivery DLQ, got %d queues", len(queues))
		}
		redriving := 0
		for _, q := range queues {
			if q["SqsManagedSseEnabled"] != true {
				t.Errorf("queue without SSE: %v", q)
			}
			// The work queue (the one that redrives) keeps messages for
			// edp:queueRetentionDays, every dead-letter queue for 14 days.
			days := 14
			if _, work := q["RedrivePolicy"]; work {
				days = defaults.QueueRetentionDays
			}
			if q["MessageRetentionPeriod"] != float64(days*24*3600) {
				t.Errorf("queue retention %v, want %d days", q["MessageRetentionPeriod"], days)
			}
			if rp, ok := q["RedrivePolicy"].(map[string]any); ok {
				redriving++
				if rp["maxReceiveCount"] != float64(3) {
					t.Errorf("maxReceiveCount %v, want 3", rp["maxReceiveCount"])
				}
				if q["VisibilityTimeout"] != float64(300) || q["ReceiveMessageWaitTimeSeconds"] != float64(20) {
					t.Errorf("work queue visibility/wait = %v/%v, want 300/20", q["VisibilityTimeout"], q["ReceiveMessageWaitTimeSeconds"])
				}
			}
		}
		if redriving != 1 {
			t.Errorf("want exactly one queue with a redrive policy, got %d", redriving)
		}
		// Every queue policy denies non-TLS access.
		for _, p := range props(t, tpl, "AWS::SQS::QueuePolicy") {
			raw, _ := json.Marshal(p)
			if !strings.Contains(string(raw), `"aws:SecureTransport":"false"`) {
				t.Errorf("queue policy without TLS-only deny: %s", raw)
			}
		}
	})
}

// The work queue admits messages from this rule only.
func TestQueuePolicyAdmitsOnlyTheRule(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		tpl.HasResourceProperties(jsii.String("AWS::SQS::QueuePolicy"), map[string]any{
			"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{
					"Effect":    "Allow",
					"Action":    []any{"sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"},
					"Principal": map[string]any{"Service": "events.amazonaws.com"},
					"Condition": map[string]any{"ArnEquals": map[string]any{
						"aws:SourceArn": map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})},
					}},
				}),
			})},
		})
	})
}

// The rule deploys names.ConfigEventPattern (whose filters names_test pins)
// for this stack's bucket.
func TestRuleMatchesOnlyConfigUploadsOfThisBucket(t *testing.T) {
	pattern := configEventPatternOfPipelineBucket(t)
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		tpl.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
			"EventPattern": pattern,
			"Targets": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
				"Arn":              map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})},
				"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
				"DeadLetterConfig": assertions.Match_ObjectLike(&map[string]any{}),
			})}),
		})
	})
}

// configEventPatternOfPipelineBucket is names.ConfigEventPattern as the
// template holds it: plain JSON values, the bucket name a Ref to the
// pipeline's bucket.
func configEventPatternOfPipelineBucket(t *testing.T) map[string]any {
	t.Helper()
	raw, err := json.Marshal(names.ConfigEventPattern("bucket"))
	if err != nil {
		t.Fatal(err)
	}
	var pattern map[string]any
	if err := json.Unmarshal(raw, &pattern); err != nil {
		t.Fatal(err)
	}
	pattern["detail"].(map[string]any)["bucket"] = map[string]any{
		"name": []any{map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("PipelineBucket"))}},
	}
	return pattern
}

func TestTaskDefinitionRunsTheConsumer(t *testing.T) {
	wantMode := map[string]string{
		names.StackOneOff: names.ModeDrain, names.StackCron: names.ModeDrain,
		names.StackAlarmDispatch: names.ModeDrain, names.StackAlarmService: names.ModeServe,
	}
	for id, tpl := range templates {
		t.Run(id, func(t *testing.T) {
			defer failOnPanic(t)
			tpl.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{
				"Cpu": "512", "Memory": "1024", "RequiresCompatibilities": []any{"FARGATE"}, "NetworkMode": "awsvpc",
				"RuntimePlatform": map[string]any{"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"},
				"ContainerDefinitions": []any{assertions.Match_ObjectLike(&map[string]any{
					"Name":                   names.ContainerName,
					"Command":                []any{wantMode[id]},
					"StopTimeout":            120,
					"ReadonlyRootFilesystem": true,
					"LogConfiguration":       assertions.Match_ObjectLike(&map[string]any{"LogDriver": "awslogs"}),
				})},
			})
			tpl.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 30})
			env := map[string]any{}
			for _, td := range props(t, tpl, "AWS::ECS::TaskDefinition") {
				for _, e := range td["ContainerDefinitions"].([]any)[0].(map[string]any)["Environment"].([]any) {
					kv := e.(map[string]any)
					env[kv["Name"].(string)] = kv["Value"]
				}
			}
			for name, want := range map[string]any{
				names.EnvVisibilityTimeout: "300", names.EnvConfigPrefix: names.ConfigPrefix,
				names.EnvArtifactPrefix: names.ArtifactPrefix, names.EnvRecordPrefix: names.RecordPrefix,
				names.EnvEmptyReceives: "3", names.EnvWaitSeconds: "20",
			} {
				if env[name] != want {
					t.Errorf("env %s = %v, want %v", name, env[name], want)
				}
			}
			for _, name := range []string{names.EnvQueueURL, names.EnvDLQURL, names.EnvBucket} {
				if _, ok := env[name].(map[string]any); !ok {
					t.Errorf("env %s = %v, want a reference to the stack's resource", name, env[name])
				}
			}
		})
	}
}

// statements flattens every IAM policy statement of a template.
func statements(t *testing.T, tpl assertions.Template) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, p := range props(t, tpl, "AWS::IAM::Policy") {
		doc := p["PolicyDocument"].(map[string]any)
		for _, s := range doc["Statement"].([]any) {
			out = append(out, s.(map[string]any))
		}
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// No IAM statement grants "*" resources except for actions that have no
// resource-level permissions, and no statement uses a wildcard action.
func TestIAMHasNoWildcardsBeyondTheUnscopable(t *testing.T) {
	unscopable := map[string]bool{"ecr:GetAuthorizationToken": true, "ecs:ListTasks": true}
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		for _, s := range statements(t, tpl) {
			actions := asList(s["Action"])
			for _, a := range actions {
				if strings.HasSuffix(a.(string), "*") && a.(string) != "kms:GenerateDataKey*" {
					t.Errorf("wildcard action %v in %v", a, s)
				}
			}
			for _, r := range asList(s["Resource"]) {
				if r == "*" {
					for _, a := range actions {
						if !unscopable[a.(string)] {
							t.Errorf("action %v on resource * in %v", a, s)
						}
					}
				}
			}
		}
	})
}

func TestTaskRoleIsLeastPrivilege(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		var taskPolicy map[string]any
		for id, r := range resources(t, tpl, "AWS::IAM::Policy") {
			if strings.Contains(id, "TaskRoleDefaultPolicy") {
				taskPolicy = r["Properties"].(map[string]any)
			}
		}
		if taskPolicy == nil {
			t.Fatal("no task role policy")
		}
		got := map[string][]string{}
		for _, s := range taskPolicy["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			st := s.(map[string]any)
			var acts []string
			for _, a := range asList(st["Action"]) {
				acts = append(acts, a.(string))
			}
			got[st["Sid"].(string)] = acts
		}
		want := map[string][]string{
			"ConsumeQueue":               {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			"MovePermanentFailuresToDLQ": {"sqs:SendMessage"},
			"ReadConfigs":                {"s3:GetObject", "s3:GetObjectVersion"},
			"WriteArtifactsAndRecords":   {"s3:GetObject", "s3:PutObject"},
			"TellMissingFromDenied":      {"s3:ListBucket"},
		}
		// Serve-mode tasks (the service) protect themselves from scale-in
		// through the ECS agent, which calls ECS with the task role.
		if len(resources(t, tpl, "AWS::ECS::Service")) > 0 {
			want["ProtectOwnTaskFromScaleIn"] = []string{"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
		}
		// Scheduled drain tasks cap themselves by counting their family's
		// tasks (TestCronDrainTasksCapThemselves checks the condition).
		if len(resources(t, tpl, "AWS::Scheduler::Schedule")) > 0 {
			want["CountOwnFamilyTasks"] = []string{"ecs:ListTasks"}
		}
		if len(got) != len(want) {
			t.Fatalf("task role statements %v, want %v", got, want)
		}
		for sid, acts := range want {
			if strings.Join(got[sid], ",") != strings.Join(acts, ",") {
				t.Errorf("statement %s: actions %v, want %v", sid, got[sid], acts)
			}
		}
		raw, _ := json.Marshal(taskPolicy)
		for _, prefix := range []string{"/configs/*", "/artifacts/*", "/runs/*"} {
			if !strings.Contains(string(raw), prefix) {
				t.Errorf("task role policy does not scope to %s: %s", prefix, raw)
			}
		}
	})
}

func TestSecurityGroupsHaveNoIngress(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		for _, p := range props(t, tpl, "AWS::EC2::SecurityGroup") {
			if in, ok := p["SecurityGroupIngress"]; ok {
				t.Errorf("security group with ingress: %v", in)
			}
		}
		tpl.ResourceCountIs(jsii.String("AWS::EC2::SecurityGroupIngress"), jsii.Number(0))
		tpl.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(0))
		tpl.HasResourceProperties(jsii.String("AWS::EC2::VPCEndpoint"), map[string]any{"VpcEndpointType": "Gateway"})
		tpl.HasResourceProperties(jsii.String("AWS::EC2::FlowLog"), map[string]any{"TrafficType": "REJECT"})
	})
}

func TestOutputsNameTheResourcesUsersNeed(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		for _, o := range []string{names.OutputBucket, names.OutputQueueURL, names.OutputDLQURL, names.OutputCluster, names.OutputTaskDefinition, names.OutputDashboard} {
			tpl.HasOutput(jsii.String(o), map[string]any{})
		}
	})
}
