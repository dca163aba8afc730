package stacks

import (
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdklambdagoalpha/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
)

// NewAlarmDispatchStack builds EdpAlarmDispatch: the backlog alarm (N+
// messages, or messages older than the max wait) notifies an encrypted SNS
// topic; the Go Lambda in lambdas/alarm-dispatch reads the queue and starts
// the right number of drain-mode tasks with ecs:RunTask.
func NewAlarmDispatchStack(scope constructs.Construct, id string, props *Props) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	s := props.Settings
	p := NewPipeline(stack, "Pipeline", &PipelineProps{Settings: s, Mode: names.ModeDrain, RepoRoot: props.repoRoot()})

	// CloudWatch must be able to use the topic's key, so it cannot be the
	// AWS-managed alias/aws/sns key.
	key := awskms.NewKey(stack, jsii.String("AlarmTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("edp: encrypts the queue-alarm topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     p.Removal,
	})
	topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("edp queue alarm"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	logs := awslogs.NewLogGroup(stack, jsii.String("DispatchLogs"), &awslogs.LogGroupProps{
		Retention:     retentionDays(s.LogRetentionDays),
		RemovalPolicy: p.Removal,
	})
	role := awsiam.NewRole(stack, jsii.String("DispatchRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("edp alarm-dispatch: start consumer tasks in one cluster"),
	})
	grantDispatcher(role, p, logs)

	failures := newQueue(stack, "DispatchFailures", DeadLetterRetention(), p.Removal, nil)
	p.Alerts.watchNotEmpty(stack, "DispatchFailuresNotEmptyAlarm", "dispatch-failures", failures,
		"alarm notifications the dispatch function gave up on (tasks it could not start)")

	fn := awscdklambdagoalpha.NewGoFunction(stack, jsii.String("Dispatch"), &awscdklambdagoalpha.GoFunctionProps{
		Entry:        jsii.String(filepath.Join(props.repoRoot(), "lambdas", "alarm-dispatch")),
		ModuleDir:    jsii.String(filepath.Join(props.repoRoot(), "go.mod")),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		MemorySize:   jsii.Number(256),
		Timeout:      awscdk.Duration_Minutes(jsii.Number(2)),
		Role:         role,
		LogGroup:     logs,
		// No reserved concurrency unless asked for (edp:dispatchReservedConcurrency):
		// a reservation fails the deploy on accounts with a small concurrency
		// quota. Concurrent invocations are safe: the handler re-reads running
		// tasks before each batch and its RunTask client tokens make a
		// redelivered notification start nothing twice.
		ReservedConcurrentExecutions: reservedConcurrency(s.DispatchReservedConcurrency),
		RetryAttempts:                jsii.Number(2),
		MaxEventAge:                  awscdk.Duration_Hours(jsii.Number(1)),
		OnFailure:                    awslambdadestinations.NewSqsDestination(failures),
		Environment: &map[string]*string{
			names.EnvCluster:          p.Cluster.ClusterName(),
			names.EnvTaskDefinition:   p.TaskDefinition.TaskDefinitionArn(),
			names.EnvSubnets:          p.Network.SubnetIDs(),
			names.EnvSecurityGroups:   p.Network.SecurityGroup.SecurityGroupId(),
			names.EnvAssignPublicIP:   jsii.String(map[bool]string{true: "ENABLED", false: "DISABLED"}[p.Network.AssignPublicIP]),
			names.EnvQueueURL:         p.Queue.QueueUrl(),
			names.EnvMaxTasks:         jsii.String(strconv.Itoa(s.MaxTasks)),
			names.EnvMessagesPerTask:  jsii.String(strconv.Itoa(s.MessagesPerTask)),
			names.EnvCapacityProvider: jsii.String(s.CapacityProvider),
			names.EnvContainerName:    jsii.String(names.ContainerName),
			names.EnvStartedBy:        jsii.String(names.DefaultStartedBy),
		},
		Bundling: &awscdklambdagoalpha.BundlingOptions{
			CgoEnabled:   jsii.Bool(false),
			GoBuildFlags: jsii.Strings("-trimpath", `-ldflags "-s -w"`, "-tags lambda.norpc"),
		},
	})
	// The flags above are fixed in this file, not taken from input.
	awscdk.Annotations_Of(stack).AcknowledgeWarning(jsii.String("@aws-cdk/aws-lambda-go-alpha:goBuildFlagsSecurityWarning"),
		jsii.String("build flags are constants in stacks/alarmdispatch.go"))
	topic.AddSubscription(awssnssubscriptions.NewLambdaSubscription(fn, nil))

	// The alarm is gated on the function's own invocations (see
	// DispatchExpression): each dispatch re-arms it.
	invocations := fn.MetricInvocations(&awscloudwatch.MetricOptions{Period: metricPeriod, Statistic: jsii.String("Sum")})
	alarm := newScaleOutAlarm(stack, p.Queue, s, gateInvoked, invocations)
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	// A topic policy replaces SNS's default one, and EnforceSSL writes one
	// with only its Deny: without this Allow, CloudWatch could never publish.
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  &[]*string{topic.TopicArn()},
		Conditions: fromAlarm(stack, alarm.AlarmArn()),
	}))
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		// The key cannot name the alarm (key → alarm → topic → key would be a
		// cycle): any alarm of this account and region; the topic policy
		// names the exact one.
		Conditions: fromAlarm(stack, stack.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"), ResourceName: jsii.String("*"),
			ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
		})),
	}), nil)
	p.addDashboard(DashboardParts{
		Function:         fn,
		DeadLetterQueues: []LabeledQueue{{Label: "Dispatch failures (notifications given up on)", Queue: failures}},
		Alarms:           []string{AlarmName(stack, backlogAlarm)},
	})
	applyNagSuppressions(stack, props.Settings)
	return stack
}

// fromAlarm limits a statement for CloudWatch to calls on behalf of the
// alarms whose ARN matches alarmArn, in this account (confused-deputy
// protection): the topic policy and the key policy both.
func fromAlarm(stack awscdk.Stack, alarmArn *string) *map[string]interface{} {
	return &map[string]interface{}{
		"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()},
		"ArnLike":      map[string]interface{}{"aws:SourceArn": alarmArn},
	}
}

func reservedConcurrency(n int) *float64 {
	if n == 0 {
		return nil
	}
	return jsii.Number(float64(n))
}

// grantDispatcher gives the Lambda role exactly what dispatching needs: start
// this task definition in this cluster (and tag what it starts), pass the two
// task roles to ECS, list the cluster's tasks, read the queue's depth, and
// write its own logs.
func grantDispatcher(role awsiam.Role, p *Pipeline, logs awslogs.LogGroup) {
	add := func(sid string, actions []string, resources []*string, conditions *map[string]interface{}) {
		role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid), Actions: jsii.Strings(actions...), Resources: &resources, Conditions: conditions,
		}))
	}
	for _, st := range p.runTaskStatements() {
		role.AddToPolicy(st)
	}
	// ListTasks has no resource-level permission; the condition scopes it.
	add("ListClusterTasks", []string{"ecs:ListTasks"}, []*string{jsii.String("*")}, p.inCluster())
	add("ReadQueueDepth", []string{"sqs:GetQueueAttributes"}, []*string{p.Queue.QueueArn()}, nil)
	add("WriteOwnLogs", []string{"logs:CreateLogStream", "logs:PutLogEvents"}, []*string{logs.LogGroupArn()}, nil)
}
