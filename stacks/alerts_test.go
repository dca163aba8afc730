package stacks_test

import (
	"regexp"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/stacks"
)

// Nothing waits silently: in every stack each dead-letter queue (and the
// dispatch function's on-failure queue) has an alarm at its first message,
// and the work queue one when its oldest message reaches three quarters of
// the retention; each is named after its stack and notifies the stack's
// alert topic. (That CloudWatch may publish to the topic and use its key
// for exactly these alarms is checked by the alert edges in
// TestEveryEdgeIsAllowed.) No default-context stack subscribes an address.
func TestEveryStackAlertsOnDeadLettersAndOldWork(t *testing.T) {
	for id, tpl := range templates {
		t.Run(id, func(t *testing.T) {
			defer failOnPanic(t)
			doc := templateDoc(tpl)
			lid := func(typ, prefix string) string {
				re := regexp.MustCompile("^" + prefix + "[0-9A-F]{8}$")
				for l := range resourcesOf(doc, typ) {
					if re.MatchString(l) {
						return l
					}
				}
				return ""
			}
			topic := lid("AWS::SNS::Topic", "PipelineAlertTopic")
			if topic == "" {
				t.Fatal("no alert topic")
			}
			type watch struct {
				queue, metric, name string
				threshold           float64
			}
			want := []watch{
				{"PipelineDeadLetterQueue", "ApproximateNumberOfMessagesVisible", "dead-letters", 1},
				{"PipelineDeliveryDLQ", "ApproximateNumberOfMessagesVisible", "undelivered-events", 1},
				{"PipelineQueue", "ApproximateAgeOfOldestMessage", "queue-near-retention", float64(stacks.NearRetentionSeconds(defaults))},
			}
			if lid("AWS::SQS::Queue", "DispatchFailures") != "" {
				want = append(want, watch{"DispatchFailures", "ApproximateNumberOfMessagesVisible", "dispatch-failures", 1})
			}
			alarms := resourcesOf(doc, "AWS::CloudWatch::Alarm")
			for _, w := range want {
				q := lid("AWS::SQS::Queue", w.queue)
				found := false
				for l, p := range alarms {
					if p["MetricName"] != w.metric || asJSON(p["Dimensions"]) != `[{"Name":"QueueName","Value":{"Fn::GetAtt":["`+q+`","QueueName"]}}]` {
						continue
					}
					found = true
					if p["AlarmName"] != id+"-"+w.name || p["Threshold"] != w.threshold || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" ||
						p["TreatMissingData"] != "notBreaching" || p["Statistic"] != "Maximum" || p["Period"] != float64(60) {
						t.Errorf("%s alarm %s: %v", w.queue, l, p)
					}
					if asJSON(p["AlarmActions"]) != `[{"Ref":"`+topic+`"}]` {
						t.Errorf("%s alarm %s notifies %s, want only the alert topic", w.queue, l, asJSON(p["AlarmActions"]))
					}
				}
				if !found {
					t.Errorf("no %s alarm on %s", w.metric, w.queue)
				}
			}
			tpl.ResourcePropertiesCountIs(jsii.String("AWS::SNS::Subscription"), map[string]any{"Protocol": "email"}, jsii.Number(0))
			outputs, _ := doc["Outputs"].(map[string]any)
			if out, _ := outputs[names.OutputAlertTopic].(map[string]any); asJSON(out["Value"]) != `{"Ref":"`+topic+`"}` {
				t.Errorf("output %s = %s, want the alert topic", names.OutputAlertTopic, asJSON(out))
			}
		})
	}
}
