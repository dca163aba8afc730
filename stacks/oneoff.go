package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// NewOneOffStack builds EdpOneOff: the upload rule has two targets, the queue
// and an ECS RunTask of the consumer in drain mode. The task is told which
// object woke it (container overrides) and drains the queue, then exits.
func NewOneOffStack(scope constructs.Construct, id string, props *Props) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	p := NewPipeline(stack, "Pipeline", &PipelineProps{Settings: props.Settings, Mode: names.ModeDrain, RepoRoot: props.repoRoot()})

	role := newLauncherRole(stack, "RuleRole", p, awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil),
		"edp one-off: start consumer tasks in one cluster")
	p.Rule.AddTarget(p.drainTaskTarget(role, &[]*awseventstargets.ContainerOverride{{
		ContainerName: jsii.String(names.ContainerName),
		Environment: &[]*awseventstargets.TaskEnvironmentVariable{
			{Name: jsii.String(names.EnvTriggerBucket), Value: awsevents.EventField_FromPath(jsii.String("$.detail.bucket.name"))},
			{Name: jsii.String(names.EnvTriggerKey), Value: awsevents.EventField_FromPath(jsii.String("$.detail.object.key"))},
		},
	}}))
	stranded := newStrandedWorkRetry(stack, p, props.Settings, role)
	p.addDashboard(DashboardParts{Alarms: []string{stranded}})
	applyNagSuppressions(stack, props.Settings)
	return stack
}

// drainTaskTarget is a rule target that starts one drain-mode consumer task
// with the given container overrides (none: nil). A task that could not
// start is retried; what still fails lands in the delivery DLQ. The
// messages themselves are safe in the queue either way.
func (p *Pipeline) drainTaskTarget(role awsiam.Role, overrides *[]*awseventstargets.ContainerOverride) awsevents.IRuleTarget {
	return awseventstargets.NewEcsTask(&awseventstargets.EcsTaskProps{
		Role:               frozen(role),
		Cluster:            p.Cluster,
		TaskDefinition:     p.TaskDefinition,
		TaskCount:          jsii.Number(1),
		LaunchType:         awsecs.LaunchType_FARGATE,
		PlatformVersion:    p.Placement.PlatformVersion,
		SubnetSelection:    p.Placement.Subnets,
		SecurityGroups:     p.Placement.SecurityGroups,
		AssignPublicIp:     p.Placement.AssignPublicIP,
		PropagateTags:      awsecs.PropagatedTagSource_TASK_DEFINITION,
		ContainerOverrides: overrides,
		RetryAttempts:      jsii.Number(10),
		MaxEventAge:        awscdk.Duration_Hours(jsii.Number(2)),
		DeadLetterQueue:    p.DeliveryDLQ,
	})
}

// StrandedExpression is true (1) when messages have waited the max wait
// with nothing in flight — no task is working on the queue, e.g. because
// every RunTask try of their uploads failed — gated like DispatchExpression
// on the retry rule's own invocations, which EventBridge counts once an
// event's delivery has ended (the task started, or the event dead-lettered
// after its retries): the alarm re-arms after each delivery.
func StrandedExpression(s settings.Settings) string {
	return fmt.Sprintf("IF(FILL(invocations, 0) > 0, 0, IF(FILL(age, 0) >= %d AND FILL(visible, 0) > 0 AND FILL(inflight, 0) == 0, 1, 0))",
		s.MaxWaitMinutes*60)
}

// newStrandedWorkRetry is EdpOneOff's retry path for stranded messages. An
// upload's message is safe in the queue even when every RunTask try of its
// event fails (the event goes to the delivery DLQ), but without another
// upload no task would ever come for it. The StrandedWork alarm notices
// (messages older than the max wait, nothing in flight) and its state
// change — an event CloudWatch sends to the default bus — matches a second
// rule whose target starts a drain task. Idle, it costs one alarm, whose
// name it returns.
func newStrandedWorkRetry(stack awscdk.Stack, p *Pipeline, s settings.Settings, role awsiam.Role) string {
	name := AlarmName(stack, "stranded-work")
	rule := awsevents.NewRule(stack, jsii.String("StrandedWorkRule"), &awsevents.RuleProps{
		Description: jsii.String("edp: the StrandedWork alarm went to ALARM: start a drain task"),
		EventPattern: &awsevents.EventPattern{
			Source:     jsii.Strings("aws.cloudwatch"),
			DetailType: jsii.Strings("CloudWatch Alarm State Change"),
			// Named by its ARN, not a reference: the alarm refers to the
			// rule (its gate metric), so a reference back would be a cycle.
			Resources: &[]*string{alarmArn(stack, name)},
			Detail:    &map[string]interface{}{"state": map[string]interface{}{"value": []string{"ALARM"}}},
		},
	})
	rule.AddTarget(p.drainTaskTarget(role, nil))
	q := p.Queue
	expr := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(StrandedExpression(s)),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"visible":  queueMetric(q, "visible"),
			"inflight": queueMetric(q, "inflight"),
			"age":      queueMetric(q, "age"),
			"invocations": awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
				Namespace: jsii.String("AWS/Events"), MetricName: jsii.String("Invocations"),
				DimensionsMap: &map[string]*string{"RuleName": rule.RuleName()},
				Statistic:     jsii.String("Sum"), Period: metricPeriod,
			}),
		},
		Label:  jsii.String("Stranded work"),
		Period: metricPeriod,
	})
	expr.CreateAlarm(stack, jsii.String("StrandedWorkAlarm"), &awscloudwatch.CreateAlarmOptions{
		AlarmName: jsii.String(name),
		AlarmDescription: jsii.String(fmt.Sprintf(
			"edp: messages waited %d minutes with no task working on the queue; a drain task is started", s.MaxWaitMinutes)),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	return name
}
