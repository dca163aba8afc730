package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud/alarms"
	"github.com/edp-pipelines/edp/internal/localcloud/lambdaemu"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// startAlarms evaluates the stack's alarms on the sped-up period and
// performs their actions: scaling policies on the local ECS service, SNS
// topics by invoking the subscribed Lambda functions.
func (c *Cloud) startAlarms(ctx context.Context, bins binaries, taskEndpoint string) error {
	if len(c.stack.Resources("AWS::CloudWatch::Alarm")) == 0 {
		return nil
	}
	n := &snsNotifier{c: c, functions: map[string]*deployedFunction{}}
	c.source = &cloudSource{c: c, backlogSince: map[string]time.Time{}, lastRead: map[string]time.Time{}}
	c.functions = map[string]*deployedFunction{}
	for _, id := range c.stack.Resources("AWS::Lambda::Function") {
		f, err := c.startFunction(ctx, id, bins, taskEndpoint)
		if err != nil {
			return err
		}
		n.functions[id] = f
		c.functions[f.name] = f
	}
	cfg := alarms.Config{
		Template:     c.stack.Template,
		Resolve:      c.resolve,
		Source:       c.source,
		Notifier:     n,
		StateChanged: c.alarmStateChanged,
		Tick:         time.Duration(float64(time.Minute) / c.opts.Speedup),
		Region:       Region, AccountID: Account,
		Logger: c.opts.Logger,
	}
	if svcs := c.stack.Resources("AWS::ECS::Service"); len(svcs) == 1 {
		cfg.Scaler = serviceScaler{c: c, name: serviceName(c.stack.Physical[svcs[0]])}
	}
	loop, err := alarms.NewLoop(cfg)
	if err != nil {
		return fmt.Errorf("alarms of %s: %w", c.stack.Name, err)
	}
	c.alarms = loop
	c.opts.Logger.Info("evaluating the deployed alarms", "alarms", len(c.stack.Resources("AWS::CloudWatch::Alarm")), "period", cfg.Tick.String())
	c.goRun("alarms", func() error { return loop.Run(ctx) })
	c.goRun("queue ages", func() error { return c.source.sampleAges(ctx, cfg.Tick/ageSamplesPerPeriod) })
	return nil
}

// Alarms returns the alarms' states after the last evaluation.
func (c *Cloud) Alarms() []alarms.AlarmStatus {
	if c.alarms == nil {
		return nil
	}
	return c.alarms.Status()
}

// AlarmPeriods returns when the alarms last finished evaluating a
// (sped-up) one-minute period and the real length of one, so a caller can
// line its own clock up with the periods (the simulator's validation does):
// anything after lastEnd counts toward the next period. Zero times before
// the first evaluation or in a stack without alarms.
func (c *Cloud) AlarmPeriods() (lastEnd time.Time, period time.Duration) {
	period = time.Duration(float64(time.Minute) / c.opts.Speedup)
	if c.alarms == nil {
		return time.Time{}, period
	}
	return c.alarms.LastStep(), period
}

// serviceScaler is the local ECS service's desired count.
type serviceScaler struct {
	c    *Cloud
	name string
}

func (s serviceScaler) Desired(context.Context) (int, error) {
	return s.c.ecs.DesiredCount(s.name), nil
}
func (s serviceScaler) SetDesired(_ context.Context, n int) error {
	return s.c.ecs.SetDesiredCount(s.name, n)
}

// ageSamplesPerPeriod is how often per (sped-up) period the queues whose
// oldest message's age an alarm reads are sampled: the age is known to a
// quarter period.
const ageSamplesPerPeriod = 4

// cloudSource answers the alarms' metric queries from the real queue
// attributes and the local ECS. SQS has no attribute for the age of the
// oldest message: it is approximated as the time since the queue last had
// nothing visible, sped up like the period, which sampleAges watches
// between the evaluations (else a backlog would only be noticed at the
// next evaluation, and a max wait of whole minutes would be reached a
// period late or on time by chance). Container Insights publishes nothing
// for a service without tasks: so does this source.
type cloudSource struct {
	c            *Cloud
	mu           sync.Mutex
	backlogSince map[string]time.Time
	aged         map[string]bool // queues whose age an alarm reads
	// lastRead is when each Invocations metric was last read: the loop
	// reads each metric once per (sped-up) minute, so the invocations since
	// then are that minute's data point, whatever the timing within it.
	lastRead map[string]time.Time
}

func (s *cloudSource) Value(ctx context.Context, q alarms.MetricQuery) (float64, bool, error) {
	switch q.Namespace {
	case "AWS/SQS":
		name := q.Dims["QueueName"]
		d, err := stackview.Depth(ctx, s.c.clients.SQS, s.c.moto.Endpoint+"/"+Account+"/"+name)
		if err != nil {
			return 0, false, err
		}
		switch q.Name {
		case "ApproximateNumberOfMessagesVisible":
			return float64(d.Visible), true, nil
		case "ApproximateNumberOfMessagesNotVisible":
			return float64(d.InFlight), true, nil
		case "ApproximateAgeOfOldestMessage":
			since := s.observe(name, d.Visible)
			if since.IsZero() {
				return 0, true, nil
			}
			return time.Since(since).Seconds() * s.c.opts.Speedup, true, nil
		}
	case "AWS/Lambda", "AWS/Events":
		// Lambda publishes a function's Invocations (every attempt, retries
		// included) and EventBridge a rule's (target invocations) only for
		// periods in which there were some.
		name := q.Dims["FunctionName"]
		if q.Namespace == "AWS/Events" {
			name = ruleName(q.Dims["RuleName"])
		}
		if q.Name != "Invocations" || name == "" {
			return 0, false, fmt.Errorf("metric %s is not emulated", q)
		}
		key, now := q.Namespace+"/"+name, time.Now()
		s.mu.Lock()
		from, ok := s.lastRead[key]
		if !ok {
			from = now.Add(-time.Duration(float64(q.Period) / s.c.opts.Speedup))
		}
		s.lastRead[key] = now
		s.mu.Unlock()
		n := s.c.invocations.between(key, from, now)
		return float64(n), n > 0, nil
	case "ECS/ContainerInsights":
		svc := q.Dims["ServiceName"]
		var n int
		switch q.Name {
		case "DesiredTaskCount":
			n = s.c.ecs.DesiredCount(svc)
		case "RunningTaskCount":
			n = s.c.ecs.RunningCount(svc)
		default:
			return 0, false, fmt.Errorf("metric %s is not emulated", q)
		}
		if s.c.ecs.RunningCount(svc) == 0 && n == 0 {
			return 0, false, nil
		}
		return float64(n), true, nil
	}
	return 0, false, fmt.Errorf("metric %s is not emulated", q)
}

// observe records a visible count of the queue (by name) and returns
// since when it has had messages visible (zero: none now). A queue read for
// its age is sampled from then on.
func (s *cloudSource) observe(name string, visible int) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aged == nil {
		s.aged = map[string]bool{}
	}
	s.aged[name] = true
	if visible == 0 {
		delete(s.backlogSince, name)
		return time.Time{}
	}
	since, ok := s.backlogSince[name]
	if !ok {
		since = time.Now()
		s.backlogSince[name] = since
	}
	return since
}

// sampleAges reads the visible count of every queue whose age an alarm has
// read, every interval, until ctx ends.
func (s *cloudSource) sampleAges(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.mu.Lock()
		queues := slices.Sorted(maps.Keys(s.aged))
		s.mu.Unlock()
		for _, name := range queues {
			d, err := stackview.Depth(ctx, s.c.clients.SQS, s.c.moto.Endpoint+"/"+Account+"/"+name)
			if err != nil {
				continue // the next evaluation reports a failing read
			}
			s.observe(name, d.Visible)
		}
	}
}

// deployedFunction is a Lambda function of the stack running locally under
// the Lambda Runtime Interface Emulator, with its async-invocation settings.
type deployedFunction struct {
	logicalID, name string
	async           lambdaemu.Async
}

// invoke runs one invocation attempt of f on rt and counts it for the
// function's AWS/Lambda Invocations metric.
func (c *Cloud) invoke(f *deployedFunction, rt *lambdaemu.Runtime) func(context.Context, []byte) ([]byte, error) {
	return func(ctx context.Context, event []byte) ([]byte, error) {
		c.invocations.add("AWS/Lambda/" + f.name)
		return rt.Invoke(ctx, event)
	}
}

// startFunction starts the host build of the function's code with the
// deployed function's environment.
func (c *Cloud) startFunction(ctx context.Context, id string, bins binaries, taskEndpoint string) (*deployedFunction, error) {
	name := c.stack.Physical[id]
	cfg, err := c.clients.Lambda.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("get function %s: %w", name, err)
	}
	env := map[string]string{}
	if cfg.Environment != nil {
		for k, v := range cfg.Environment.Variables {
			env[k] = v
		}
	}
	if v, ok := env[names.EnvQueueURL]; ok {
		env[names.EnvQueueURL] = RewriteURL(v, taskEndpoint)
	}
	for k, v := range awsEnv(taskEndpoint) {
		env[k] = v
	}
	env["AWS_ENDPOINT_URL_ECS"] = c.ecsURL
	logFile, err := os.OpenFile(filepath.Join(c.opts.WorkDir, "logs", "lambda-"+name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, logFile.Close)
	rt, err := lambdaemu.Start(ctx, lambdaemu.Function{
		Name: name, Bootstrap: bins.dispatch, RIE: bins.rie, Env: env, Output: logFile,
		Timeout: time.Duration(aws.ToInt32(cfg.Timeout)) * time.Second, MemoryMB: int(aws.ToInt32(cfg.MemorySize)),
		Track: c.tracker("lambda " + name),
	}, c.opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("start function %s: %w", name, err)
	}
	c.closers = append(c.closers, rt.Close)
	f := &deployedFunction{logicalID: id, name: name}
	f.async = lambdaemu.Async{Attempt: c.invoke(f, rt), FunctionArn: aws.ToString(cfg.FunctionArn), Logger: c.opts.Logger}
	// Async invocation settings (retries, on-failure destination), as deployed.
	for _, eic := range c.stack.Resources("AWS::Lambda::EventInvokeConfig") {
		p := c.stack.Properties(eic)
		if fn, _ := c.resolve(p["FunctionName"]); fn != name {
			continue
		}
		if r, ok := p["MaximumRetryAttempts"].(float64); ok {
			f.async.Retries = int(r)
		}
		if dc, ok := p["DestinationConfig"].(map[string]any); ok {
			of, _ := dc["OnFailure"].(map[string]any)
			if arn, err := c.resolve(of["Destination"]); err == nil && strings.HasPrefix(arn, "arn:aws:sqs:") {
				f.async.OnFailure = c.sendTo(queueURL(c.moto.Endpoint, arn))
			}
		}
	}
	c.opts.Logger.Info("Lambda function running locally", "function", name, "retries", f.async.Retries, "on_failure", f.async.OnFailure != nil)
	return f, nil
}

// snsNotifier delivers an alarm notification to the functions subscribed
// to the topic, as SNS does: asynchronous invocations, retried, then sent
// to the on-failure destination.
type snsNotifier struct {
	c         *Cloud
	functions map[string]*deployedFunction
}

func (n *snsNotifier) Notify(ctx context.Context, topicArn string, change alarms.AlarmStateChange) error {
	msg, err := change.Message()
	if err != nil {
		return err
	}
	delivered := 0
	for _, sub := range n.c.stack.Resources("AWS::SNS::Subscription") {
		p := n.c.stack.Properties(sub)
		if t, _ := n.c.resolve(p["TopicArn"]); t != topicArn || p["Protocol"] != "lambda" {
			continue
		}
		for _, f := range n.functions {
			if !refersToLogical(p["Endpoint"], f.logicalID) {
				continue
			}
			delivered++
			event := lambdaemu.SNSEvent(topicArn, "ALARM: \""+change.AlarmName+"\"", string(msg))
			n.c.goRun("invoke "+f.name, func() error { return f.async.Invoke(ctx, event) })
		}
	}
	if delivered == 0 {
		// The alert topic: its subscribers (e-mail, …) are outside the
		// local cloud; the alert is logged and kept for the report.
		n.c.opts.Logger.Warn("alert published", "topic", topicArn, "alarm", change.AlarmName,
			"state", change.NewStateValue, "reason", change.NewStateReason)
		n.c.alertsMu.Lock()
		n.c.alerts = append(n.c.alerts, change)
		n.c.alertsMu.Unlock()
	}
	return nil
}

// Alerts returns the notifications published so far to topics without a
// Lambda subscriber (the stack's alert topic), oldest first.
func (c *Cloud) Alerts() []alarms.AlarmStateChange {
	c.alertsMu.Lock()
	defer c.alertsMu.Unlock()
	return append([]alarms.AlarmStateChange(nil), c.alerts...)
}

// sendTo is an on-failure destination: the queue at url.
func (c *Cloud) sendTo(url string) func(context.Context, []byte) error {
	return func(ctx context.Context, record []byte) error {
		_, err := c.clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(record))})
		return err
	}
}

// refersToLogical reports whether a template value names a logical id.
func refersToLogical(v any, id string) bool {
	b, _ := json.Marshal(v)
	s := string(b)
	return strings.Contains(s, `{"Ref":"`+id+`"}`) || strings.Contains(s, `{"Fn::GetAtt":["`+id+`",`)
}

// invocationLog counts invocations per "<namespace>/<name>", for the
// Invocations metrics of what the local runtime invokes: a function's
// (AWS/Lambda) and a rule's targets (AWS/Events).
type invocationLog struct {
	mu sync.Mutex
	at map[string][]time.Time
}

// invocationKeep bounds the log: alarms read at most a few periods back.
const invocationKeep = 10 * time.Minute

func (l *invocationLog) add(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = map[string][]time.Time{}
	}
	now := time.Now()
	kept := l.at[name]
	for len(kept) > 0 && now.Sub(kept[0]) > invocationKeep {
		kept = kept[1:]
	}
	l.at[name] = append(kept, now)
}

// last is the newest invocation of name.
func (l *invocationLog) last(name string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := l.at[name]
	if len(at) == 0 {
		return time.Time{}, false
	}
	return at[len(at)-1], true
}

// between counts the invocations after from, up to and including to.
func (l *invocationLog) between(name string, from, to time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, at := range l.at[name] {
		if at.After(from) && !at.After(to) {
			n++
		}
	}
	return n
}
