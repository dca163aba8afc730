package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/consumer/taskcap"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/flagenv"
	"github.com/edp-pipelines/edp/internal/names"
)

// MetricNamespace is the CloudWatch namespace of the consumer's EMF metrics
// (names.ConsumerMetrics; dimension names.ConsumerMetricMode).
const MetricNamespace = names.ConsumerMetricNamespace

// metricsWriter writes the consumer's EMF lines in mode to w: every line
// in MetricNamespace, with the mode as its dimension.
func metricsWriter(w io.Writer, mode, cluster string) *emf.Writer {
	dims := map[string]string{names.ConsumerMetricMode: mode}
	if cluster != "" {
		dims[names.ConsumerMetricCluster] = cluster
	}
	return &emf.Writer{W: w, Namespace: MetricNamespace, Dimensions: dims}
}

// envAgentURI is set by the ECS agent inside every task; its absence means
// "not on ECS" and turns scale-in protection off.
const envAgentURI = "ECS_AGENT_URI"

func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runQueue(ctx, names.ModeDrain, args, os.Getenv, stdout, stderr)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runQueue(ctx, names.ModeServe, args, os.Getenv, stdout, stderr)
}

// queueSettings is everything drain and serve are configured with: the
// worker's Config and what the jobs need.
type queueSettings struct {
	worker                       worker.Config
	bucket                       string
	configPrefix                 string
	artifactPrefix, recordPrefix string
	triggerBucket, triggerKey    string
	agentURI                     string
	// maxTasks caps drain tasks of this task's family working at once
	// (consumer/taskcap); 0, the default, means no cap.
	maxTasks int
	// metadataURI is ECS's task metadata endpoint v4, empty off ECS.
	metadataURI string
	// job is the job every config runs (cmd_job.go).
	job jobSettings
}

// SetDefaults sets every setting left at its zero value to its default;
// the worker's are worker.Config's.
func (s *queueSettings) SetDefaults() {
	s.worker.SetDefaults()
	if s.job.kind == "" {
		s.job = defaultJobSettings()
	}
	for _, p := range []struct {
		val *string
		def string
	}{
		{&s.configPrefix, names.ConfigPrefix}, {&s.artifactPrefix, names.ArtifactPrefix}, {&s.recordPrefix, names.RecordPrefix},
	} {
		if *p.val == "" {
			*p.val = p.def
		}
	}
}

// workerFlags names the flag of each worker.Config field that
// worker.Config.Validate checks: the worker names fields, the command
// names its own flags (bound in flags).
var workerFlags = map[string]string{
	"QueueURL": "queue-url", "DLQURL": "dlq-url", "Concurrency": "concurrency",
	"WaitTime": "wait-seconds", "VisibilityTimeout": "visibility-timeout", "JobTimeout": "job-timeout",
	"RetryDelay": "retry-delay", "Grace": "grace", "EmptyReceives": "empty-receives", "MaxRunTime": "max-run-time",
}

// secondFlags are the flags set in whole seconds (type seconds).
var secondFlags = map[string]bool{"wait-seconds": true, "visibility-timeout": true}

// flagErrors restates the worker's field errors (worker.FieldError) in
// terms of the flags and their environment variables.
func flagErrors(err error) []error {
	var all []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		all = j.Unwrap()
	} else if err != nil {
		all = []error{err}
	}
	out := make([]error, 0, len(all))
	for _, e := range all {
		var fe *worker.FieldError
		name, ok := "", false
		if errors.As(e, &fe) {
			name, ok = workerFlags[fe.Field]
		}
		if !ok {
			out = append(out, e)
			continue
		}
		value := fe.Value
		if d, isDur := value.(time.Duration); isDur && secondFlags[name] {
			value = strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
		}
		if value == "" {
			out = append(out, fmt.Errorf("%s (or -%s) is required", flagenv.Name(name), name))
			continue
		}
		out = append(out, fmt.Errorf("%s / -%s %v: want %s", flagenv.Name(name), name, value, fe.Want))
	}
	return out
}

// Validate reports every invalid setting at once, each naming its
// environment variable and flag: the worker's (worker.Config.Validate,
// restated by flagErrors) and the jobs' own.
func (s queueSettings) Validate() error {
	errs := flagErrors(s.worker.Validate())
	if s.maxTasks < 0 {
		errs = append(errs, fmt.Errorf("%s / -max-tasks %d: want 0 (no cap) or more", flagenv.Name("max-tasks"), s.maxTasks))
	}
	if s.bucket == "" {
		errs = append(errs, fmt.Errorf("%s (or -bucket) is required", flagenv.Name("bucket")))
	}
	errs = append(errs, s.job.validate(envAndFlag)...)
	for _, p := range []struct{ val, flag string }{
		{s.configPrefix, "config-prefix"}, {s.artifactPrefix, "artifact-prefix"}, {s.recordPrefix, "record-prefix"},
	} {
		if p.val == "" || !strings.HasSuffix(p.val, "/") || strings.HasPrefix(p.val, "/") {
			errs = append(errs, fmt.Errorf("%s %q (or -%s): want a key prefix such as %s (ending in /, not starting with /)",
				flagenv.Name(p.flag), p.val, p.flag, names.ConfigPrefix))
		}
	}
	return errors.Join(errs...)
}

// parseQueueSettings starts from the defaults, sets each flag from the
// command line or else from its environment variable (internal/flagenv:
// -wait-seconds falls back to EDP_WAIT_SECONDS), and validates the result
// once.
func parseQueueSettings(mode string, args []string, getenv func(string) string, stderr io.Writer) (queueSettings, error) {
	var s queueSettings
	s.SetDefaults()
	fs := s.flags(mode, stderr)
	if err := flagenv.Parse(fs, args, getenv); err != nil {
		return s, err
	}
	var extra error
	if fs.NArg() > 0 {
		extra = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	s.triggerBucket, s.triggerKey = getenv(names.EnvTriggerBucket), getenv(names.EnvTriggerKey)
	s.agentURI = getenv(envAgentURI)
	s.metadataURI = getenv(taskcap.MetadataEnv)
	return s, errors.Join(extra, s.Validate())
}

// flags binds a flag to every setting, its default the setting's current
// value. Drain's own settings are not flags of serve.
func (s *queueSettings) flags(mode string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage := func(name, text string) string { return text + " (env " + flagenv.Name(name) + ")" }
	str := func(p *string, name, text string) { fs.StringVar(p, name, *p, usage(name, text)) }
	num := func(p *int, name, text string) { fs.IntVar(p, name, *p, usage(name, text)) }
	dur := func(p *time.Duration, name, text string) { fs.DurationVar(p, name, *p, usage(name, text)) }
	secs := func(p *time.Duration, name, text string) { fs.Var((*seconds)(p), name, usage(name, text)) }

	w := &s.worker
	str(&w.QueueURL, "queue-url", "work queue URL; required")
	str(&w.DLQURL, "dlq-url", "dead-letter queue URL; required")
	str(&s.bucket, "bucket", "pipeline bucket; required")
	str(&s.configPrefix, "config-prefix", "only configs under this prefix are run")
	str(&s.artifactPrefix, "artifact-prefix", "artifact prefix")
	str(&s.recordPrefix, "record-prefix", "run record prefix")
	num(&w.Concurrency, "concurrency", "jobs at once; 0 = number of CPUs")
	secs(&w.WaitTime, "wait-seconds", "long-poll wait in `seconds`, 1..20")
	secs(&w.VisibilityTimeout, "visibility-timeout", "the queue's visibility timeout in `seconds`")
	dur(&w.JobTimeout, "job-timeout", "time limit of one job")
	dur(&w.Grace, "grace", fmt.Sprintf("after SIGTERM, how long in-flight jobs may finish; at most %v, so that the stop ends within ECS's %v stopTimeout", worker.MaxGrace, names.StopTimeout))
	dur(&w.RetryDelay, "retry-delay", "hide a transiently failed message this long (at least 1s), doubled per receive")
	s.job.bind(fs, usage)
	if mode == names.ModeDrain {
		num(&w.EmptyReceives, "empty-receives", "exit after this many empty receives in a row")
		dur(&w.MaxRunTime, "max-run-time", "stop taking messages after this long; 0 = no limit")
		num(&s.maxTasks, "max-tasks", "exit 0 at start without receiving when this many other tasks of the task's family already run in its cluster (ECS only); 0 = no cap")
	}
	return fs
}

// seconds is a time.Duration set as a whole number of seconds, the unit of
// EDP_WAIT_SECONDS and EDP_VISIBILITY_TIMEOUT in the task definition.
type seconds time.Duration

func (s *seconds) String() string { return strconv.FormatInt(int64(time.Duration(*s)/time.Second), 10) }

func (s *seconds) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	*s = seconds(time.Duration(n) * time.Second)
	return nil
}

// runQueue is drain and serve: settings, clients, then the consumer.
func runQueue(ctx context.Context, mode string, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	s, err := parseQueueSettings(mode, args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid settings:\n  %s\n", mode, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("mode", mode, "version", version)
	if s.triggerBucket != "" || s.triggerKey != "" {
		// A one-off task names the upload that started it; the work itself
		// still comes from the queue, which holds the same event.
		log.InfoContext(ctx, "started by upload", "bucket", s.triggerBucket, "s3_key", s.triggerKey)
	}
	// Before any AWS call: a task that cannot run its job takes no work.
	cj, err := s.job.commandJob(s.bucket)
	if err == nil && cj != nil {
		err = checkCommandJob(cj)
	}
	if err != nil {
		log.ErrorContext(ctx, "start-up check failed: the job cannot run", "error", err.Error())
		return 1
	}

	cfg, err := loadAWS(ctx)
	if err != nil {
		log.ErrorContext(ctx, "start", "error", err.Error())
		return 1
	}
	// The task, from ECS's task metadata: its cluster is a dimension of the
	// metrics (each stack's dashboard charts its own jobs), its ARN goes
	// into the recent-runs index (edp watch says where a run runs).
	var task, cluster string
	if s.metadataURI != "" {
		mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if t, err := taskcap.ReadTask(mctx, nil, s.metadataURI); err == nil {
			task, cluster = t.TaskARN, t.Cluster[strings.LastIndex(t.Cluster, "/")+1:]
		} else {
			log.WarnContext(ctx, "task metadata: metrics carry no cluster and the runs' index entries name the host", "error", err.Error())
		}
		cancel()
	}
	metrics := metricsWriter(stdout, mode, cluster)
	if mode == names.ModeDrain && s.maxTasks > 0 {
		// Before any other call: a task over the cap costs as little as
		// possible and never touches the queue.
		c := &taskcap.Checker{Max: s.maxTasks, MetadataURI: s.metadataURI, Lister: ecs.NewFromConfig(cfg), Logger: log, Metrics: metrics}
		if !c.Check(ctx).Drain {
			return 0
		}
	}
	sqsClient, s3Client := sqs.NewFromConfig(cfg), newS3(cfg)
	err = runStartChecks(ctx, log, startCheckTimeout,
		startCheck{name: "queue", resource: "queue " + s.worker.QueueURL, attrs: []any{"queue_url", s.worker.QueueURL},
			run: func(ctx context.Context) error { return checkVisibility(ctx, sqsClient, &s.worker, log) }},
		startCheck{name: "bucket", resource: "bucket " + s.bucket, attrs: []any{"bucket", s.bucket},
			run: func(ctx context.Context) error { return checkBucket(ctx, s3Client, s.bucket) }},
	)
	if err != nil && ctx.Err() != nil {
		// Stopped by a signal before taking anything: a clean stop.
		log.InfoContext(ctx, "stopped during start-up", "error", err.Error())
		return 0
	}
	if err != nil {
		log.ErrorContext(ctx, "start-up check failed", "error", err.Error())
		return 1
	}
	objects := store.NewS3(s3Client, s.bucket)
	proc := &job.QueueProcessor{
		Runner: &job.Runner{
			In: objects, Out: objects,
			ArtifactPrefix: s.artifactPrefix, RecordPrefix: s.recordPrefix,
			Logger: log, Version: version, Command: cj, Task: task,
		},
		Bucket: s.bucket, ConfigPrefix: s.configPrefix,
	}
	w := s.worker
	w.Logger = log
	w.Metrics = metrics
	if mode == names.ModeServe {
		// Protection must outlast a job that starts when the last renewal
		// is half spent, hence twice the job timeout.
		w.Protection = &ecsprotect.Guard{
			Setter: &ecsprotect.Client{AgentURI: s.agentURI}, Expiry: 2*w.JobTimeout + w.Grace,
			Logger: log, Metrics: w.Metrics,
		}
		if s.agentURI == "" {
			w.Protection = nil
		}
	}
	c, err := worker.New(w, sqsClient, proc)
	if err != nil {
		log.ErrorContext(ctx, "start", "error", err.Error())
		return 2
	}
	log.InfoContext(ctx, "consuming", "queue_url", w.QueueURL, "job", s.job.kind, "concurrency", c.Concurrency(),
		"visibility_timeout_s", int(w.VisibilityTimeout/time.Second), "ecs_protection", s.agentURI != "" && mode == names.ModeServe)
	start := time.Now()
	var st worker.Stats
	if mode == names.ModeDrain {
		st, err = c.Drain(ctx)
	} else {
		st, err = c.Serve(ctx)
	}
	attrs := []any{"received", st.Received, "succeeded", st.Succeeded, "duplicates", st.Duplicates,
		"dead_lettered", st.DeadLettered, "retried", st.Retried, "released", st.Released, "skipped", st.Skipped,
		"duration_ms", time.Since(start).Milliseconds()}
	if errors.Is(err, worker.ErrNotDrained) {
		// The queue works; messages stayed hidden past the wait (another
		// consumer's jobs, or delayed). A code of its own tells this apart
		// from a queue that cannot be used.
		log.ErrorContext(ctx, "stopped: queue not drained", append(attrs, "error", err.Error())...)
		return exitNotDrained
	}
	if err != nil {
		log.ErrorContext(ctx, "stopped", append(attrs, "error", err.Error())...)
		return 1
	}
	log.InfoContext(ctx, "stopped", attrs...)
	return 0
}

// exitNotDrained is drain's exit code when the queue still held messages in
// flight (or delayed) after the wait for them (worker.ErrNotDrained).
const exitNotDrained = 3

// queueAttributes is the part of *sqs.Client checkVisibility uses.
type queueAttributes interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// checkVisibility reads the queue's visibility timeout: it proves the queue
// URL and permissions before any work is taken, and a setting that differs
// from the queue would make heartbeats come too late, so the queue wins. A
// queue timeout under 2 s is refused: SQS would hand a message out again
// before the first heartbeat could extend it.
func checkVisibility(ctx context.Context, client queueAttributes, w *worker.Config, log *slog.Logger) error {
	out, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(w.QueueURL),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout},
	})
	if err != nil {
		return fmt.Errorf("read attributes (%s / -queue-url): %w", names.EnvQueueURL, err)
	}
	raw, ok := out.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]
	if !ok {
		return nil // not reported: trust the setting
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < 2 {
		return fmt.Errorf("VisibilityTimeout %q: the consumer needs at least 2 seconds (set the queue attribute VisibilityTimeout, 300 by default)", raw)
	}
	if q := time.Duration(v) * time.Second; q != w.VisibilityTimeout {
		log.WarnContext(ctx, "visibility timeout setting differs from the queue's; using the queue's",
			"setting_s", int(w.VisibilityTimeout/time.Second), "queue_s", v)
		w.VisibilityTimeout = q
	}
	return nil
}
