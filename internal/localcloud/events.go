package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/localcloud/alarms"
)

// Rule targets. moto stores a rule's ECS targets but cannot run them, and
// it abandons an event for every later rule once a rule with an ECS target
// has matched it. So the runtime swaps each ECS target, in moto, for a
// shadow queue target: moto still matches the rule's own pattern
// (wildcards, resources, nested detail) and delivers every matching event,
// untransformed, to the shadow queue; the runtime reads it there and
// performs the ECS target as EventBridge does — the input transformer
// applied to the container overrides, a failed RunTask retried by the
// target's RetryPolicy, then the event sent to its DeadLetterConfig.
//
// moto's input transformer does not serve (measured with moto 5.2.1): it is
// skipped for S3 events, and for PutEvents it pastes a string value into the
// template without quotes, so the stacks' templates ("value":<key>) become
// invalid JSON and the call fails with 500. RenderInputTemplate stays.

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

// ruleTarget is an ECS target of a deployed rule, as stored in EventBridge.
type ruleTarget struct {
	rule, ruleArn string
	target        ebtypes.Target
	// shadowURL is the queue moto delivers the rule's matching events to.
	shadowURL string
	// dlqURL is the target's dead-letter queue ("": none).
	dlqURL string
}

// shadowECSTargets replaces, in moto, every ECS target of the given rules
// by a shadow queue target and returns the ECS targets as deployed.
func shadowECSTargets(ctx context.Context, c *Clients, endpoint string, rules []string) ([]*ruleTarget, error) {
	var out []*ruleTarget
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
			if t.EcsParameters == nil {
				continue
			}
			queue := fmt.Sprintf("edp-local-rule-target-%d", len(out))
			q, err := c.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(queue)})
			if err != nil {
				return nil, fmt.Errorf("create shadow queue of rule %s: %w", name, err)
			}
			if _, err := c.Events.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String(name), Ids: []string{aws.ToString(t.Id)}}); err != nil {
				return nil, fmt.Errorf("remove ECS target of rule %s: %w", name, err)
			}
			shadow := ebtypes.Target{Id: aws.String("edp-local-" + aws.ToString(t.Id)), Arn: aws.String(queueArn(queue))}
			if _, err := c.Events.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(name), Targets: []ebtypes.Target{shadow}}); err != nil {
				return nil, fmt.Errorf("shadow ECS target of rule %s: %w", name, err)
			}
			rt := &ruleTarget{rule: name, ruleArn: aws.ToString(r.Arn), target: t, shadowURL: aws.ToString(q.QueueUrl)}
			if t.DeadLetterConfig != nil && t.DeadLetterConfig.Arn != nil {
				rt.dlqURL = queueURL(endpoint, aws.ToString(t.DeadLetterConfig.Arn))
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

func queueArn(name string) string { return "arn:aws:sqs:" + Region + ":" + Account + ":" + name }

// queueURL is the local URL of the queue an ARN names.
func queueURL(endpoint, arn string) string {
	return endpoint + "/" + Account + "/" + arn[strings.LastIndex(arn, ":")+1:]
}

// runRuleTarget reads the target's shadow queue until ctx ends and delivers
// every event in it. Each event counts once for the rule's AWS/Events
// Invocations metric, when its delivery has ended (started the task, or
// dead-lettered after its retries), as EventBridge counts it.
func (c *Cloud) runRuleTarget(ctx context.Context, t *ruleTarget, d *deliverer) error {
	for ctx.Err() == nil {
		out, err := c.clients.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(t.shadowURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			if ctx.Err() == nil {
				c.opts.Logger.Warn("rule target receive failed", "rule", t.rule, "error", err)
				time.Sleep(500 * time.Millisecond)
			}
			continue
		}
		for _, m := range out.Messages {
			event := aws.ToString(m.Body)
			c.goRun("rule target "+t.rule, func() error {
				if err := d.deliver(ctx, t, event); err != nil {
					c.opts.Logger.Error("rule target failed", "rule", t.rule, "error", err)
				}
				// EventBridge counts an invocation once the target took
				// the event or failed for good, not its retries on the way.
				if ctx.Err() == nil {
					c.invocations.add("AWS/Events/" + t.rule)
				}
				return nil
			})
			_, _ = c.clients.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(t.shadowURL), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return nil
}

// alarmStateChanged sends an alarm's state change to the default event
// bus as CloudWatch does ("CloudWatch Alarm State Change", the alarm's ARN
// in resources); moto matches it against the rules like any other event.
func (c *Cloud) alarmStateChanged(ctx context.Context, change alarms.AlarmStateChange) {
	detail, err := json.Marshal(map[string]any{
		"alarmName":     change.AlarmName,
		"state":         map[string]any{"value": change.NewStateValue, "reason": change.NewStateReason, "timestamp": change.StateChangeTime},
		"previousState": map[string]any{"value": change.OldStateValue},
	})
	if err == nil {
		var out *eventbridge.PutEventsOutput
		out, err = c.clients.Events.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
			Source: aws.String("aws.cloudwatch"), DetailType: aws.String("CloudWatch Alarm State Change"),
			Resources: []string{change.AlarmARN}, Detail: aws.String(string(detail)),
		}}})
		if err == nil && out.FailedEntryCount > 0 {
			err = fmt.Errorf("%s: %s", aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage))
		}
	}
	if err != nil && ctx.Err() == nil {
		c.opts.Logger.Error("send the alarm state change to the event bus", "alarm", change.AlarmName, "error", err)
	}
}

// EventBridge's default retry policy, and the backoff of its retries. The
// documentation says "exponential back off and jitter" and gives no
// numbers: the first retry waits up to a second, each later one up to
// twice as long (full jitter), capped at 15 minutes — with which the
// default policy's 185 retries span about the documented day.
const (
	defaultRetries = 185
	defaultMaxAge  = 24 * time.Hour
	backoffBase    = time.Second
	backoffCap     = 15 * time.Minute
)

// sqsSender sends a message (*sqs.Client has it).
type sqsSender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// deliverer performs rule targets as EventBridge does.
type deliverer struct {
	run TaskRunner
	dlq sqsSender
	// speedup divides the backoff and the maximum event age.
	speedup float64
	log     *slog.Logger
}

// deliver performs t for one event: RunTask with the target's input,
// retried with backoff until it succeeds or the target's RetryPolicy is
// spent, then the event goes to the target's dead-letter queue. Input that
// does not render is dead-lettered at once, as EventBridge does with
// errors a retry cannot fix.
func (d *deliverer) deliver(ctx context.Context, t *ruleTarget, event string) error {
	start := time.Now()
	req, err := t.request(event)
	if err != nil {
		return d.deadLetter(ctx, t, event, "INVALID_JSON", err, 0, "")
	}
	retries, maxAge := defaultRetries, defaultMaxAge
	if p := t.target.RetryPolicy; p != nil {
		if p.MaximumRetryAttempts != nil {
			retries = int(*p.MaximumRetryAttempts)
		}
		if p.MaximumEventAgeInSeconds != nil {
			maxAge = time.Duration(*p.MaximumEventAgeInSeconds) * time.Second
		}
	}
	maxAge = time.Duration(float64(maxAge) / d.speedup)
	for attempt := 0; ; attempt++ {
		arns, err := d.run.RunTask(ctx, req)
		if err == nil {
			d.log.Info("rule target started tasks", "rule", t.rule, "tasks", arns, "overrides", req.Env, "retries", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if attempt == retries {
			return d.deadLetter(ctx, t, event, "ERROR_FROM_TARGET", err, attempt, "MaximumRetryAttempts")
		}
		wait := time.Duration(float64(rand.N(min(backoffCap, backoffBase<<min(attempt, 20)))) / d.speedup)
		if time.Since(start)+wait > maxAge {
			return d.deadLetter(ctx, t, event, "ERROR_FROM_TARGET", err, attempt, "MaximumEventAgeInSeconds")
		}
		d.log.Warn("rule target failed, retrying", "rule", t.rule, "retry", attempt+1, "in", wait.String(), "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// request is the RunTask the target asks for with the event's input.
func (t *ruleTarget) request(event string) (TaskRequest, error) {
	input := aws.ToString(t.target.Input)
	if tr := t.target.InputTransformer; tr != nil {
		var err error
		if input, err = RenderInputTemplate(aws.ToString(tr.InputTemplate), tr.InputPathsMap, []byte(event)); err != nil {
			return TaskRequest{}, err
		}
	}
	env := map[string]string{}
	if input != "" {
		var err error
		if env, err = overrideEnv(input); err != nil {
			return TaskRequest{}, err
		}
	}
	p := t.target.EcsParameters
	return TaskRequest{TaskDefinition: aws.ToString(p.TaskDefinitionArn), Count: max(1, int(aws.ToInt32(p.TaskCount))),
		Env: env, StartedBy: "events-rule/" + t.rule}, nil
}

// deadLetter sends an undelivered event to the target's dead-letter queue
// with the attributes EventBridge adds (condition "": none was exhausted).
func (d *deliverer) deadLetter(ctx context.Context, t *ruleTarget, event, code string, cause error, retries int, condition string) error {
	if t.dlqURL == "" {
		return fmt.Errorf("rule %s: event dropped after %d retries: %w", t.rule, retries, cause)
	}
	attrs := map[string]sqstypes.MessageAttributeValue{}
	for k, v := range map[string]string{
		"RULE_ARN": t.ruleArn, "TARGET_ARN": aws.ToString(t.target.Arn), "ERROR_CODE": code,
		"ERROR_MESSAGE": cause.Error(), "RETRY_ATTEMPTS": strconv.Itoa(retries), "EXHAUSTED_RETRY_CONDITION": condition,
	} {
		if v != "" {
			attrs[k] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
	}
	if _, err := d.dlq.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(t.dlqURL), MessageBody: aws.String(event), MessageAttributes: attrs}); err != nil {
		return fmt.Errorf("rule %s: dead-letter the event: %w", t.rule, err)
	}
	d.log.Warn("rule target failed, event dead-lettered", "rule", t.rule, "retries", retries, "condition", condition, "error", cause)
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
