package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Params are the AWS behaviour the simulator assumes: timings, limits and
// prices. Every field has a documented default, an allowed range and the
// page it comes from (paramTable, rendered into docs/choosing.md). A
// measured figure replaces a default through LoadTimings (`edp simulate
// -timings FILE`), e.g. the task start times `edp smoke` measured on a real
// account, or the local cloud's own period and long poll for a later
// comparison of prediction and emulation.
type Params struct {
	TaskStartP50          float64 // s, RunTask → RUNNING, median
	TaskStartP90          float64 // s, RunTask → RUNNING, 90th percentile (lognormal through both)
	TaskStartMax          float64 // s, a start is never longer (Fargate's start timeout)
	EventDelay            float64 // s, upload → message in the queue and rule target invoked
	RuleTaskDelay         float64 // s, EdpOneOff: the rule's RunTask after the message is queued
	MetricPeriod          float64 // s, SQS CloudWatch metric period
	MetricDelay           float64 // s, end of a period → its datapoint is evaluated by the alarm
	ColdQueueAfter        float64 // s, a queue without messages or API calls this long stops publishing metrics
	ColdMetricDelayMax    float64 // s, metrics of a woken queue resume after up to this long (uniform draw)
	ScaleOutCooldown      float64 // s, the stacks' step-scaling and target-tracking scale-out cooldown
	TrackingDatapoints    float64 // target tracking: breaching 1-minute datapoints before a scale-out
	SchedulerWindow       float64 // s, a schedule fires within this long after its time (uniform)
	RunTaskPerCall        float64 // tasks per RunTask call
	LongPoll              float64 // s, the consumer's SQS long poll (WaitTimeSeconds)
	StopTimeout           float64 // s, SIGTERM → SIGKILL (the consumer finishes its long poll first)
	RetryDelay            float64 // s, a transiently failed message is hidden this long, doubled per earlier receive
	LambdaColdStart       float64 // s, Go arm64 Lambda init
	LambdaHandler         float64 // s, one dispatch: GetQueueAttributes, ListTasks, RunTask calls
	LambdaDelivery        float64 // s, alarm → SNS → Lambda
	LambdaMemoryMB        float64 // MB, the dispatch function's memory (the stack's 256)
	FargateMinBilled      float64 // s, Fargate's minimum charge per task
	PriceVCPUHourARM      float64 // $ per vCPU-hour, Fargate Linux/ARM
	PriceGBHourARM        float64 // $ per GB-hour, Fargate Linux/ARM
	PriceVCPUHourX86      float64 // $ per vCPU-hour, Fargate Linux/x86
	PriceGBHourX86        float64 // $ per GB-hour, Fargate Linux/x86
	PricePublicIPv4Hour   float64 // $ per public IPv4 address-hour (tasks of edp:network=public|default)
	PriceLambdaGBSecond   float64 // $ per GB-second, Lambda arm64
	PriceLambdaMillion    float64 // $ per million Lambda requests
	PriceAlarmMetricMonth float64 // $ per alarm metric per month, standard resolution
	PriceSchedulerMillion float64 // $ per million Scheduler invocations
	PriceSQSMillion       float64 // $ per million SQS requests, standard queue
}

// PriceDate is when the prices of the defaults were read (the pages' own
// dates; check them against the live pricing pages before relying on them).
const PriceDate = "2026-06"

// Sources of the defaults, cited by paramTable and docs/choosing.md.
const (
	srcRePostStart   = "re:Post, how to speed up provisioning of ECS Fargate tasks: https://www.repost.aws/ja/questions/QUjZAzJd27SZWxXM7MgyxOZw/"
	srcStartTimeout  = "AWS Knowledge Center, ecs-fargate-docker-timeout-error: https://www.repost.aws/knowledge-center/ecs-fargate-docker-timeout-error"
	srcS3Events      = "S3 User Guide, Event Notifications: https://docs.aws.amazon.com/AmazonS3/latest/userguide/NotificationHowTo.html"
	srcSQSMetrics    = "SQS Developer Guide, monitoring queues with CloudWatch: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/monitoring-using-cloudwatch.html"
	srcAlarmEval     = "CloudWatch, using alarms: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html"
	srcCooldown      = "stacks/alarmservice.go (Cooldown 1 min, ScaleOutCooldown 60); Application Auto Scaling StepScalingPolicyConfiguration: https://docs.aws.amazon.com/autoscaling/application/APIReference/API_StepScalingPolicyConfiguration.html"
	srcTracking      = "aws/containers-roadmap #638 (alarms AWS creates: 3 datapoints within 3 minutes): https://github.com/aws/containers-roadmap/issues/638"
	srcScheduler     = "EventBridge Scheduler, schedule types (60 s precision): https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html"
	srcThrottling    = "AWS Fargate throttling quotas: https://docs.aws.amazon.com/AmazonECS/latest/userguide/throttling.html"
	srcLongPoll      = "consumer/worker (20 s long polls); SQS ReceiveMessage WaitTimeSeconds maximum"
	srcRetryDelay    = "consumer/worker (EDP_RETRY_DELAY, default 10 s: ChangeMessageVisibility doubled per earlier receive, capped at the visibility timeout); docs/consumer.md"
	srcStopTimeout   = "ECS ContainerDefinition stopTimeout: https://docs.aws.amazon.com/sdk-for-kotlin/api/latest/ecs/aws.sdk.kotlin.services.ecs.model/-container-definition/stop-timeout.html"
	srcLambdaPerf    = "maxday/lambda-perf daily benchmark (Go provided.al2023 arm64): https://maxday.github.io/lambda-perf/"
	srcLambdaHandler = "estimate (three to a few ECS/SQS calls); replace with the function's REPORT Duration"
	srcSNSLambda     = "Bite-Sized Serverless, serverless messaging latency compared: https://bitesizedserverless.com/bite/serverless-messaging-latency-compared/"
	srcDispatchStack = "stacks/alarmdispatch.go (256 MB)"
	srcFargateBill   = "Fargate pricing wording (per second, 1-minute minimum), quoted at https://devops.stackexchange.com/questions/4830/aws-fargate-charging-model/4836"
	srcFargatePrice  = "Vantage, AWS Fargate pricing explained (us-east-1): https://www.vantage.sh/blog/fargate-pricing; FactualMinds (June 2026)"
	srcIPv4          = "AWS public IPv4 charge from 2024-02-01, reported by DoiT: https://www.doit.com/aws-public-ipv4-price-increase-the-complete-guide/"
	srcLambdaPrice   = "Lambda pricing (us-east-1), quoted at https://cloudchipr.com/blog/aws-lambda-pricing"
	srcAlarmPrice    = "CloudWatch pricing, https://aws.amazon.com/cloudwatch/pricing/; rates from https://c3x.dev/resources/aws/aws_cloudwatch_metric_alarm (metric-math alarms: one charge per metric, assumed)"
	srcSchedPrice    = "CloudBurn, Amazon EventBridge pricing (Mar 2026): https://cloudburn.io/blog/amazon-eventbridge-pricing"
	srcSQSPrice      = "CloudBurn, Amazon SQS pricing (Mar 2026): https://cloudburn.io/blog/amazon-sqs-pricing"
)

// ParamInfo describes one parameter: its JSON key in a timings file, its
// default, the range LoadTimings accepts, its unit and its source.
type ParamInfo struct {
	Key      string
	Default  float64
	Min, Max float64
	Unit     string
	What     string
	Source   string
	field    func(*Params) *float64
}

// paramTable is the one list of parameters: defaults, ranges and sources
// live here and nowhere else.
var paramTable = []ParamInfo{
	{"taskStartP50", 40, 1, 600, "s", "Fargate RunTask → RUNNING, median (small image; add the image pull of a large one)", srcRePostStart, func(p *Params) *float64 { return &p.TaskStartP50 }},
	{"taskStartP90", 60, 1, 900, "s", "Fargate RunTask → RUNNING, 90th percentile (\"30–45 s or longer\")", srcRePostStart, func(p *Params) *float64 { return &p.TaskStartP90 }},
	{"taskStartMax", 180, 10, 900, "s", "longest start: a task PENDING this long fails (not modelled: it starts at this bound)", srcStartTimeout, func(p *Params) *float64 { return &p.TaskStartMax }},
	{"eventDelay", 2, 0, 300, "s", "upload → message queued and rule target invoked (typically seconds)", srcS3Events, func(p *Params) *float64 { return &p.EventDelay }},
	{"ruleTaskDelay", 0, 0, 300, "s", "EdpOneOff: the rule's RunTask after the queue has the message (a rule's targets are invoked independently; 0: together)", srcS3Events, func(p *Params) *float64 { return &p.RuleTaskDelay }},
	{"metricPeriod", 60, 10, 300, "s", "SQS metric period (published at one-minute intervals)", srcSQSMetrics, func(p *Params) *float64 { return &p.MetricPeriod }},
	{"metricDelay", 60, 0, 600, "s", "end of a period → the alarm evaluates its datapoint (warm queue: first datapoint 1–2 min after a send)", srcSQSMetrics + "; " + srcAlarmEval, func(p *Params) *float64 { return &p.MetricDelay }},
	{"coldQueueAfter", 21600, 60, 86400, "s", "a queue with no message and no API call this long is inactive and publishes no metrics", srcSQSMetrics, func(p *Params) *float64 { return &p.ColdQueueAfter }},
	{"coldMetricDelayMax", 900, 0, 3600, "s", "metrics of a woken inactive queue resume after a uniform draw up to this (\"up to 15 minutes\")", srcSQSMetrics, func(p *Params) *float64 { return &p.ColdMetricDelayMax }},
	{"scaleOutCooldown", 60, 0, 3600, "s", "scale-out cooldown of the service's policies (capacity added in it counts toward the next step)", srcCooldown, func(p *Params) *float64 { return &p.ScaleOutCooldown }},
	{"trackingDatapoints", 3, 1, 15, "count", "target tracking scales out after this many breaching datapoints in a row", srcTracking, func(p *Params) *float64 { return &p.TrackingDatapoints }},
	{"schedulerWindow", 60, 0, 900, "s", "a schedule fires within this long after its time", srcScheduler, func(p *Params) *float64 { return &p.SchedulerWindow }},
	{"runTaskPerCall", 10, 1, 10, "tasks", "tasks per RunTask call (the dispatcher batches its starts)", srcThrottling, func(p *Params) *float64 { return &p.RunTaskPerCall }},
	{"longPoll", 20, 1, 60, "s", "the consumer's long poll; an empty one counts toward edp:emptyReceives (SQS waits at most 20 s; the local cloud's 1 s at its speed-up of 30 is 30 s)", srcLongPoll, func(p *Params) *float64 { return &p.LongPoll }},
	{"stopTimeout", 30, 2, 120, "s", "SIGTERM → SIGKILL; a scaled-in service task finishes its long poll within it", srcStopTimeout, func(p *Params) *float64 { return &p.StopTimeout }},
	{"retryDelay", 10, 1, 43200, "s", "a transiently failed message stays hidden this long, doubled per earlier receive, capped at the visibility timeout", srcRetryDelay, func(p *Params) *float64 { return &p.RetryDelay }},
	{"lambdaColdStart", 0.04, 0, 10, "s", "Go arm64 Lambda init (hello world ≈ 40 ms; every invocation assumed cold)", srcLambdaPerf, func(p *Params) *float64 { return &p.LambdaColdStart }},
	{"lambdaHandler", 0.5, 0.01, 120, "s", "one dispatch invocation's duration", srcLambdaHandler, func(p *Params) *float64 { return &p.LambdaHandler }},
	{"lambdaDelivery", 0.1, 0, 60, "s", "alarm → SNS → Lambda (SNS → Lambda p50 73 ms)", srcSNSLambda, func(p *Params) *float64 { return &p.LambdaDelivery }},
	{"lambdaMemoryMB", 256, 128, 10240, "MB", "the dispatch function's memory", srcDispatchStack, func(p *Params) *float64 { return &p.LambdaMemoryMB }},
	{"fargateMinBilled", 60, 0, 600, "s", "Fargate bills per second from the image pull to the task's end, at least this", srcFargateBill, func(p *Params) *float64 { return &p.FargateMinBilled }},
	{"priceVCPUHourARM", 0.03238, 0, 10, "$/vCPU-h", "Fargate Linux/ARM vCPU", srcFargatePrice, func(p *Params) *float64 { return &p.PriceVCPUHourARM }},
	{"priceGBHourARM", 0.00356, 0, 10, "$/GB-h", "Fargate Linux/ARM memory", srcFargatePrice, func(p *Params) *float64 { return &p.PriceGBHourARM }},
	{"priceVCPUHourX86", 0.04048, 0, 10, "$/vCPU-h", "Fargate Linux/x86 vCPU", srcFargatePrice, func(p *Params) *float64 { return &p.PriceVCPUHourX86 }},
	{"priceGBHourX86", 0.004445, 0, 10, "$/GB-h", "Fargate Linux/x86 memory", srcFargatePrice, func(p *Params) *float64 { return &p.PriceGBHourX86 }},
	{"pricePublicIPv4Hour", 0.005, 0, 1, "$/IP-h", "public IPv4 address of a task (edp:network public or default)", srcIPv4, func(p *Params) *float64 { return &p.PricePublicIPv4Hour }},
	{"priceLambdaGBSecond", 0.0000133334, 0, 1, "$/GB-s", "Lambda arm64 duration", srcLambdaPrice, func(p *Params) *float64 { return &p.PriceLambdaGBSecond }},
	{"priceLambdaMillion", 0.20, 0, 100, "$/1M", "Lambda requests", srcLambdaPrice, func(p *Params) *float64 { return &p.PriceLambdaMillion }},
	{"priceAlarmMetricMonth", 0.10, 0, 10, "$/metric-month", "CloudWatch standard alarm, per metric the alarm reads", srcAlarmPrice, func(p *Params) *float64 { return &p.PriceAlarmMetricMonth }},
	{"priceSchedulerMillion", 1.00, 0, 100, "$/1M", "EventBridge Scheduler invocations", srcSchedPrice, func(p *Params) *float64 { return &p.PriceSchedulerMillion }},
	{"priceSQSMillion", 0.40, 0, 100, "$/1M", "SQS standard requests (empty receives included)", srcSQSPrice, func(p *Params) *float64 { return &p.PriceSQSMillion }},
}

// Parameters returns the parameter table (a copy), in documentation order.
func Parameters() []ParamInfo { return slices.Clone(paramTable) }

// DefaultParams returns every parameter at its default.
func DefaultParams() Params {
	var p Params
	for _, in := range paramTable {
		*in.field(&p) = in.Default
	}
	return p
}

// ErrTimings is wrapped by every problem LoadTimings reports.
var ErrTimings = errors.New("invalid timings")

// LoadTimings reads a JSON object of parameter overrides ({"taskStartP50":
// 25, "metricPeriod": 2}) over base and returns the result. Every unknown
// key and every value outside its range is reported, joined, each naming
// the key. Keys that start with "_" are skipped: notes, and the samples a
// calibration file keeps (Calibration).
func LoadTimings(r io.Reader, base Params) (Params, error) {
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return Params{}, fmt.Errorf("%w: want a JSON object of numbers: %v", ErrTimings, err)
	}
	raw := map[string]float64{}
	for k, v := range doc {
		if strings.HasPrefix(k, "_") {
			continue
		}
		var f float64
		if err := json.Unmarshal(v, &f); err != nil {
			return Params{}, fmt.Errorf("%w: %s must be a number, got %s", ErrTimings, k, v)
		}
		raw[k] = f
	}
	p := base
	var errs []error
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		i := slices.IndexFunc(paramTable, func(in ParamInfo) bool { return in.Key == k })
		if i < 0 {
			errs = append(errs, fmt.Errorf("%w: unknown parameter %q (known: %s)", ErrTimings, k, strings.Join(paramKeys(), ", ")))
			continue
		}
		in, v := paramTable[i], raw[k]
		if v < in.Min || v > in.Max {
			errs = append(errs, fmt.Errorf("%w: %s must be from %g to %g %s, got %g", ErrTimings, k, in.Min, in.Max, in.Unit, v))
			continue
		}
		*in.field(&p) = v
	}
	if err := p.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Params{}, err
	}
	return p, nil
}

// validate checks the rules between parameters.
func (p Params) validate() error {
	if p.TaskStartP90 < p.TaskStartP50 {
		return fmt.Errorf("%w: taskStartP90 (%g) is below taskStartP50 (%g)", ErrTimings, p.TaskStartP90, p.TaskStartP50)
	}
	if p.TaskStartMax < p.TaskStartP90 {
		return fmt.Errorf("%w: taskStartMax (%g) is below taskStartP90 (%g)", ErrTimings, p.TaskStartMax, p.TaskStartP90)
	}
	return nil
}

func paramKeys() []string {
	out := make([]string, len(paramTable))
	for i, in := range paramTable {
		out[i] = in.Key
	}
	return out
}
