package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Alerts is a stack's alert topic and the alarms that notify it: work
// that was set aside (a dead-letter queue that is not empty) or that waits
// too long (the work queue's oldest message nearing retention). Nothing in
// a stack waits silently: each such alarm notifies the one topic, to
// which an operator subscribes (edp:alertEmail, or any SNS subscription).
type Alerts struct {
	// Topic receives every alert alarm's transition to ALARM. It is
	// encrypted with Key, which CloudWatch may use for exactly these alarms.
	Topic awssns.Topic
	Key   awskms.Key
	// Alarms are the alarms watched so far, in order, and Names their
	// names.
	Alarms []awscloudwatch.Alarm
	Names  []string
}

// newAlerts builds the encrypted, TLS-only alert topic, subscribing the
// settings' e-mail address when one is set.
func newAlerts(scope constructs.Construct, s settings.Settings, removal awscdk.RemovalPolicy) *Alerts {
	// CloudWatch must be able to use the topic's key, so it cannot be the
	// AWS-managed alias/aws/sns key (whose policy cannot be changed).
	key := awskms.NewKey(scope, jsii.String("AlertTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("edp: encrypts the alert topic"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     removal,
	})
	topic := awssns.NewTopic(scope, jsii.String("AlertTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("edp alerts"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	if s.AlertEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(s.AlertEmail), nil))
	}
	return &Alerts{Topic: topic, Key: key}
}

// AlarmName is the name of a stack's alarm: the stack name, "-" and
// suffix. Alert alarms are named, not left to CloudFormation, so the topic's
// key policy can name each alarm's ARN without referring to the alarm
// itself (key → alarm → topic → key would be a dependency cycle).
func AlarmName(scope constructs.Construct, suffix string) string {
	return *awscdk.Stack_Of(scope).StackName() + "-" + suffix
}

// alarmArn is the ARN of the alarm called name in scope's account and region.
func alarmArn(scope constructs.Construct, name string) *string {
	return awscdk.Stack_Of(scope).FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("cloudwatch"), Resource: jsii.String("alarm"), ResourceName: jsii.String(name),
		ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
}

// watch makes alarm (named name) notify the alert topic, and lets
// CloudWatch publish to the topic and use its key for this alarm only
// (aws:SourceArn) in this account (aws:SourceAccount).
func (a *Alerts) watch(alarm awscloudwatch.Alarm, name string) {
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(a.Topic))
	stack := awscdk.Stack_Of(a.Topic)
	sid := fmt.Sprintf("CloudWatchAlarm%d", len(a.Alarms))
	cloudwatch := &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)}
	conditions := &map[string]interface{}{
		"StringEquals": map[string]interface{}{"aws:SourceAccount": stack.Account()},
		"ArnLike":      map[string]interface{}{"aws:SourceArn": alarmArn(a.Topic, name)},
	}
	a.Topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Principals: cloudwatch, Actions: jsii.Strings("sns:Publish"),
		Resources: &[]*string{a.Topic.TopicArn()}, Conditions: conditions,
	}))
	a.Key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid), Principals: cloudwatch, Actions: jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"), // in a key policy, "*" is this key
		Conditions: conditions,
	}), nil)
	a.Alarms = append(a.Alarms, alarm)
	a.Names = append(a.Names, name)
}

// watchNotEmpty alarms when a dead-letter queue holds a message: work that
// failed or could not be delivered and waits for an operator (`consumer dlq
// list|redrive`).
func (a *Alerts) watchNotEmpty(scope constructs.Construct, id, name string, q awssqs.Queue, what string) awscloudwatch.Alarm {
	name = AlarmName(scope, name)
	alarm := q.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
		Period: metricPeriod, Statistic: jsii.String("Maximum"),
	}).CreateAlarm(scope, jsii.String(id), &awscloudwatch.CreateAlarmOptions{
		AlarmName:          jsii.String(name),
		AlarmDescription:   jsii.String("edp: " + what),
		Threshold:          jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	a.watch(alarm, name)
	return alarm
}

// NearRetentionSeconds is the age of the work queue's oldest message at
// which the queue alarms: three quarters of the retention period, so an
// operator has a quarter of it (at least 6 hours) before SQS deletes work.
func NearRetentionSeconds(s settings.Settings) int {
	return s.QueueRetentionDays * 24 * 3600 * 3 / 4
}

// watchAge alarms when the work queue's oldest message nears retention.
func (a *Alerts) watchAge(scope constructs.Construct, q awssqs.Queue, s settings.Settings) awscloudwatch.Alarm {
	name := AlarmName(scope, "queue-near-retention")
	alarm := q.MetricApproximateAgeOfOldestMessage(&awscloudwatch.MetricOptions{
		Period: metricPeriod, Statistic: jsii.String("Maximum"),
	}).CreateAlarm(scope, jsii.String("QueueNearRetentionAlarm"), &awscloudwatch.CreateAlarmOptions{
		AlarmName: jsii.String(name),
		AlarmDescription: jsii.String(fmt.Sprintf(
			"edp: a message has waited %d hours in the work queue; SQS deletes it after %d days", NearRetentionSeconds(s)/3600, s.QueueRetentionDays)),
		Threshold:          jsii.Number(float64(NearRetentionSeconds(s))),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		EvaluationPeriods:  jsii.Number(1),
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	a.watch(alarm, name)
	return alarm
}
