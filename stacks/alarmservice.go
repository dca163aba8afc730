package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// NewAlarmServiceStack builds EdpAlarmService: an ECS service of the
// consumer in serve mode, at 0 tasks until the queue needs it. Scaling mode
// settings.ScalingStep adds tasks in steps while the backlog alarm is in
// ALARM; settings.ScalingBacklog tracks a target backlog per running task
// (metric math) and uses the backlog alarm only to wake from zero. Both
// scale in to 0 only after the queue has been empty, with nothing in flight,
// for settings.ScaleInIdleMinutes.
func NewAlarmServiceStack(scope constructs.Construct, id string, props *Props) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	s := props.Settings
	p := NewPipeline(stack, "Pipeline", &PipelineProps{Settings: s, Mode: names.ModeServe, RepoRoot: props.repoRoot()})

	svc := awsecs.NewFargateService(stack, jsii.String("Service"), &awsecs.FargateServiceProps{
		Cluster:           p.Cluster,
		TaskDefinition:    p.TaskDefinition,
		MinHealthyPercent: jsii.Number(100),
		MaxHealthyPercent: jsii.Number(200),
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		VpcSubnets:        p.Placement.Subnets,
		SecurityGroups:    p.Placement.SecurityGroups,
		AssignPublicIp:    p.Placement.AssignPublicIP,
		PlatformVersion:   p.Placement.PlatformVersion,
		PropagateTags:     awsecs.PropagatedTagSource_SERVICE,
	})
	// Scaling owns the desired count. A DesiredCount in the template would be
	// re-sent on every update (a new image is a new task definition) and
	// reset the service to it, stopping busy tasks. Without it ECS starts a
	// new service with 1 task, which the idle alarm removes.
	svc.Node().DefaultChild().(awsecs.CfnService).AddPropertyDeletionOverride(jsii.String("DesiredCount"))

	target := awsapplicationautoscaling.NewScalableTarget(stack, jsii.String("ScalableTarget"), &awsapplicationautoscaling.ScalableTargetProps{
		ServiceNamespace:  awsapplicationautoscaling.ServiceNamespace_ECS,
		ScalableDimension: jsii.String("ecs:service:DesiredCount"),
		ResourceId: awscdk.Fn_Join(jsii.String("/"), &[]*string{
			jsii.String("service"), p.Cluster.ClusterName(), svc.ServiceName(),
		}),
		MinCapacity: jsii.Number(0),
		MaxCapacity: jsii.Number(float64(s.MaxTasks)),
	})
	// Without RoleARN, Application Auto Scaling uses its service-linked role
	// for ECS (AWSServiceRoleForApplicationAutoScaling_ECSService); the role
	// the L2 creates has no policy and would only sit unused.
	target.Node().TryRemoveChild(jsii.String("Role"))
	target.Node().DefaultChild().(awsapplicationautoscaling.CfnScalableTarget).AddPropertyDeletionOverride(jsii.String("RoleARN"))

	// Scale in: only when idle, straight to zero.
	scaleIn := awsapplicationautoscaling.NewStepScalingAction(stack, jsii.String("ScaleInWhenIdle"), &awsapplicationautoscaling.StepScalingActionProps{
		ScalingTarget:         target,
		AdjustmentType:        awsapplicationautoscaling.AdjustmentType_EXACT_CAPACITY,
		MetricAggregationType: awsapplicationautoscaling.MetricAggregationType_MAXIMUM,
		Cooldown:              awscdk.Duration_Minutes(jsii.Number(1)),
	})
	scaleIn.AddAdjustment(&awsapplicationautoscaling.AdjustmentTier{Adjustment: jsii.Number(0), UpperBound: jsii.Number(0)})
	newIdleAlarm(stack, p.Queue, s).AddAlarmAction(awscloudwatchactions.NewApplicationScalingAction(scaleIn))

	scaleOut := awsapplicationautoscaling.NewStepScalingAction(stack, jsii.String("ScaleOutOnBacklog"), &awsapplicationautoscaling.StepScalingActionProps{
		ScalingTarget:         target,
		AdjustmentType:        awsapplicationautoscaling.AdjustmentType_CHANGE_IN_CAPACITY,
		MetricAggregationType: awsapplicationautoscaling.MetricAggregationType_MAXIMUM,
		Cooldown:              awscdk.Duration_Minutes(jsii.Number(1)),
	})
	for _, tier := range ScaleOutSteps(s) {
		scaleOut.AddAdjustment(tier)
	}
	g, desired := gateNone, awscloudwatch.IMetric(nil)
	if s.ScalingMode == settings.ScalingBacklog {
		// Target tracking cannot grow a service from zero tasks (it scales in
		// proportion to the current count), so the backlog alarm wakes the
		// service (only while no task runs) and tracking sizes it from there.
		// Scale-in stays with the idle alarm: tracking never removes a task.
		g, desired = gateDesired, desiredTasks(p, svc)
		newBacklogTracking(stack, target, p, svc, s)
	}
	newScaleOutAlarm(stack, p.Queue, s, g, desired).AddAlarmAction(awscloudwatchactions.NewApplicationScalingAction(scaleOut))
	p.addDashboard(DashboardParts{Service: svc, Alarms: []string{AlarmName(stack, backlogAlarm), AlarmName(stack, idleAlarm)}})
	applyNagSuppressions(stack, props.Settings)
	return stack
}

// desiredTasks is Container Insights' desired task count of the service. It
// counts tasks that are still starting (PENDING), which RunningTaskCount
// does not, so the wake alarm stops firing as soon as scaling has acted.
// With no task, Container Insights may publish nothing: the wake expression
// fills missing data with 0, so an empty service still wakes.
func desiredTasks(p *Pipeline, svc awsecs.FargateService) awscloudwatch.IMetric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:  jsii.String("ECS/ContainerInsights"),
		MetricName: jsii.String("DesiredTaskCount"),
		DimensionsMap: &map[string]*string{
			"ClusterName": p.Cluster.ClusterName(),
			"ServiceName": svc.ServiceName(),
		},
		Statistic: jsii.String("Average"),
		Period:    metricPeriod,
	})
}

// ScaleOutSteps are the step adjustments of the scale-out policy, bounded
// relative to the alarm threshold N: +1 task below 2N messages, +2 below 5N,
// +4 from there (never beyond settings.MaxTasks).
func ScaleOutSteps(s settings.Settings) []*awsapplicationautoscaling.AdjustmentTier {
	n := float64(s.ScaleOutThreshold)
	return []*awsapplicationautoscaling.AdjustmentTier{
		{Adjustment: jsii.Number(1), LowerBound: jsii.Number(0), UpperBound: jsii.Number(n)},
		{Adjustment: jsii.Number(2), LowerBound: jsii.Number(n), UpperBound: jsii.Number(4 * n)},
		{Adjustment: jsii.Number(4), LowerBound: jsii.Number(4 * n)},
	}
}

// BacklogPerTaskExpression is the target-tracking metric: visible messages
// divided by running tasks (at least 1).
const BacklogPerTaskExpression = "visible / IF(running > 0, running, 1)"

// newBacklogTracking adds AWS's recommended SQS scaling policy — target
// tracking on backlog per task — which CDK's L2 (and ecs-patterns) cannot
// express because it needs metric math; so it is built on the L1 resource.
func newBacklogTracking(scope constructs.Construct, target awsapplicationautoscaling.ScalableTarget, p *Pipeline, svc awsecs.FargateService, s settings.Settings) {
	stat := func(ns, name string, dims map[string]*string, statistic string) *awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricStatProperty {
		var d []interface{}
		for _, k := range []string{"QueueName", "ClusterName", "ServiceName"} {
			if v, ok := dims[k]; ok {
				d = append(d, &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDimensionProperty{Name: jsii.String(k), Value: v})
			}
		}
		return &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricStatProperty{
			Metric: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricProperty{
				Namespace: jsii.String(ns), MetricName: jsii.String(name), Dimensions: &d,
			},
			Stat: jsii.String(statistic),
		}
	}
	awsapplicationautoscaling.NewCfnScalingPolicy(scope, jsii.String("BacklogPerTaskTracking"), &awsapplicationautoscaling.CfnScalingPolicyProps{
		PolicyName:      jsii.String(fmt.Sprintf("%s-backlog-per-task", *awscdk.Stack_Of(scope).StackName())),
		PolicyType:      jsii.String("TargetTrackingScaling"),
		ScalingTargetId: target.ScalableTargetId(),
		TargetTrackingScalingPolicyConfiguration: &awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingScalingPolicyConfigurationProperty{
			TargetValue:      jsii.Number(float64(s.BacklogPerTask)),
			DisableScaleIn:   jsii.Bool(true),
			ScaleOutCooldown: jsii.Number(60),
			CustomizedMetricSpecification: &awsapplicationautoscaling.CfnScalingPolicy_CustomizedMetricSpecificationProperty{
				Metrics: &[]interface{}{
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id:         jsii.String("visible"),
						MetricStat: stat("AWS/SQS", "ApproximateNumberOfMessagesVisible", map[string]*string{"QueueName": p.Queue.QueueName()}, "Maximum"),
						ReturnData: jsii.Bool(false),
					},
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id: jsii.String("running"),
						MetricStat: stat("ECS/ContainerInsights", "RunningTaskCount",
							map[string]*string{"ClusterName": p.Cluster.ClusterName(), "ServiceName": svc.ServiceName()}, "Average"),
						ReturnData: jsii.Bool(false),
					},
					&awsapplicationautoscaling.CfnScalingPolicy_TargetTrackingMetricDataQueryProperty{
						Id:         jsii.String("backlogPerTask"),
						Expression: jsii.String(BacklogPerTaskExpression),
						Label:      jsii.String("Visible messages per running task"),
						ReturnData: jsii.Bool(true),
					},
				},
			},
		},
	})
}
