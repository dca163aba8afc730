package stacks_test

import (
	"encoding/json"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/stacks"
)

// Nothing waits silently: in every stack each dead-letter queue (and the
// dispatch function's on-failure queue) has an alarm at its first message,
// and the work queue one when its oldest message reaches three quarters of
// the retention; each notifies the stack's alert topic, whose policy and
// key let CloudWatch publish for exactly these alarms, in this account.
// No default-context stack subscribes an address (edp:alertEmail is unset).
func TestEveryStackAlertsOnDeadLettersAndOldWork(t *testing.T) {
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		c := parseTemplate(t, tpl)
		topic, ok := c.logicalID("AWS::SNS::Topic", "PipelineAlertTopic")
		if !ok {
			t.Fatal("no alert topic")
		}
		type watch struct {
			queue, metric string
			threshold     float64
		}
		want := []watch{
			{"PipelineDeadLetterQueue", "ApproximateNumberOfMessagesVisible", 1},
			{"PipelineDeliveryDLQ", "ApproximateNumberOfMessagesVisible", 1},
			{"PipelineQueue", "ApproximateAgeOfOldestMessage", float64(stacks.NearRetentionSeconds(defaults))},
		}
		if _, ok := c.logicalID("AWS::SQS::Queue", "DispatchFailures"); ok {
			want = append(want, watch{"DispatchFailures", "ApproximateNumberOfMessagesVisible", 1})
		}
		var alarms []string
		for _, w := range want {
			q, ok := c.logicalID("AWS::SQS::Queue", w.queue)
			if !ok {
				t.Fatalf("no queue %s", w.queue)
			}
			found := ""
			for lid, r := range c {
				p := r.Properties
				if r.Type != "AWS::CloudWatch::Alarm" || p["MetricName"] != w.metric || !refersTo(p["Dimensions"], q) {
					continue
				}
				if p["Threshold"] != w.threshold || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
					p["TreatMissingData"] != "notBreaching" || p["Statistic"] != "Maximum" || p["Period"] != float64(60) {
					t.Errorf("%s alarm %s: %v", w.queue, lid, p)
				}
				if !refersTo(p["AlarmActions"], topic) {
					t.Errorf("%s alarm %s notifies %v, want the alert topic", w.queue, lid, asJSON(p["AlarmActions"]))
				}
				found = lid
			}
			if found == "" {
				t.Errorf("no %s alarm on %s", w.metric, w.queue)
			}
			alarms = append(alarms, found)
		}
		// The topic policy and the key policy each allow CloudWatch for
		// every one of these alarms, by its ARN, in this account.
		key, _ := c.logicalID("AWS::KMS::Key", "PipelineAlertTopicKey")
		for _, policy := range []struct {
			name       string
			statements []map[string]any
			action     string
		}{
			{"topic policy", c.resourcePolicies(topic), "sns:Publish"},
			{"key policy", c.resourcePolicies(key), "kms:GenerateDataKey"},
		} {
			for _, alarm := range alarms {
				ok := false
				for _, st := range policy.statements {
					cond, _ := st["Condition"].(map[string]any)
					arn, _ := cond["ArnLike"].(map[string]any)
					acct, _ := cond["StringEquals"].(map[string]any)
					if st["Effect"] == "Allow" && principalIs(st, "cloudwatch.amazonaws.com", false) && hasAction(st, policy.action) &&
						asJSON(arn["aws:SourceArn"]) == alarmArnOf(c[alarm].Properties["AlarmName"]) &&
						asJSON(acct["aws:SourceAccount"]) == `{"Ref":"AWS::AccountId"}` {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s of the alert topic does not allow CloudWatch %s for alarm %s in this account", policy.name, policy.action, alarm)
				}
			}
		}
		tpl.ResourcePropertiesCountIs(jsii.String("AWS::SNS::Subscription"), map[string]any{"Protocol": "email"}, jsii.Number(0))
		var outputs map[string]any
		raw, _ := json.Marshal(tpl.FindOutputs(jsii.String(names.OutputAlertTopic), nil))
		_ = json.Unmarshal(raw, &outputs)
		if !refersTo(outputs, topic) {
			t.Errorf("output %s = %s, want the alert topic", names.OutputAlertTopic, raw)
		}
	})
}

// alarmArnOf is the ARN, as the stacks write it, of the alarm whose
// AlarmName is name (a literal).
func alarmArnOf(name any) string {
	n, _ := name.(string)
	return asJSON(map[string]any{"Fn::Join": []any{"", []any{
		"arn:", map[string]any{"Ref": "AWS::Partition"}, ":cloudwatch:", map[string]any{"Ref": "AWS::Region"}, ":",
		map[string]any{"Ref": "AWS::AccountId"}, ":alarm:" + n,
	}}})
}
