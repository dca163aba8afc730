package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
)

// NewOneOffStack builds EdpOneOff: the upload rule has two targets, the queue
// and an ECS RunTask of the consumer in drain mode. The task is told which
// object woke it (container overrides) and drains the queue, then exits.
func NewOneOffStack(scope constructs.Construct, id string, props *Props) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	p := NewPipeline(stack, "Pipeline", &PipelineProps{Settings: props.Settings, Mode: names.ModeDrain, RepoRoot: props.repoRoot()})

	role := newLauncherRole(stack, "RuleRole", p, awsiam.NewServicePrincipal(jsii.String("events.amazonaws.com"), nil),
		"edp one-off: start consumer tasks in one cluster")
	p.Rule.AddTarget(awseventstargets.NewEcsTask(&awseventstargets.EcsTaskProps{
		Role:            frozen(role),
		Cluster:         p.Cluster,
		TaskDefinition:  p.TaskDefinition,
		TaskCount:       jsii.Number(1),
		LaunchType:      awsecs.LaunchType_FARGATE,
		PlatformVersion: p.Placement.PlatformVersion,
		SubnetSelection: p.Placement.Subnets,
		SecurityGroups:  p.Placement.SecurityGroups,
		AssignPublicIp:  p.Placement.AssignPublicIP,
		PropagateTags:   awsecs.PropagatedTagSource_TASK_DEFINITION,
		ContainerOverrides: &[]*awseventstargets.ContainerOverride{{
			ContainerName: jsii.String(names.ContainerName),
			Environment: &[]*awseventstargets.TaskEnvironmentVariable{
				{Name: jsii.String(names.EnvTriggerBucket), Value: awsevents.EventField_FromPath(jsii.String("$.detail.bucket.name"))},
				{Name: jsii.String(names.EnvTriggerKey), Value: awsevents.EventField_FromPath(jsii.String("$.detail.object.key"))},
			},
		}},
		// A task that could not start is retried; what still fails lands in
		// the delivery DLQ. The message itself is safe in the queue either way.
		RetryAttempts:   jsii.Number(10),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(2)),
		DeadLetterQueue: p.DeliveryDLQ,
	}))
	applyNagSuppressions(stack)
	return stack
}
