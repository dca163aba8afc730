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
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// MetricNamespace is the CloudWatch namespace of the consumer's EMF metrics
// (JobsSucceeded, JobsFailed, JobDuration, QueueWait, ProtectionFailures;
// dimension Mode).
const MetricNamespace = "edp/consumer"

// envAgentURI is set by the ECS agent inside every task; its absence means
// "not on ECS" and turns scale-in protection off.
const envAgentURI = "ECS_AGENT_URI"

func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runQueue(ctx, names.ModeDrain, args, os.Getenv, stdout, stderr)
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runQueue(ctx, names.ModeServe, args, os.Getenv, stdout, stderr)
}

// queueSettings is everything drain and serve are configured with.
type queueSettings struct {
	worker                       worker.Config
	artifactPrefix, recordPrefix string
	triggerBucket, triggerKey    string
	agentURI                     string
}

// parseQueueSettings reads the environment, then the flags (which win), and
// validates the result. Errors name the variable and the flag.
func parseQueueSettings(mode string, args []string, getenv func(string) string, stderr io.Writer) (queueSettings, error) {
	var s queueSettings
	w := &s.worker
	var errs []error
	envInt := func(name string, def int) int {
		v := getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not an integer", name, v))
		}
		return n
	}
	envDur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: not a duration such as 15m", name, v))
		}
		return d
	}
	envStr := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}

	fs := flag.NewFlagSet(mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&w.QueueURL, "queue-url", getenv(names.EnvQueueURL), "work queue URL (env "+names.EnvQueueURL+"; required)")
	fs.StringVar(&w.DLQURL, "dlq-url", getenv(names.EnvDLQURL), "dead-letter queue URL (env "+names.EnvDLQURL+"; required)")
	fs.StringVar(&w.Bucket, "bucket", getenv(names.EnvBucket), "pipeline bucket (env "+names.EnvBucket+"; required)")
	fs.StringVar(&w.ConfigPrefix, "config-prefix", envStr(names.EnvConfigPrefix, names.ConfigPrefix), "only configs under this prefix are run (env "+names.EnvConfigPrefix+")")
	fs.StringVar(&s.artifactPrefix, "artifact-prefix", envStr(names.EnvArtifactPrefix, names.ArtifactPrefix), "artifact prefix (env "+names.EnvArtifactPrefix+")")
	fs.StringVar(&s.recordPrefix, "record-prefix", envStr(names.EnvRecordPrefix, names.RecordPrefix), "run record prefix (env "+names.EnvRecordPrefix+")")
	fs.IntVar(&w.Concurrency, "concurrency", envInt(names.EnvConcurrency, 0), "jobs at once; 0 = number of CPUs (env "+names.EnvConcurrency+")")
	waitSeconds := fs.Int("wait-seconds", envInt(names.EnvWaitSeconds, 20), "long-poll wait, 1..20 s (env "+names.EnvWaitSeconds+")")
	visibility := fs.Int("visibility-timeout", envInt(names.EnvVisibilityTimeout, 300), "the queue's visibility timeout in seconds (env "+names.EnvVisibilityTimeout+")")
	fs.DurationVar(&w.JobTimeout, "job-timeout", envDur(names.EnvJobTimeout, worker.DefaultJobTimeout), "time limit of one job (env "+names.EnvJobTimeout+")")
	fs.DurationVar(&w.Grace, "grace", worker.DefaultGrace, "after SIGTERM, how long in-flight jobs may finish; keep below ECS stopTimeout (120s)")
	fs.DurationVar(&w.RetryDelay, "retry-delay", worker.DefaultRetryDelay, "hide a transiently failed message this long (at least 1s), doubled per receive")
	if mode == names.ModeDrain {
		fs.IntVar(&w.EmptyReceives, "empty-receives", envInt(names.EnvEmptyReceives, worker.DefaultEmptyReceives), "exit after this many empty receives in a row (env "+names.EnvEmptyReceives+")")
		fs.DurationVar(&w.MaxRunTime, "max-run-time", envDur(names.EnvMaxRunTime, 0), "stop taking messages after this long; 0 = no limit (env "+names.EnvMaxRunTime+")")
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}

	required := []struct{ val, env, flag string }{
		{w.QueueURL, names.EnvQueueURL, "queue-url"},
		{w.DLQURL, names.EnvDLQURL, "dlq-url"},
		{w.Bucket, names.EnvBucket, "bucket"},
	}
	for _, r := range required {
		if r.val == "" {
			errs = append(errs, fmt.Errorf("%s (or -%s) is required", r.env, r.flag))
		}
	}
	if w.Concurrency < 0 || w.Concurrency > 1000 {
		errs = append(errs, fmt.Errorf("%s / -concurrency %d: want 0 (CPUs) to 1000", names.EnvConcurrency, w.Concurrency))
	}
	if *waitSeconds < 1 || *waitSeconds > 20 {
		errs = append(errs, fmt.Errorf("%s / -wait-seconds %d: want 1 to 20", names.EnvWaitSeconds, *waitSeconds))
	}
	if *visibility < 2 || *visibility > 43200 {
		errs = append(errs, fmt.Errorf("%s / -visibility-timeout %d: want 2 to 43200 seconds", names.EnvVisibilityTimeout, *visibility))
	}
	if w.JobTimeout <= 0 || w.JobTimeout > 12*time.Hour {
		errs = append(errs, fmt.Errorf("%s / -job-timeout %v: want more than 0 and at most 12h", names.EnvJobTimeout, w.JobTimeout))
	}
	if w.Grace <= 0 {
		errs = append(errs, fmt.Errorf("-grace %v: want more than 0", w.Grace))
	}
	if w.RetryDelay < time.Second {
		// SQS hides messages for whole seconds: less would retry at once.
		errs = append(errs, fmt.Errorf("-retry-delay %v: want at least 1s", w.RetryDelay))
	}
	if mode == names.ModeDrain {
		if w.EmptyReceives < 1 {
			errs = append(errs, fmt.Errorf("%s / -empty-receives %d: want at least 1", names.EnvEmptyReceives, w.EmptyReceives))
		}
		if w.MaxRunTime < 0 {
			errs = append(errs, fmt.Errorf("%s / -max-run-time %v: want 0 (no limit) or more", names.EnvMaxRunTime, w.MaxRunTime))
		}
	}
	for _, p := range []struct{ val, env string }{
		{w.ConfigPrefix, names.EnvConfigPrefix}, {s.artifactPrefix, names.EnvArtifactPrefix}, {s.recordPrefix, names.EnvRecordPrefix},
	} {
		if p.val == "" || !strings.HasSuffix(p.val, "/") || strings.HasPrefix(p.val, "/") {
			errs = append(errs, fmt.Errorf("%s %q: want a key prefix such as configs/ (ending in /, not starting with /)", p.env, p.val))
		}
	}
	w.WaitTime = time.Duration(*waitSeconds) * time.Second
	w.VisibilityTimeout = time.Duration(*visibility) * time.Second
	s.triggerBucket, s.triggerKey = getenv(names.EnvTriggerBucket), getenv(names.EnvTriggerKey)
	s.agentURI = getenv(envAgentURI)
	return s, errors.Join(errs...)
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

	cfg, err := loadAWS(ctx)
	if err != nil {
		log.ErrorContext(ctx, "start", "error", err.Error())
		return 1
	}
	sqsClient, s3Client := sqs.NewFromConfig(cfg), newS3(cfg)
	err = runStartChecks(ctx, log, startCheckTimeout,
		startCheck{name: "queue", resource: "queue " + s.worker.QueueURL, attrs: []any{"queue_url", s.worker.QueueURL},
			run: func(ctx context.Context) error { return checkVisibility(ctx, sqsClient, &s.worker, log) }},
		startCheck{name: "bucket", resource: "bucket " + s.worker.Bucket, attrs: []any{"bucket", s.worker.Bucket},
			run: func(ctx context.Context) error { return checkBucket(ctx, s3Client, s.worker.Bucket) }},
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
	objects := store.NewS3(s3Client, s.worker.Bucket)
	runner := &job.Runner{
		In: objects, Out: objects,
		ArtifactPrefix: s.artifactPrefix, RecordPrefix: s.recordPrefix,
		Logger: log, Version: version,
	}
	w := s.worker
	w.Logger = log
	w.Metrics = &emf.Writer{W: stdout, Namespace: MetricNamespace, Dimensions: map[string]string{"Mode": mode}}
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
	c, err := worker.New(w, sqsClient, runnerProcessor{runner})
	if err != nil {
		log.ErrorContext(ctx, "start", "error", err.Error())
		return 2
	}
	log.InfoContext(ctx, "consuming", "queue_url", w.QueueURL, "concurrency", c.Concurrency(),
		"visibility_timeout_s", int(w.VisibilityTimeout/time.Second), "ecs_protection", s.agentURI != "" && mode == names.ModeServe)
	start := time.Now()
	var st worker.Stats
	if mode == names.ModeDrain {
		st, err = c.Drain(ctx)
	} else {
		st, err = c.Serve(ctx)
	}
	attrs := []any{"received", st.Received, "succeeded", st.Succeeded, "duplicates", st.Duplicates,
		"dead_lettered", st.DeadLettered, "retried", st.Retried, "released", st.Released,
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

// runnerProcessor runs queue jobs with the pipeline's job.Runner.
type runnerProcessor struct{ r *job.Runner }

func (p runnerProcessor) Process(ctx context.Context, j worker.Job) (worker.Result, error) {
	res, err := p.r.Run(ctx, job.Source{
		Bucket: j.Bucket, Key: j.Key, VersionID: j.VersionID, ETag: j.ETag, Sequencer: j.Sequencer, EventTime: j.EventTime,
	})
	out := worker.Result{RunID: res.RunID, Duplicate: res.Duplicate}
	if errors.Is(err, job.ErrPermanent) {
		return out, worker.Permanent(err)
	}
	return out, err
}
