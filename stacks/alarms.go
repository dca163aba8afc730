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
const IdleExpression = "visible + inflight"

// WakeExpression is BacklogExpression gated on a service that wants no task
// (desired count 0, or no data, which Container Insights may send for an
// empty service): in backlog mode the alarm only starts the first task and
// target tracking sizes the service from there. Desired, not running, so
// tasks still starting stop the alarm from adding more each minute.
func WakeExpression(s settings.Settings) string {
	return fmt.Sprintf("IF(FILL(desired, 0) > 0, 0, %s)", BacklogExpression(s))
}

// DispatchExpression is BacklogExpression gated on nothing in flight: the
// alarm-dispatch alarm is OK while dispatched tasks work (they hold
// messages), so it goes back to ALARM — and notifies again, which CloudWatch
// does only on a state change — when they are gone and work remains, e.g.
// after a task died holding a message: that message returns after the
// visibility timeout and is dispatched again instead of waiting forever.
func DispatchExpression(s settings.Settings) string {
	return fmt.Sprintf("IF(FILL(inflight, 0) > 0, 0, %s)", BacklogExpression(s))
}

// gate selects the expression of the scale-out alarm.
type gate int

const (
	gateNone     gate = iota // BacklogExpression (the service in step mode)
	gateDesired              // WakeExpression (the service in backlog mode)
	gateInFlight             // DispatchExpression (alarm dispatch)
)

// newScaleOutAlarm fires when the effective backlog reaches N
// (settings.ScaleOutThreshold), subject to its gate: with gateDesired only
// while the service wants no task (desired is the service's desired-count
// metric), with gateInFlight only while nothing is in flight.
func newScaleOutAlarm(scope constructs.Construct, q awssqs.Queue, s settings.Settings, g gate, desired awscloudwatch.IMetric) awscloudwatch.Alarm {
	metrics := map[string]awscloudwatch.IMetric{
		"visible": queueMetric(q, "visible"),
		"age":     queueMetric(q, "age"),
	}
	expression := BacklogExpression(s)
	switch g {
	case gateDesired:
		metrics["desired"] = desired
		expression = WakeExpression(s)
	case gateInFlight:
		metrics["inflight"] = queueMetric(q, "inflight")
		expression = DispatchExpression(s)
	}
	expr := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String(expression),
		UsingMetrics: &metrics,
		Label:        jsii.String("Effective backlog"),
		Period:       metricPeriod,
	})
	return expr.CreateAlarm(scope, jsii.String("BacklogAlarm"), &awscloudwatch.CreateAlarmOptions{
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
		AlarmDescription:   jsii.String(fmt.Sprintf("edp: queue empty and nothing in flight for %d minutes", s.ScaleInIdleMinutes)),
		Threshold:          jsii.Number(0),
		ComparisonOperator: awscloudwatch.ComparisonOperator_LESS_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(float64(s.ScaleInIdleMinutes)),
		DatapointsToAlarm:  jsii.Number(float64(s.ScaleInIdleMinutes)),
		TreatMissingData:   awscloudwatch.TreatMissingData_BREACHING,
	})
}
