package stacks

import (
	"fmt"
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
)

// DashboardParts are what a stack adds to its pipeline's dashboard beyond
// the shared widgets. The zero value adds nothing.
type DashboardParts struct {
	// Service is the stack's ECS service (EdpAlarmService): its running
	// and desired task counts are charted. Default nil: none.
	Service awsecs.FargateService
	// Function is the alarm-dispatch function (EdpAlarmDispatch): its
	// invocations, errors and duration and the tasks it started are
	// charted. Default nil: none.
	Function awslambda.IFunction
	// DeadLetterQueues are the stack's own dead-letter queues, charted next
	// to the pipeline's two, by label. Default: none.
	DeadLetterQueues []LabeledQueue
	// Alarms are the names of the stack's alarms beyond the pipeline's
	// alert alarms (Pipeline.Alerts, always shown). Default: none.
	Alarms []string
}

// LabeledQueue is a queue with the label its line has on the dashboard.
type LabeledQueue struct {
	Label string
	Queue awssqs.IQueue
}

// Widget sizes: the dashboard's grid is 24 units wide.
const (
	gridWidth    = 24
	widgetWidth  = 8
	widgetHeight = 6
)

// addDashboard builds the stack's CloudWatch dashboard, named after the
// stack, and the DashboardUrl output: the work queue, the dead-letter
// queues, the tasks running, the consumer's jobs and problems, the
// dispatch function when there is one, and the state of every alarm.
func (p *Pipeline) addDashboard(parts DashboardParts) awscloudwatch.Dashboard {
	stack := p.stack()
	dash := awscloudwatch.NewDashboard(p.Node, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName: stack.StackName(),
	})
	// CloudFormation takes Tags on a dashboard (the app tags every resource)
	// but cfn-lint 1.51's schema predates them: its E3002 is silenced for
	// this resource only.
	dash.Node().DefaultChild().(awscdk.CfnResource).AddMetadata(jsii.String("cfn-lint"),
		map[string]any{"config": map[string]any{"ignore_checks": []string{"E3002"}}})
	// Each AddWidgets is a row; a row wider than the grid wraps.
	// Alarms are named by ARNs built from their names, not references: the
	// local cloud's CloudFormation (moto) models no alarm to refer to.
	var alarms []interfacesawscloudwatch.IAlarmRef
	for i, name := range append(slices.Clone(p.Alerts.Names), parts.Alarms...) {
		alarms = append(alarms, awscloudwatch.Alarm_FromAlarmName(p.Node, jsii.String(fmt.Sprintf("DashboardAlarm%d", i)), jsii.String(name)))
	}
	dash.AddWidgets(awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title:  jsii.String("Alarms"),
		Alarms: &alarms,
		Width:  jsii.Number(gridWidth),
		Height: jsii.Number(3),
	}))
	dash.AddWidgets(p.queueWidgets(parts.DeadLetterQueues)...)
	dash.AddWidgets(p.tasksWidget(parts.Service), p.jobsWidget(), p.durationWidget())
	last := []awscloudwatch.IWidget{p.problemsWidget()}
	if parts.Function != nil {
		last = append(last, dispatchWidgets(parts.Function, p.Cluster)...)
	}
	dash.AddWidgets(last...)
	awscdk.NewCfnOutput(stack, jsii.String(names.OutputDashboard), &awscdk.CfnOutputProps{
		Value:       DashboardURL(stack.Region(), dash.DashboardName()),
		Description: jsii.String("The stack's CloudWatch dashboard: queue, tasks, jobs and alarms"),
	})
	return dash
}

// DashboardURL is the CloudWatch console's address of the dashboard called
// name in region (either may be a token).
func DashboardURL(region, name *string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://"), region, jsii.String(".console.aws.amazon.com/cloudwatch/home?region="), region,
		jsii.String("#dashboards:name="), name,
	})
}

// graph is a line graph of metrics on the left axis.
func graph(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.GraphWidget {
	return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
		Title:  jsii.String(title),
		Left:   &metrics,
		Width:  jsii.Number(widgetWidth),
		Height: jsii.Number(widgetHeight),
	})
}

// labeled are metric options with a label and a statistic, at the queue
// metrics' resolution.
func labeled(label, statistic string) *awscloudwatch.MetricOptions {
	return &awscloudwatch.MetricOptions{Label: jsii.String(label), Statistic: jsii.String(statistic), Period: metricPeriod}
}

// queueWidgets chart the work queue (waiting and in-flight messages, the
// oldest message's age) and the depth of every dead-letter queue.
func (p *Pipeline) queueWidgets(extra []LabeledQueue) []awscloudwatch.IWidget {
	dlqs := []awscloudwatch.IMetric{
		p.DeadLetterQueue.MetricApproximateNumberOfMessagesVisible(labeled("Dead-letter queue (failed jobs)", "Maximum")),
		p.DeliveryDLQ.MetricApproximateNumberOfMessagesVisible(labeled("Delivery DLQ (undelivered events)", "Maximum")),
	}
	for _, q := range extra {
		dlqs = append(dlqs, q.Queue.MetricApproximateNumberOfMessagesVisible(labeled(q.Label, "Maximum")))
	}
	return []awscloudwatch.IWidget{
		graph("Work queue: messages",
			p.Queue.MetricApproximateNumberOfMessagesVisible(labeled("Waiting (visible)", "Maximum")),
			p.Queue.MetricApproximateNumberOfMessagesNotVisible(labeled("In flight", "Maximum"))),
		graph("Work queue: oldest message (seconds)",
			p.Queue.MetricApproximateAgeOfOldestMessage(labeled("Age of the oldest message", "Maximum"))),
		graph("Dead-letter queues: messages", dlqs...),
	}
}

// tasksWidget charts the consumer tasks running in the cluster (Container
// Insights) and, for a service, the service's running and desired counts.
func (p *Pipeline) tasksWidget(svc awsecs.FargateService) awscloudwatch.IWidget {
	insights := func(metric, label string, dims map[string]*string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(ContainerInsightsNamespace), MetricName: jsii.String(metric),
			DimensionsMap: &dims, Label: jsii.String(label), Statistic: jsii.String("Maximum"), Period: metricPeriod,
		})
	}
	metrics := []awscloudwatch.IMetric{
		insights("RunningTaskCount", "Running in the cluster", map[string]*string{"ClusterName": p.Cluster.ClusterName()}),
	}
	if svc != nil {
		dims := map[string]*string{"ClusterName": p.Cluster.ClusterName(), "ServiceName": svc.ServiceName()}
		metrics = append(metrics,
			insights("RunningTaskCount", "Running in the service", dims),
			insights("DesiredTaskCount", "Desired by scaling", dims))
	}
	return graph("Consumer tasks", metrics...)
}

// ContainerInsightsNamespace is the namespace of ECS Container Insights'
// cluster and service metrics.
const ContainerInsightsNamespace = "ECS/ContainerInsights"

// consumerMetric is one of the consumer's EMF metrics (internal/names) in
// this pipeline's mode.
func (p *Pipeline) consumerMetric(name, label, statistic string) awscloudwatch.IMetric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(names.ConsumerMetricNamespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{names.ConsumerMetricMode: jsii.String(p.Mode), names.ConsumerMetricCluster: p.Cluster.ClusterName()},
		Label:         jsii.String(label),
		Statistic:     jsii.String(statistic),
		Period:        awscdk.Duration_Minutes(jsii.Number(5)),
	})
}

// jobsWidget charts the jobs that succeeded and failed (to be retried or
// dead-lettered).
func (p *Pipeline) jobsWidget() awscloudwatch.IWidget {
	return graph("Jobs (per 5 minutes)",
		p.consumerMetric(names.MetricJobsSucceeded, "Succeeded", "Sum"),
		p.consumerMetric(names.MetricJobsFailed, "Failed", "Sum"))
}

// durationWidget charts how long jobs run and how long their messages
// waited before a consumer took them, p50 and p90.
func (p *Pipeline) durationWidget() awscloudwatch.IWidget {
	return graph("Job duration and queue wait (ms)",
		p.consumerMetric(names.MetricJobDuration, "Job duration p50", "p50"),
		p.consumerMetric(names.MetricJobDuration, "Job duration p90", "p90"),
		p.consumerMetric(names.MetricQueueWait, "Queue wait p50", "p50"),
		p.consumerMetric(names.MetricQueueWait, "Queue wait p90", "p90"))
}

// problemsWidget charts what only the pipeline's mode emits: refused
// scale-in protection (serve), drains the task cap skipped and cap checks
// that failed (drain; a stack without a cap emits neither).
func (p *Pipeline) problemsWidget() awscloudwatch.IWidget {
	if p.Mode == names.ModeServe {
		return graph("Consumer: scale-in protection failures",
			p.consumerMetric(names.MetricProtectionFailures, "Protection requests that failed", "Sum"))
	}
	return graph("Consumer: task cap",
		p.consumerMetric(names.MetricDrainsSkipped, "Drains skipped (cap reached)", "Sum"),
		p.consumerMetric(names.MetricTaskCapCheckFailures, "Cap checks that failed", "Sum"))
}

// dispatchWidgets chart the alarm-dispatch function (invocations, errors,
// duration) and, from its EMF line, the tasks it asked for, started and
// failed to start in cluster, and the backlog and tasks it saw.
func dispatchWidgets(fn awslambda.IFunction, cluster awsecs.ICluster) []awscloudwatch.IWidget {
	dispatch := func(name, label, statistic string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace:     jsii.String(names.DispatchMetricNamespace),
			MetricName:    jsii.String(name),
			DimensionsMap: &map[string]*string{names.DispatchMetricCluster: cluster.ClusterName()},
			Label:         jsii.String(label),
			Statistic:     jsii.String(statistic),
			Period:        metricPeriod,
		})
	}
	return []awscloudwatch.IWidget{
		graph("Dispatch function",
			fn.MetricInvocations(labeled("Invocations", "Sum")),
			fn.MetricErrors(labeled("Errors", "Sum"))),
		graph("Dispatch function: duration (ms)",
			fn.MetricDuration(labeled("p50", "p50")),
			fn.MetricDuration(labeled("Maximum", "Maximum"))),
		graph("Dispatch: tasks started",
			dispatch(names.MetricTasksRequested, "Requested", "Sum"),
			dispatch(names.MetricTasksStarted, "Started", "Sum"),
			dispatch(names.MetricTasksFailed, "Failed to start", "Sum")),
		graph("Dispatch: what it saw",
			dispatch(names.MetricBacklog, "Backlog (visible + in flight)", "Maximum"),
			dispatch(names.MetricRunningTasks, "Tasks running or pending", "Maximum")),
	}
}
