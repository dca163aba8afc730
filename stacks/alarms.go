package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Name suffixes (AlarmName) of the alarms that start and stop tasks.
const (
	backlogAlarm = "backlog"
	idleAlarm    = "idle"
)

// metricPeriod is the resolution of SQS's CloudWatch metrics.
var metricPeriod = awscdk.Duration_Minutes(jsii.Number(1))

func queueMetric(q awssqs.Queue, name string) awscloudwatch.IMetric {
	opts := &awscloudwatch.MetricOptions{Period: metricPeriod, Statistic: jsii.String("Maximum")}
	switch name {
	case "visible":
		return q.MetricApproximateNumberOfMessagesVisible(opts)
	case "inflight":
		return q.MetricApproximateNumberOfMessagesNotVisible(opts)
	case "age":
		return q.MetricApproximateAgeOfOldestMessage(opts)
	}
	panic("stacks: unknown queue metric " + name)
}

// BacklogExpression is the metric-math "effective backlog": the visible
// messages, raised to the threshold N when the oldest message has waited
// longer than the max wait. So a backlog below N still starts consumers long
// before the queue's retention could delete it — the reference design's
// warning about MessageRetention and N, solved instead of documented.
func BacklogExpression(s settings.Settings) string {
	return fmt.Sprintf("MAX([visible, IF(age >= %d AND visible > 0, %d, 0)])", s.MaxWaitMinutes*60, s.ScaleOutThreshold)
}

// IdleExpression is the work still in the queue: waiting plus in flight.
// Scaling in only when it has been 0 for a while never kills a busy task.
// Each count is filled with 0 where it has no data point: SQS publishes
// ApproximateNumberOfMessagesNotVisible only while messages are in flight,
// and in metric math a sum with a missing operand is missing — which the
// idle alarm treats as breaching, so "5 visible, no in-flight data" read as
// idle and scaled the service in while messages waited. When the queue
// publishes nothing at all (inactive), the alarm still reads idle.
const IdleExpression = "FILL(visible, 0) + FILL(inflight, 0)"

// WakeExpression is BacklogExpression gated on a service that wants no task
// (desired count 0, or no data, which Container Insights may send for an
// empty service): in backlog mode the alarm only starts the first task and
// target tracking sizes the service from there. Desired, not running, so
// tasks still starting stop the alarm from adding more each minute.
func WakeExpression(s settings.Settings) string {
	return fmt.Sprintf("IF(FILL(desired, 0) > 0, 0, %s)", BacklogExpression(s))
}

// DispatchExpression is BacklogExpression gated on the dispatch function
// not having run in the last period (invocations is the function's
// AWS/Lambda Invocations, Sum per minute). CloudWatch notifies only on a
// state change, so an alarm that stayed in ALARM would never dispatch again:
// after a dispatch that started nothing (RunTask failures[], a task that
// died before it received) the messages would wait until retention deleted
// them. With the gate, every invocation takes the alarm to OK for the next
// period, and if work still waits it goes back to ALARM and notifies again:
// while the effective backlog holds, the function runs about every two
// periods, as a reconciler that tops the running tasks up to
// min(max tasks, ceil(backlog / messages per task)). Unlike a gate on
// in-flight messages, working tasks do not hold the alarm at OK, so a burst
// that arrives while they work scales out to the cap.
func DispatchExpression(s settings.Settings) string {
	return fmt.Sprintf("IF(FILL(invocations, 0) > 0, 0, %s)", BacklogExpression(s))
}

// gate selects the expression of the scale-out alarm.
type gate int

const (
	gateNone    gate = iota // BacklogExpression (the service in step mode)
	gateDesired             // WakeExpression (the service in backlog mode)
	gateInvoked             // DispatchExpression (alarm dispatch)
)

// newScaleOutAlarm fires when the effective backlog reaches N
// (settings.ScaleOutThreshold), subject to its gate metric: with gateDesired
// only while the service wants no task (gateMetric is the service's
// desired-count metric), with gateInvoked only in a period after one in
// which the dispatch function did not run (gateMetric is its invocations).
func newScaleOutAlarm(scope constructs.Construct, q awssqs.Queue, s settings.Settings, g gate, gateMetric awscloudwatch.IMetric) awscloudwatch.Alarm {
	metrics := map[string]awscloudwatch.IMetric{
		"visible": queueMetric(q, "visible"),
		"age":     queueMetric(q, "age"),
	}
	expression := BacklogExpression(s)
	switch g {
	case gateDesired:
		metrics["desired"] = gateMetric
		expression = WakeExpression(s)
	case gateInvoked:
		metrics["invocations"] = gateMetric
		expression = DispatchExpression(s)
	}
	expr := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(expression),
		UsingMetrics: &metrics,
		Label:        jsii.String("Effective backlog"),
		Period:       metricPeriod,
	})
	return expr.CreateAlarm(scope, jsii.String("BacklogAlarm"), &awscloudwatch.CreateAlarmOptions{
		AlarmName: jsii.String(AlarmName(scope, backlogAlarm)),
		AlarmDescription: jsii.String(fmt.Sprintf(
			"edp: %d+ messages visible, or messages waiting longer than %d minutes", s.ScaleOutThreshold, s.MaxWaitMinutes)),
		Threshold:          jsii.Number(float64(s.ScaleOutThreshold)),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
}

// newIdleAlarm fires when no message has been waiting or in flight for
// settings.ScaleInIdleMinutes minutes. SQS stops publishing metrics for an
// inactive queue, so missing data counts as idle.
func newIdleAlarm(scope constructs.Construct, q awssqs.Queue, s settings.Settings) awscloudwatch.Alarm {
	expr := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String(IdleExpression),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"visible":  queueMetric(q, "visible"),
			"inflight": queueMetric(q, "inflight"),
		},
		Label:  jsii.String("Messages waiting or in flight"),
		Period: metricPeriod,
	})
	return expr.CreateAlarm(scope, jsii.String("IdleAlarm"), &awscloudwatch.CreateAlarmOptions{
		AlarmName:          jsii.String(AlarmName(scope, idleAlarm)),
		AlarmDescription:   jsii.String(fmt.Sprintf("edp: queue empty and nothing in flight for %d minutes", s.ScaleInIdleMinutes)),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(float64(s.ScaleInIdleMinutes)),
		DatapointsToAlarm:  jsii.Number(float64(s.ScaleInIdleMinutes)),
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})
}
