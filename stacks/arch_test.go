package stacks_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/stacks"
)

func tpl(id string) assertions.Template { return templates[id] }

func TestOneOffRuleAlsoRunsADrainTaskToldWhatWokeIt(t *testing.T) {
	defer failOnPanic(t)
	tp := tpl(names.StackOneOff)
	var upload map[string]any
	for lid, r := range resources(t, tp, "AWS::Events::Rule") {
		if strings.HasPrefix(lid, "PipelineConfigUploaded") {
			upload = r["Properties"].(map[string]any)
		}
	}
	if upload == nil {
		t.Fatal("no upload rule")
	}
	targets := upload["Targets"].([]any)
	if len(targets) != 2 {
		t.Fatalf("want 2 targets (queue and RunTask), got %d", len(targets))
	}
	tp.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
		"Targets": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"EcsParameters": map[string]any{
				"TaskCount": 1, "LaunchType": "FARGATE", "PlatformVersion": "LATEST", "PropagateTags": "TASK_DEFINITION",
				"TaskDefinitionArn":    map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("PipelineTask"))},
				"NetworkConfiguration": map[string]any{"AwsVpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "ENABLED"})},
			},
			"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 7200},
			"DeadLetterConfig": assertions.Match_ObjectLike(&map[string]any{}),
			"InputTransformer": map[string]any{
				"InputPathsMap": map[string]any{"detail-bucket-name": "$.detail.bucket.name", "detail-object-key": "$.detail.object.key"},
				"InputTemplate": assertions.Match_StringLikeRegexp(jsii.String(names.EnvTriggerKey)),
			},
		})}),
	})
	// The rule's role may run exactly this task definition in this cluster.
	tp.HasResourceProperties(jsii.String("AWS::IAM::Policy"), map[string]any{
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"Action":    "ecs:RunTask",
			"Resource":  map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("PipelineTask"))},
			"Condition": map[string]any{"ArnEquals": map[string]any{"ecs:cluster": map[string]any{"Fn::GetAtt": assertions.Match_AnyValue()}}},
		})})},
	})
	tp.ResourceCountIs(jsii.String("AWS::ECS::Service"), jsii.Number(0))
}

func alarmByExpression(t *testing.T, tp assertions.Template, expr string) map[string]any {
	t.Helper()
	for _, a := range props(t, tp, "AWS::CloudWatch::Alarm") {
		metrics, _ := a["Metrics"].([]any) // single-metric alarms have none
		for _, m := range metrics {
			if m.(map[string]any)["Expression"] == expr {
				return a
			}
		}
	}
	t.Fatalf("no alarm with expression %q", expr)
	return nil
}

func TestAlarmServiceScalesOnBacklogOrAgeAndOnlyInWhenIdle(t *testing.T) {
	defer failOnPanic(t)
	tp := tpl(names.StackAlarmService)
	tp.HasResourceProperties(jsii.String("AWS::ECS::Service"), map[string]any{
		"LaunchType":           "FARGATE",
		"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "ENABLED"})},
	})
	tp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), map[string]any{
		"MinCapacity": 0, "MaxCapacity": 10, "ScalableDimension": "ecs:service:DesiredCount", "ServiceNamespace": "ecs",
	})

	out := alarmByExpression(t, tp, "MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)])")
	if out["Threshold"] != float64(10) || out["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || out["EvaluationPeriods"] != float64(1) {
		t.Errorf("scale-out alarm = %v", out)
	}
	raw, _ := json.Marshal(out["Metrics"])
	for _, metric := range []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"} {
		if !strings.Contains(string(raw), metric) {
			t.Errorf("scale-out alarm does not use %s: %s", metric, raw)
		}
	}
	idle := alarmByExpression(t, tp, stacks.IdleExpression)
	if idle["Threshold"] != float64(0) || idle["ComparisonOperator"] != "LessThanOrEqualToThreshold" ||
		idle["EvaluationPeriods"] != float64(5) || idle["DatapointsToAlarm"] != float64(5) || idle["TreatMissingData"] != "breaching" {
		t.Errorf("idle alarm = %v", idle)
	}

	tp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), map[string]any{
		"PolicyType": "StepScaling",
		"StepScalingPolicyConfiguration": assertions.Match_ObjectLike(&map[string]any{
			"AdjustmentType": "ChangeInCapacity",
			"StepAdjustments": []any{
				map[string]any{"ScalingAdjustment": 1, "MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10},
				map[string]any{"ScalingAdjustment": 2, "MetricIntervalLowerBound": 10, "MetricIntervalUpperBound": 40},
				map[string]any{"ScalingAdjustment": 4, "MetricIntervalLowerBound": 40},
			},
		}),
	})
	tp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), map[string]any{
		"PolicyType": "StepScaling",
		"StepScalingPolicyConfiguration": assertions.Match_ObjectLike(&map[string]any{
			"AdjustmentType":  "ExactCapacity",
			"StepAdjustments": []any{map[string]any{"ScalingAdjustment": 0, "MetricIntervalUpperBound": 0}},
		}),
	})
	// Step mode has no target tracking.
	tp.ResourcePropertiesCountIs(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"),
		map[string]any{"PolicyType": "TargetTrackingScaling"}, jsii.Number(0))
}

func TestAlarmDispatchWiresAlarmTopicLambdaWithLeastPrivilege(t *testing.T) {
	defer failOnPanic(t)
	tp := tpl(names.StackAlarmDispatch)
	tp.ResourceCountIs(jsii.String("AWS::ECS::Service"), jsii.Number(0))
	tp.ResourceCountIs(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), jsii.Number(0))
	tp.HasResourceProperties(jsii.String("AWS::SNS::Topic"), map[string]any{
		"KmsMasterKeyId": map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})},
	})
	tp.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	tp.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]any{
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
		})})},
	})
	// Gated on the function's own invocations: OK for a period after each
	// dispatch, so it notifies again while work waits (a dispatch that
	// started nothing, a burst behind busy tasks).
	alarm := alarmByExpression(t, tp, "IF(FILL(invocations, 0) > 0, 0, MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)]))")
	var gate map[string]any
	for _, m := range alarm["Metrics"].([]any) {
		if m.(map[string]any)["Id"] == "invocations" {
			gate = m.(map[string]any)
		}
	}
	stat, _ := gate["MetricStat"].(map[string]any)
	metric, _ := stat["Metric"].(map[string]any)
	dims, _ := json.Marshal(metric["Dimensions"])
	if metric["Namespace"] != "AWS/Lambda" || metric["MetricName"] != "Invocations" || stat["Stat"] != "Sum" ||
		stat["Period"] != float64(60) || !strings.Contains(string(dims), `{"Ref":"Dispatch`) {
		t.Errorf("dispatch alarm's gate is not the function's invocations per minute: %v", gate)
	}
	raw, _ := json.Marshal(alarm["AlarmActions"])
	if !strings.Contains(string(raw), "AlarmTopic") {
		t.Errorf("alarm does not notify the topic: %s", raw)
	}
	tp.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{"Protocol": "lambda"})

	env := map[string]any{}
	for _, e := range []string{names.EnvMaxTasks, names.EnvMessagesPerTask, names.EnvCapacityProvider, names.EnvContainerName, names.EnvAssignPublicIP, names.EnvStartedBy} {
		env[e] = assertions.Match_AnyValue()
	}
	env[names.EnvMaxTasks], env[names.EnvMessagesPerTask], env[names.EnvCapacityProvider] = "10", "100", "FARGATE"
	env[names.EnvAssignPublicIP], env[names.EnvContainerName] = "ENABLED", names.ContainerName
	for _, ref := range []string{names.EnvCluster, names.EnvTaskDefinition, names.EnvSubnets, names.EnvSecurityGroups, names.EnvQueueURL} {
		env[ref] = assertions.Match_AnyValue()
	}
	tp.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
		"Runtime": "provided.al2023", "Handler": "bootstrap", "Architectures": []any{"arm64"},
		"Environment":   map[string]any{"Variables": env},
		"LoggingConfig": map[string]any{"LogGroup": map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("DispatchLogs"))}},
	})
	tp.HasResourceProperties(jsii.String("AWS::Lambda::EventInvokeConfig"), map[string]any{
		"MaximumRetryAttempts": 2,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{
			"Destination": map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})},
		}},
	})

	var dispatch map[string]any
	for id, r := range resources(t, tp, "AWS::IAM::Policy") {
		if strings.HasPrefix(id, "DispatchRole") {
			dispatch = r["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)
		}
	}
	if dispatch == nil {
		t.Fatal("no dispatch role policy")
	}
	var actions []string
	for _, s := range dispatch["Statement"].([]any) {
		for _, a := range asList(s.(map[string]any)["Action"]) {
			actions = append(actions, a.(string))
		}
	}
	// The last three are CDK's grant for the on-failure destination queue.
	want := "ecs:RunTask,ecs:TagResource,iam:PassRole,ecs:ListTasks,sqs:GetQueueAttributes," +
		"logs:CreateLogStream,logs:PutLogEvents,sqs:SendMessage,sqs:GetQueueAttributes,sqs:GetQueueUrl"
	if got := strings.Join(actions, ","); got != want {
		t.Errorf("dispatch role actions\n got %s\nwant %s", got, want)
	}
	rawDoc, _ := json.Marshal(dispatch)
	for _, frag := range []string{`"iam:PassedToService":"ecs-tasks.amazonaws.com"`, `"ecs:CreateAction":"RunTask"`, `"ecs:cluster"`} {
		if !strings.Contains(string(rawDoc), frag) {
			t.Errorf("dispatch policy lacks condition %s", frag)
		}
	}
}

func TestCronUsesEventBridgeSchedulerToRunADrainTask(t *testing.T) {
	defer failOnPanic(t)
	tp := tpl(names.StackCron)
	tp.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(1)) // only the upload rule
	tp.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
		"ScheduleExpression":         "cron(0 2 * * ? *)",
		"ScheduleExpressionTimezone": "UTC",
		"FlexibleTimeWindow":         map[string]any{"Mode": "OFF"},
		"State":                      "ENABLED",
		"Target": assertions.Match_ObjectLike(&map[string]any{
			"Arn": map[string]any{"Fn::GetAtt": assertions.Match_ArrayWith(&[]any{"Arn"})},
			"EcsParameters": assertions.Match_ObjectLike(&map[string]any{
				"TaskCount": 1, "LaunchType": "FARGATE",
				"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "ENABLED"})},
			}),
			"RetryPolicy":      map[string]any{"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
			"DeadLetterConfig": assertions.Match_ObjectLike(&map[string]any{}),
		}),
	})
}

// containerEnv is the consumer container's environment in a template.
func containerEnv(t *testing.T, tp assertions.Template) map[string]any {
	t.Helper()
	env := map[string]any{}
	for _, td := range props(t, tp, "AWS::ECS::TaskDefinition") {
		for _, e := range td["ContainerDefinitions"].([]any)[0].(map[string]any)["Environment"].([]any) {
			kv := e.(map[string]any)
			env[kv["Name"].(string)] = kv["Value"]
		}
	}
	return env
}

// taskRoleStatement is the statement with sid in the task role's policy,
// nil if there is none.
func taskRoleStatement(t *testing.T, tp assertions.Template, sid string) map[string]any {
	t.Helper()
	for id, r := range resources(t, tp, "AWS::IAM::Policy") {
		if !strings.Contains(id, "TaskRoleDefaultPolicy") {
			continue
		}
		for _, s := range r["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			if st := s.(map[string]any); st["Sid"] == sid {
				return st
			}
		}
	}
	return nil
}

// Scheduler starts a drain task at every fire, so the cron stack's tasks
// cap themselves: the container gets EDP_MAX_TASKS = edp:maxTasks, and the
// task role may call ecs:ListTasks only in this stack's cluster (ListTasks
// has no resource-level permission: "*" with an ecs:cluster condition).
// The other stacks' drain tasks are capped elsewhere (or not at all) and
// get neither.
func TestCronDrainTasksCapThemselves(t *testing.T) {
	defer failOnPanic(t)
	cron := tpl(names.StackCron)
	if got := containerEnv(t, cron)[names.EnvMaxTasks]; got != "10" {
		t.Errorf("cron container %s = %v, want edp:maxTasks' default 10", names.EnvMaxTasks, got)
	}
	st := taskRoleStatement(t, cron, "CountOwnFamilyTasks")
	if st == nil {
		t.Fatal("cron task role has no CountOwnFamilyTasks statement")
	}
	var clusters []string
	for id := range resources(t, cron, "AWS::ECS::Cluster") {
		clusters = append(clusters, id)
	}
	if len(clusters) != 1 {
		t.Fatalf("clusters %v, want 1", clusters)
	}
	want := map[string]any{
		"Sid": "CountOwnFamilyTasks", "Effect": "Allow", "Action": "ecs:ListTasks", "Resource": "*",
		"Condition": map[string]any{"ArnEquals": map[string]any{"ecs:cluster": map[string]any{"Fn::GetAtt": []any{clusters[0], "Arn"}}}},
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("ListTasks statement (-want +got):\n%s", diff)
	}

	for _, id := range []string{names.StackOneOff, names.StackAlarmService, names.StackAlarmDispatch} {
		tp := tpl(id)
		if v, ok := containerEnv(t, tp)[names.EnvMaxTasks]; ok {
			t.Errorf("%s: container %s = %v, want none", id, names.EnvMaxTasks, v)
		}
		if st := taskRoleStatement(t, tp, "CountOwnFamilyTasks"); st != nil {
			t.Errorf("%s: task role may list tasks: %v", id, st)
		}
	}

	s := defaults
	s.MaxTasks = 3
	if got := containerEnv(t, synthVariant(t, names.StackCron, s))[names.EnvMaxTasks]; got != "3" {
		t.Errorf("edp:maxTasks=3: container %s = %v, want 3", names.EnvMaxTasks, got)
	}
}

// synthVariant builds one stack alone in its own App with non-default
// settings, checks it synthesizes with no nag findings and returns its
// template.
func synthVariant(t *testing.T, id string, s settings.Settings) assertions.Template {
	t.Helper()
	app := newApp(t)
	st := builders[id](app, &stacks.Props{Settings: s, RepoRoot: ".."})
	asm := app.Synth(nil)
	if asm.GetStackByName(jsii.String(id)) == nil {
		t.Fatalf("stack %s missing from the cloud assembly", id)
	}
	nag := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	raw, _ := json.Marshal(assertions.Annotations_FromStack(st).FindError(jsii.String("*"), nag))
	if string(raw) != "[]" {
		t.Errorf("cdk-nag errors: %s", raw)
	}
	return assertions.Template_FromStack(st, nil)
}

func TestEachStackSynthesizesStandalone(t *testing.T) {
	for id := range builders {
		t.Run(id, func(t *testing.T) {
			defer failOnPanic(t)
			synthVariant(t, id, defaults).ResourceCountIs(jsii.String("AWS::SQS::Queue"), jsii.Number(map[bool]float64{true: 4, false: 3}[id == names.StackAlarmDispatch]))
		})
	}
}

func TestBacklogModeAddsTargetTrackingOnBacklogPerTask(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.ScalingMode, s.BacklogPerTask, s.MaxTasks = settings.ScalingBacklog, 25, 40
	tp := synthVariant(t, names.StackAlarmService, s)
	tp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), map[string]any{"MaxCapacity": 40})
	tp.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), map[string]any{
		"PolicyType": "TargetTrackingScaling",
		"TargetTrackingScalingPolicyConfiguration": map[string]any{
			"TargetValue": 25, "DisableScaleIn": true, "ScaleOutCooldown": 60,
			"CustomizedMetricSpecification": map[string]any{"Metrics": assertions.Match_ArrayWith(&[]any{
				assertions.Match_ObjectLike(&map[string]any{"Id": "visible", "ReturnData": false, "MetricStat": assertions.Match_ObjectLike(&map[string]any{
					"Metric": assertions.Match_ObjectLike(&map[string]any{"Namespace": "AWS/SQS", "MetricName": "ApproximateNumberOfMessagesVisible"}),
				})}),
				assertions.Match_ObjectLike(&map[string]any{"Id": "running", "ReturnData": false, "MetricStat": assertions.Match_ObjectLike(&map[string]any{
					"Metric": assertions.Match_ObjectLike(&map[string]any{"Namespace": "ECS/ContainerInsights", "MetricName": "RunningTaskCount"}),
				})}),
				assertions.Match_ObjectLike(&map[string]any{"Id": "backlogPerTask", "Expression": stacks.BacklogPerTaskExpression, "ReturnData": true}),
			})},
		},
	})
	// The step policy still wakes the service from zero, and only then.
	tp.ResourcePropertiesCountIs(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"),
		map[string]any{"PolicyType": "StepScaling"}, jsii.Number(2))
	// Gated on the desired count, which counts tasks still starting: gated
	// on RunningTaskCount the alarm stayed in ALARM (and the step policy added
	// tasks each minute) while the first task was PENDING. No data (an empty
	// service may publish none) is filled with 0, so the service still wakes.
	wake := alarmByExpression(t, tp, "IF(FILL(desired, 0) > 0, 0, MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)]))")
	raw, _ := json.Marshal(wake["Metrics"])
	if !strings.Contains(string(raw), `"MetricName":"DesiredTaskCount"`) || strings.Contains(string(raw), "RunningTaskCount") {
		t.Errorf("wake alarm must read the desired task count only: %s", raw)
	}
}

// A DesiredCount in the service would be re-sent on every stack update and
// reset a scaled-out service, stopping busy tasks: scaling owns it.
func TestAlarmServiceLeavesDesiredCountToScaling(t *testing.T) {
	for _, mode := range []string{settings.ScalingStep, settings.ScalingBacklog} {
		t.Run(mode, func(t *testing.T) {
			s := defaults
			s.ScalingMode = mode
			tp := tpl(names.StackAlarmService)
			if mode != defaults.ScalingMode {
				tp = synthVariant(t, names.StackAlarmService, s)
			}
			svc := props(t, tp, "AWS::ECS::Service")
			if len(svc) != 1 {
				t.Fatalf("want one service, got %d", len(svc))
			}
			if v, ok := svc[0]["DesiredCount"]; ok {
				t.Errorf("service sets DesiredCount %v; every deploy would reset the running tasks to it", v)
			}
		})
	}
}

// Reserved concurrency fails the deploy on accounts with a small quota: it
// is off unless edp:dispatchReservedConcurrency asks for it.
func TestDispatchReservedConcurrencyIsOptIn(t *testing.T) {
	defer failOnPanic(t)
	fns := props(t, tpl(names.StackAlarmDispatch), "AWS::Lambda::Function")
	for _, fn := range fns {
		if v, ok := fn["ReservedConcurrentExecutions"]; ok {
			t.Errorf("default dispatch Lambda reserves concurrency %v", v)
		}
	}
	s := defaults
	s.DispatchReservedConcurrency = 2
	synthVariant(t, names.StackAlarmDispatch, s).HasResourceProperties(jsii.String("AWS::Lambda::Function"),
		map[string]any{"ReservedConcurrentExecutions": 2})
}

// A redriven message keeps its enqueue time, so a work queue that keeps
// messages as long as its dead-letter queues can lose one the moment it is
// redriven (issue 14, finding 5). At the default retention and at the
// longest one settings allows — found by asking settings from the SQS
// maximum down, so a rule that allows 14 days again fails here — every
// stack's work queue keeps messages strictly shorter than each of its DLQs.
func TestWorkQueueRetentionIsShorterThanEveryDLQ(t *testing.T) {
	const sqsMaxRetentionDays = 14
	longest := defaults
	for longest.QueueRetentionDays = sqsMaxRetentionDays; longest.Validate() != nil; longest.QueueRetentionDays-- {
		if longest.QueueRetentionDays == 1 {
			t.Fatalf("settings allow no edp:queueRetentionDays from 1 to %d", sqsMaxRetentionDays)
		}
	}
	variants := []struct {
		name      string
		days      int
		templates func(t *testing.T) map[string]assertions.Template
	}{
		{"default", defaults.QueueRetentionDays, func(*testing.T) map[string]assertions.Template { return templates }},
		{"longest allowed", longest.QueueRetentionDays, func(t *testing.T) map[string]assertions.Template { return synthAll(t, longest) }},
	}
	for _, v := range variants {
		t.Run(fmt.Sprintf("%s %d days", v.name, v.days), func(t *testing.T) {
			for id, tp := range v.templates(t) {
				t.Run(id, func(t *testing.T) {
					checkWorkQueueOutlived(t, tp, v.days)
				})
			}
		})
	}
}

// checkWorkQueueOutlived checks that the work queue (the one queue with a
// redrive policy) keeps messages days days, and every other queue — each a
// dead-letter queue — strictly longer.
func checkWorkQueueOutlived(t *testing.T, tp assertions.Template, days int) {
	t.Helper()
	var work float64
	dlqs := map[string]float64{}
	for lid, q := range resources(t, tp, "AWS::SQS::Queue") {
		p, _ := q["Properties"].(map[string]any)
		retention, ok := p["MessageRetentionPeriod"].(float64)
		if !ok {
			t.Fatalf("queue %s sets no MessageRetentionPeriod (SQS's default is 4 days)", lid)
		}
		if _, isWork := p["RedrivePolicy"]; isWork {
			work = retention
			continue
		}
		dlqs[lid] = retention
	}
	if want := float64(days * 24 * 3600); work != want {
		t.Errorf("work queue keeps messages %.0f s, want %.0f s (%d days)", work, want, days)
	}
	if len(dlqs) < 2 {
		t.Errorf("want at least 2 dead-letter queues, found %d", len(dlqs))
	}
	for lid, retention := range dlqs {
		if retention <= work {
			t.Errorf("dead-letter queue %s keeps messages %.0f s, not longer than the work queue's %.0f s: a redriven message may expire at once", lid, retention, work)
		}
	}
}

// synthAll builds every stack with settings s in one new App (one App per
// variant, as jsii start-up is paid per App) and returns their templates.
func synthAll(t *testing.T, s settings.Settings) map[string]assertions.Template {
	t.Helper()
	app := newApp(t)
	all := map[string]awscdk.Stack{}
	for id, b := range builders {
		all[id] = b(app, &stacks.Props{Settings: s, RepoRoot: ".."})
	}
	// Every stack is added before the first template: taking one
	// synthesizes the App, whose tree is then closed.
	out := map[string]assertions.Template{}
	for id, st := range all {
		out[id] = assertions.Template_FromStack(st, nil)
	}
	return out
}

// edp:network=default shares the account's default VPC (no new VPC per
// stack, so four stacks fit the VPC quota): public subnets, public IP.
func TestDefaultVPCModeCreatesNoVPC(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.Network = settings.NetworkDefault
	app := newApp(t)
	st := stacks.NewOneOffStack(app, names.StackOneOff, &stacks.Props{
		StackProps: awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")}},
		Settings:   s, RepoRoot: "..",
	})
	tp := assertions.Template_FromStack(st, nil)
	tp.ResourceCountIs(jsii.String("AWS::EC2::VPC"), jsii.Number(0))
	tp.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
		"Targets": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"EcsParameters": assertions.Match_ObjectLike(&map[string]any{
				"NetworkConfiguration": map[string]any{"AwsVpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "ENABLED"})},
			}),
		})}),
	})
}

// The consumer's Go runtime gets a soft memory limit under the task's.
func TestTaskSetsGoMemoryLimitFromTaskMemory(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.CPU, s.MemoryMiB = 1024, 4096
	tp := synthVariant(t, names.StackOneOff, s)
	tp.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{
		"ContainerDefinitions": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"Environment": assertions.Match_ArrayWith(&[]any{map[string]any{"Name": "GOMEMLIMIT", "Value": "3686MiB"}}),
		})}),
	})
	if got := stacks.GoMemLimit(1024); got != "921MiB" {
		t.Errorf("GoMemLimit(1024) = %q, want 921MiB", got)
	}
}

func TestPrivateNetworkUsesEndpointsAndNoPublicIP(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.Network = settings.NetworkPrivate
	tp := synthVariant(t, names.StackOneOff, s)
	tp.ResourceCountIs(jsii.String("AWS::EC2::InternetGateway"), jsii.Number(0))
	tp.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(0))
	tp.ResourcePropertiesCountIs(jsii.String("AWS::EC2::VPCEndpoint"), map[string]any{"VpcEndpointType": "Interface"}, jsii.Number(4))
	tp.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{
		"Targets": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"EcsParameters": assertions.Match_ObjectLike(&map[string]any{
				"NetworkConfiguration": map[string]any{"AwsVpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "DISABLED"})},
			}),
		})}),
	})
}

func TestKnobsReachTheTemplate(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.Architecture, s.CPU, s.MemoryMiB = "x86_64", 1024, 4096
	s.MaxReceiveCount, s.QueueRetentionDays, s.VisibilityTimeoutSeconds = 5, 3, 900
	s.Schedule, s.ScheduleTimeZone, s.LogRetentionDays = "rate(6 hours)", "Europe/Berlin", 90
	s.RemovalPolicy, s.AlertEmail = "destroy", "ops@example.com"
	tp := synthVariant(t, names.StackCron, s)
	tp.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{
		"Protocol": "email", "Endpoint": "ops@example.com",
		"TopicArn": map[string]any{"Ref": assertions.Match_StringLikeRegexp(jsii.String("^PipelineAlertTopic"))},
	})
	tp.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), map[string]any{
		"Cpu": "1024", "Memory": "4096",
		"RuntimePlatform": map[string]any{"CpuArchitecture": "X86_64", "OperatingSystemFamily": "LINUX"},
	})
	tp.HasResourceProperties(jsii.String("AWS::SQS::Queue"), map[string]any{
		"RedrivePolicy":          map[string]any{"maxReceiveCount": 5, "deadLetterTargetArn": assertions.Match_AnyValue()},
		"MessageRetentionPeriod": 3 * 24 * 3600, "VisibilityTimeout": 900,
	})
	tp.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
		"ScheduleExpression": "rate(6 hours)", "ScheduleExpressionTimezone": "Europe/Berlin",
	})
	tp.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 90})
	tp.HasResource(jsii.String("AWS::S3::Bucket"), map[string]any{"DeletionPolicy": "Delete"})
	tp.HasResource(jsii.String("AWS::SQS::Queue"), map[string]any{"DeletionPolicy": "Delete"})
	tp.ResourceCountIs(jsii.String("Custom::S3AutoDeleteObjects"), jsii.Number(1))
}

func TestImportedVPCUsesItsPrivateSubnetsWithoutPublicIP(t *testing.T) {
	defer failOnPanic(t)
	s := defaults
	s.Network, s.VpcID = settings.NetworkImport, "vpc-0123456789abcdef0"
	app := newApp(t)
	// Without credentials the lookup yields CDK's placeholder VPC (and
	// records the missing context); the template shape is what we test.
	st := stacks.NewCronStack(app, names.StackCron, &stacks.Props{
		StackProps: awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")}},
		Settings:   s, RepoRoot: "..",
	})
	tp := assertions.Template_FromStack(st, nil)
	tp.ResourceCountIs(jsii.String("AWS::EC2::VPC"), jsii.Number(0))
	tp.ResourceCountIs(jsii.String("AWS::EC2::FlowLog"), jsii.Number(0))
	tp.HasResourceProperties(jsii.String("AWS::Scheduler::Schedule"), map[string]any{
		"Target": assertions.Match_ObjectLike(&map[string]any{
			"EcsParameters": assertions.Match_ObjectLike(&map[string]any{
				"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": "DISABLED"})},
			}),
		}),
	})
}

// EdpOneOff retries stranded messages: the StrandedWork alarm (messages
// older than the max wait, nothing in flight, gated on its rule's own
// invocations) is matched by name in a second rule whose only target starts
// a drain task, with retries and the delivery DLQ, and no trigger override.
// The other stacks have neither.
func TestOneOffRetriesStrandedWork(t *testing.T) {
	defer failOnPanic(t)
	tp := tpl(names.StackOneOff)
	alarm := alarmByExpression(t, tp, stacks.StrandedExpression(defaults))
	if alarm["AlarmName"] != "EdpOneOff-stranded-work" || alarm["Threshold"] != float64(1) ||
		alarm["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || alarm["TreatMissingData"] != "notBreaching" {
		t.Errorf("stranded-work alarm = %v", alarm)
	}
	if _, ok := alarm["AlarmActions"]; ok {
		t.Errorf("stranded-work alarm has actions %v: its state change goes to the default bus, not a topic", alarm["AlarmActions"])
	}
	raw, _ := json.Marshal(alarm["Metrics"])
	if !strings.Contains(string(raw), `"MetricName":"Invocations","Namespace":"AWS/Events"`) || !strings.Contains(string(raw), `"Value":{"Ref":"StrandedWorkRule`) {
		t.Errorf("stranded-work alarm is not gated on its rule's invocations: %s", raw)
	}
	var rule map[string]any
	for lid, r := range resources(t, tp, "AWS::Events::Rule") {
		if strings.HasPrefix(lid, "StrandedWorkRule") {
			rule = r["Properties"].(map[string]any)
		}
	}
	if rule == nil {
		t.Fatal("no stranded-work rule")
	}
	pattern, _ := json.Marshal(rule["EventPattern"])
	for _, want := range []string{`"detail-type":["CloudWatch Alarm State Change"]`, `"source":["aws.cloudwatch"]`, `"state":{"value":["ALARM"]}`, `:alarm:EdpOneOff-stranded-work"`} {
		if !strings.Contains(string(pattern), want) {
			t.Errorf("stranded-work rule pattern %s lacks %s", pattern, want)
		}
	}
	targets, _ := rule["Targets"].([]any)
	if len(targets) != 1 {
		t.Fatalf("stranded-work rule targets = %v, want one RunTask", targets)
	}
	target := targets[0].(map[string]any)
	if target["EcsParameters"] == nil || target["DeadLetterConfig"] == nil || (target["Input"] != nil && target["Input"] != "{}") || target["InputTransformer"] != nil {
		t.Errorf("stranded-work target = %v, want RunTask with a dead-letter config and no trigger override", target)
	}
	for _, id := range []string{names.StackAlarmService, names.StackAlarmDispatch, names.StackCron} {
		for lid := range resources(t, tpl(id), "AWS::Events::Rule") {
			if strings.HasPrefix(lid, "StrandedWorkRule") {
				t.Errorf("%s has a stranded-work rule", id)
			}
		}
	}
}
