package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// The event tap is the local cloud's own plumbing, not part of any stack: a
// rule on the default bus that copies every S3 event to a queue the runtime
// reads, so it can perform the rule targets moto stores but cannot execute
// (ECS RunTask). It is created before the stack: moto stops delivering an
// event to later rules once a rule with an ECS target has matched it.
const (
	tapName    = "edp-local-event-tap"
	tapPattern = `{"source":["aws.s3"]}`
)

// createTap creates the tap queue and rule and returns the queue URL.
func createTap(ctx context.Context, c *Clients) (string, error) {
	q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(tapName)})
	if err != nil {
		return "", fmt.Errorf("create event tap queue: %w", err)
	}
	arn := "arn:aws:sqs:" + Region + ":" + Account + ":" + tapName
	if _, err := c.Events.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(tapName), EventPattern: aws.String(tapPattern)}); err != nil {
		return "", fmt.Errorf("create event tap rule: %w", err)
	}
	if _, err := c.Events.PutTargets(ctx, &eventbridge.PutTargetsInput{
		Rule: aws.String(tapName), Targets: []ebtypes.Target{{Id: aws.String("tap"), Arn: aws.String(arn)}},
	}); err != nil {
		return "", fmt.Errorf("target the event tap: %w", err)
	}
	return aws.ToString(q.QueueUrl), nil
}

// TaskRequest is one RunTask that a rule target or a schedule asks for.
type TaskRequest struct {
	TaskDefinition string
	Count          int
	// Env are the container overrides' environment variables.
	Env map[string]string
	// StartedBy names who started it (the rule or schedule).
	StartedBy string
}

// TaskRunner starts tasks (the local ECS).
type TaskRunner interface {
	RunTask(ctx context.Context, r TaskRequest) ([]string, error)
}

// ecsTarget is an ECS target of a deployed rule, as stored in EventBridge.
type ecsTarget struct {
	rule, pattern string
	target        ebtypes.Target
}

// loadECSTargets reads the ECS targets of the given rules from EventBridge.
func loadECSTargets(ctx context.Context, c *Clients, rules []string) ([]ecsTarget, error) {
	var out []ecsTarget
	for _, name := range rules {
		r, err := c.Events.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("describe rule %s: %w", name, err)
		}
		ts, err := c.Events.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("list targets of rule %s: %w", name, err)
		}
		for _, t := range ts.Targets {
			if t.EcsParameters != nil {
				out = append(out, ecsTarget{rule: name, pattern: aws.ToString(r.EventPattern), target: t})
			}
		}
	}
	return out, nil
}

// runEventTargets reads the tap until ctx ends and performs every ECS target
// whose rule matches an event, with the target's input transformer applied
// to the container overrides.
func runEventTargets(ctx context.Context, c *Clients, tapURL string, targets []ecsTarget, run TaskRunner, log *slog.Logger) error {
	for ctx.Err() == nil {
		out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(tapURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("event tap receive failed", "error", err)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		for _, m := range out.Messages {
			body := aws.ToString(m.Body)
			for _, t := range targets {
				if err := performTarget(ctx, c, t, body, run, log); err != nil {
					log.Error("rule target failed", "rule", t.rule, "error", err)
				}
			}
			_, _ = c.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(tapURL), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return nil
}

func performTarget(ctx context.Context, c *Clients, t ecsTarget, event string, run TaskRunner, log *slog.Logger) error {
	matched, err := MatchPattern(t.pattern, []byte(event))
	if err != nil {
		return fmt.Errorf("rule %s: %w", t.rule, err)
	}
	if !matched {
		return nil
	}
	env := map[string]string{}
	if tr := t.target.InputTransformer; tr != nil {
		rendered, err := RenderInputTemplate(aws.ToString(tr.InputTemplate), tr.InputPathsMap, []byte(event))
		if err != nil {
			return err
		}
		if env, err = overrideEnv(rendered); err != nil {
			return err
		}
	}
	p := t.target.EcsParameters
	count := int(aws.ToInt32(p.TaskCount))
	if count == 0 {
		count = 1
	}
	arns, err := run.RunTask(ctx, TaskRequest{TaskDefinition: aws.ToString(p.TaskDefinitionArn), Count: count, Env: env, StartedBy: "events-rule/" + t.rule})
	if err != nil {
		return fmt.Errorf("run task: %w", err)
	}
	log.Info("rule target started tasks", "rule", t.rule, "tasks", arns, "overrides", env)
	return nil
}

// overrideEnv extracts container-override environment variables from an
// ECS target's rendered input ({"containerOverrides":[{"environment":[...]}]}).
func overrideEnv(rendered string) (map[string]string, error) {
	var in struct {
		ContainerOverrides []struct {
			Environment []struct{ Name, Value string } `json:"environment"`
		} `json:"containerOverrides"`
	}
	if err := json.Unmarshal([]byte(rendered), &in); err != nil {
		return nil, fmt.Errorf("rendered target input is not ECS overrides: %w: %s", err, rendered)
	}
	env := map[string]string{}
	for _, o := range in.ContainerOverrides {
		for _, e := range o.Environment {
			env[e.Name] = e.Value
		}
	}
	return env, nil
}

// RenderInputTemplate applies an EventBridge input transformer: each
// <name> in template is replaced by the value at paths[name] ($.a.b) in
// event — JSON-encoded where it stands outside a string, its text inside one.
func RenderInputTemplate(template string, paths map[string]string, event []byte) (string, error) {
	var doc any
	if err := json.Unmarshal(event, &doc); err != nil {
		return "", fmt.Errorf("event is not JSON: %w", err)
	}
	var b strings.Builder
	inString := false
	for i := 0; i < len(template); i++ {
		ch := template[i]
		if ch == '"' && (i == 0 || template[i-1] != '\\') {
			inString = !inString
		}
		if ch != '<' {
			b.WriteByte(ch)
			continue
		}
		end := strings.IndexByte(template[i:], '>')
		if end < 0 {
			b.WriteByte(ch)
			continue
		}
		name := template[i+1 : i+end]
		path, ok := paths[name]
		if !ok {
			b.WriteByte(ch)
			continue
		}
		v, err := jsonPath(doc, path)
		if err != nil {
			return "", fmt.Errorf("input path %s (%s): %w", name, path, err)
		}
		enc, _ := json.Marshal(v)
		if s, isStr := v.(string); isStr && inString {
			enc, _ = json.Marshal(s)
			enc = enc[1 : len(enc)-1]
		}
		b.Write(enc)
		i += end
	}
	return b.String(), nil
}

// jsonPath resolves the simple paths EventBridge input transformers use:
// $.a.b.c (no wildcards, no arrays).
func jsonPath(doc any, path string) (any, error) {
	if !strings.HasPrefix(path, "$") {
		return nil, errors.New("path must start with $")
	}
	cur := doc
	for _, part := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(path, "$"), "."), ".") {
		if part == "" {
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: not an object", part)
		}
		if cur, ok = m[part]; !ok {
			return nil, nil // EventBridge renders a missing path as null
		}
	}
	return cur, nil
}
