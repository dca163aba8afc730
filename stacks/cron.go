package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsschedulertargets"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
)

// NewCronStack builds EdpCron: an EventBridge Scheduler schedule (cron or
// rate expression, in a time zone) runs the consumer in drain mode, which
// processes everything uploaded since the last run and exits.
//
// Scheduler starts a task at every fire, however many still run, so the
// drain tasks cap themselves: each exits at start, without receiving, when
// edp:maxTasks others of its task definition already run in the cluster.
func NewCronStack(scope constructs.Construct, id string, props *Props) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	s := props.Settings
	p := NewPipeline(stack, "Pipeline", &PipelineProps{
		Settings: s, Mode: names.ModeDrain, RepoRoot: props.repoRoot(), MaxTasks: s.MaxTasks,
	})

	// The Scheduler assumes the role for schedules of this account's default
	// group only; it sends what it cannot start to the delivery DLQ.
	role := newLauncherRole(stack, "SchedulerRole", p, awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), &awsiam.ServicePrincipalOpts{
		Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{
			"aws:SourceAccount": stack.Account(),
			"aws:SourceArn": stack.FormatArn(&awscdk.ArnComponents{
				Service: jsii.String("scheduler"), Resource: jsii.String("schedule-group"), ResourceName: jsii.String("default"),
			}),
		}},
	}), "edp cron: start consumer tasks in one cluster")
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("SendUndeliveredToDLQ"),
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{p.DeliveryDLQ.QueueArn()},
	}))

	awsscheduler.NewSchedule(stack, jsii.String("Schedule"), &awsscheduler.ScheduleProps{
		Description: jsii.String("edp: drain the pipeline queue on a schedule"),
		Schedule:    awsscheduler.ScheduleExpression_Expression(jsii.String(s.Schedule), awscdk.TimeZone_Of(jsii.String(s.ScheduleTimeZone))),
		Target: awsschedulertargets.NewEcsRunFargateTask(p.Cluster, &awsschedulertargets.FargateTaskProps{
			TaskDefinition:  p.TaskDefinition,
			TaskCount:       jsii.Number(1),
			VpcSubnets:      p.Placement.Subnets,
			SecurityGroups:  p.Placement.SecurityGroups,
			AssignPublicIp:  p.Placement.AssignPublicIP,
			PlatformVersion: p.Placement.PlatformVersion,
			PropagateTags:   jsii.Bool(true),
			RetryAttempts:   jsii.Number(10),
			MaxEventAge:     awscdk.Duration_Hours(jsii.Number(1)),
			DeadLetterQueue: p.DeliveryDLQ,
			Role:            frozen(role),
		}),
	})
	p.addDashboard(DashboardParts{})
	applyNagSuppressions(stack, props.Settings)
	return stack
}
