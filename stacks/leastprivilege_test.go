package stacks_test

import (
	"encoding/json"
	"testing"

	"github.com/edp-pipelines/edp/internal/names"
)

// conditionValue returns the value a statement's Condition gives key under
// operator op, as JSON ("" when absent).
func conditionValue(st map[string]any, op, key string) string {
	cond, _ := st["Condition"].(map[string]any)
	keys, _ := cond[op].(map[string]any)
	v, ok := keys[key]
	if !ok {
		return ""
	}
	raw, _ := json.Marshal(v)
	return string(raw)
}

// Whoever starts consumer tasks (the one-off rule, the cron schedule, the
// dispatch Lambda) may start them in this cluster only, tag only what
// RunTask creates, and pass the task roles to ECS tasks only.
func TestLaunchPermissionsAreConditioned(t *testing.T) {
	launchers := map[string]bool{names.StackOneOff: true, names.StackCron: true, names.StackAlarmDispatch: true}
	for id, tp := range templates {
		t.Run(id, func(t *testing.T) {
			cluster := ""
			for lid := range resources(t, tp, "AWS::ECS::Cluster") {
				cluster = `{"Fn::GetAtt":["` + lid + `","Arn"]}`
			}
			runTask := 0
			for _, st := range statements(t, tp) {
				for _, a := range asList(st["Action"]) {
					switch a {
					case "ecs:RunTask":
						runTask++
						if got := conditionValue(st, "ArnEquals", "ecs:cluster"); got != cluster {
							t.Errorf("ecs:RunTask with ecs:cluster %q, want %s: %v", got, cluster, st)
						}
					case "iam:PassRole":
						if got := conditionValue(st, "StringEquals", "iam:PassedToService"); got != `"ecs-tasks.amazonaws.com"` {
							t.Errorf("iam:PassRole with iam:PassedToService %q, want ecs-tasks.amazonaws.com: %v", got, st)
						}
					case "ecs:TagResource":
						if got := conditionValue(st, "StringEquals", "ecs:CreateAction"); got != `"RunTask"` {
							t.Errorf("ecs:TagResource with ecs:CreateAction %q, want RunTask: %v", got, st)
						}
					}
				}
			}
			if launchers[id] && runTask != 1 {
				t.Errorf("%d statements allow ecs:RunTask, want exactly 1", runTask)
			}
		})
	}
}

// CloudWatch may use a topic's key (the alarm topic's, every alert
// topic's) only for alarms of this account: every key-policy statement for
// CloudWatch carries aws:SourceAccount and aws:SourceArn (the topic
// policies name the exact alarms).
func TestAlarmTopicKeyAdmitsOnlyThisAccountsAlarms(t *testing.T) {
	for id, tpl := range templates {
		keys := resources(t, tpl, "AWS::KMS::Key")
		for lid, k := range keys {
			doc := k["Properties"].(map[string]any)["KeyPolicy"].(map[string]any)
			found := 0
			for _, s := range doc["Statement"].([]any) {
				st := s.(map[string]any)
				if p, _ := st["Principal"].(map[string]any); p["Service"] != "cloudwatch.amazonaws.com" {
					continue
				}
				found++
				if got := conditionValue(st, "StringEquals", "aws:SourceAccount"); got != `{"Ref":"AWS::AccountId"}` {
					t.Errorf("%s %s: aws:SourceAccount = %q, want this stack's account: %v", id, lid, got, st)
				}
				if got := conditionValue(st, "ArnLike", "aws:SourceArn"); got == "" {
					t.Errorf("%s %s: no aws:SourceArn condition: %v", id, lid, st)
				}
			}
			if found == 0 {
				t.Errorf("%s %s: no key-policy statement lets CloudWatch use the key", id, lid)
			}
		}
	}
}

// Application Auto Scaling scales the service with its service-linked role:
// the stack creates no role for it and the target names none.
func TestScalableTargetUsesTheServiceLinkedRole(t *testing.T) {
	tp := templates[names.StackAlarmService]
	for lid, r := range resources(t, tp, "AWS::IAM::Role") {
		raw, _ := json.Marshal(r["Properties"].(map[string]any)["AssumeRolePolicyDocument"])
		var doc map[string]any
		_ = json.Unmarshal(raw, &doc)
		for _, s := range doc["Statement"].([]any) {
			if p, _ := s.(map[string]any)["Principal"].(map[string]any); p["Service"] == "application-autoscaling.amazonaws.com" {
				t.Errorf("role %s is trusted by Application Auto Scaling", lid)
			}
		}
	}
	for lid, target := range resources(t, tp, "AWS::ApplicationAutoScaling::ScalableTarget") {
		if v, ok := target["Properties"].(map[string]any)["RoleARN"]; ok {
			t.Errorf("scalable target %s names role %v", lid, v)
		}
	}
}
