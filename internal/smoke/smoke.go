// Package smoke checks a deployed edp stack end to end, on AWS or in the
// local cloud: it finds the stack's outputs, uploads one pipeline config
// under a unique key, waits (with progress and a timeout that fits the
// stack's architecture) for its run record, and checks that the run
// succeeded, that every artifact the record lists exists and that the
// dead-letter queue is empty.
//
// It changes nothing but the one upload (and what the deployment does with
// it); the uploaded config is left in the bucket. It never receives from the
// dead-letter queue, so it cannot hide a message there.
package smoke

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// S3API is the part of S3 the smoke test uses.
type S3API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
}

// SQSAPI is the part of SQS the smoke test uses: queue attributes only.
type SQSAPI interface {
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Local describes the local cloud the stack runs in.
type Local struct {
	// Endpoint is the emulator's endpoint; queue URL outputs are rewritten
	// to it.
	Endpoint string
	// Speedup is the cloud's time compression (alarm periods and the age
	// of messages). Default 30, `edp local`'s default.
	Speedup float64
	// Trigger runs the stack's schedules now (cron stacks); required for
	// them.
	Trigger func(ctx context.Context, st *localcloud.Stack) ([]string, error)
}

// Options configure Run.
type Options struct {
	// Stack is the stack name (names.Stack*). Required.
	Stack string
	// Config is the pipeline config to upload. Required.
	Config []byte
	// ConfigName is the config's file name; its suffix (.yaml, .yml or
	// .json) is kept for the uploaded key. Default ".yaml".
	ConfigName string
	// Timeout bounds the wait for the run; 0 picks the architecture's
	// default (see makePlan).
	Timeout time.Duration
	// Where names the deployment in the first line ("AWS eu-west-1").
	Where string
	// Local is set for the local cloud; nil means AWS.
	Local *Local
	// Poll is the time between two progress checks. Default 5 s on AWS,
	// 1 s locally.
	Poll time.Duration
	// CFN, S3 and SQS reach the deployment. Required.
	CFN stackview.StackReader
	S3  S3API
	SQS SQSAPI
	// ECS, when set, measures the run's task after a pass
	// (Result.Measured): its start, and for EdpOneOff the event delay.
	// Default none.
	ECS ECSAPI
	// Out receives the progress and the verdict. Default discard.
	Out io.Writer
}

func (o *Options) setDefaults() {
	if o.Local != nil && o.Local.Speedup <= 0 {
		o.Local.Speedup = 30
	}
	if o.Poll <= 0 {
		o.Poll = 5 * time.Second
		if o.Local != nil {
			o.Poll = time.Second
		}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Where == "" {
		o.Where = "AWS"
		if o.Local != nil {
			o.Where = "the local cloud at " + o.Local.Endpoint
		}
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.Stack == "" {
		errs = append(errs, errors.New("smoke: Stack is required"))
	}
	if len(o.Config) == 0 {
		errs = append(errs, errors.New("smoke: Config is empty"))
	}
	if o.CFN == nil || o.S3 == nil || o.SQS == nil {
		errs = append(errs, errors.New("smoke: CFN, S3 and SQS clients are required"))
	}
	return errors.Join(errs...)
}

// Result is the outcome of one smoke test.
type Result struct {
	Stack string
	Arch  Arch
	// Key is the uploaded config's key; Uploaded when its upload began.
	Key      string
	Uploaded time.Time
	// RecordKey and Record are the run record found for Key (nil: none).
	RecordKey string
	Record    *runrecord.Record
	// Latency is the record's finished_at minus Uploaded.
	Latency time.Duration
	// DLQ is the dead-letter queue's depth at the end; DLQBefore before the
	// upload.
	DLQ, DLQBefore stackview.QueueDepth
	// Problems are the failed checks; none means PASS.
	Problems []string
	// Measured are the run's timings (Options.ECS set and the run
	// passed); MeasureError says why they could not be read (not a
	// failed check).
	Measured     *Measured
	MeasureError error
}

// Passed reports whether every check passed.
func (r Result) Passed() bool { return len(r.Problems) == 0 }

// Summary is the one-line verdict.
func (r Result) Summary() string {
	head := fmt.Sprintf("%s (%s)", r.Stack, r.Arch)
	if !r.Passed() {
		return "FAIL " + head + ": " + strings.Join(r.Problems, "; ")
	}
	model := ""
	if r.Record.ModelType != "" {
		model = " (" + r.Record.ModelType
		if r.Record.Accuracy != nil {
			model += fmt.Sprintf(", accuracy %.3f", *r.Record.Accuracy)
		}
		model += ")"
	}
	return fmt.Sprintf("PASS %s: %s → %s %s%s, %d artifacts present, DLQ empty, upload→done %s",
		head, r.Key, r.RecordKey, r.Record.Status, model, len(r.Record.Artifacts), r.Latency.Round(10*time.Millisecond))
}

// Run uploads o.Config to the stack's bucket, waits for its run and checks
// it. A failed check is a Result with Problems, not an error; an error
// means the test could not be carried out (the stack is missing, a call
// failed, ctx ended) or, wrapping ErrRefused, would wait beyond the
// timeout (nothing was uploaded then).
func Run(ctx context.Context, o Options) (Result, error) {
	o.setDefaults()
	if err := o.validate(); err != nil {
		return Result{}, err
	}
	res := Result{Stack: o.Stack}
	endpoint := ""
	if o.Local != nil {
		endpoint = o.Local.Endpoint
	}
	st, err := stackview.DescribeStack(ctx, o.CFN, o.Stack, endpoint)
	if err != nil {
		return res, fmt.Errorf("find stack %s in %s: %w", o.Stack, o.Where, err)
	}
	bucket, queue, dlq := st.Outputs[names.OutputBucket], st.Outputs[names.OutputQueueURL], st.Outputs[names.OutputDLQURL]
	if bucket == "" || queue == "" || dlq == "" {
		return res, fmt.Errorf("stack %s lacks an output (%s, %s, %s): %v", o.Stack, names.OutputBucket, names.OutputQueueURL, names.OutputDLQURL, st.Outputs)
	}
	res.Arch = DetectArch(st)
	speedup := 0.0
	if o.Local != nil {
		speedup = o.Local.Speedup
	}
	p, err := makePlan(st, res.Arch, time.Now(), o.Timeout, speedup)
	if err != nil {
		return res, err
	}
	if res.Arch == Cron && o.Local != nil && o.Local.Trigger == nil {
		return res, errors.New("smoke: a cron stack in the local cloud needs Local.Trigger")
	}
	fmt.Fprintf(o.Out, "edp smoke: %s (%s) in %s: %s; timeout %s\n", o.Stack, res.Arch, o.Where, p.explain, p.timeout.Round(time.Second))

	if res.DLQBefore, err = stackview.Depth(ctx, o.SQS, dlq); err != nil {
		return res, fmt.Errorf("dead-letter queue: %w", err)
	}
	res.Key = uniqueKey(time.Now(), o.ConfigName)
	res.Uploaded = time.Now()
	put, err := o.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(res.Key), Body: bytes.NewReader(o.Config)})
	if err != nil {
		return res, fmt.Errorf("upload s3://%s/%s: %w", bucket, res.Key, err)
	}
	fmt.Fprintf(o.Out, "edp smoke: uploaded s3://%s/%s (left in the bucket afterwards)\n", bucket, res.Key)
	if res.Arch == Cron && o.Local != nil {
		arns, err := o.Local.Trigger(ctx, st)
		if err != nil {
			return res, fmt.Errorf("run the schedule now: %w", err)
		}
		fmt.Fprintf(o.Out, "edp smoke: ran the target of schedule %s now: %d task(s)\n", p.schedule, len(arns))
	}

	f := &finder{s3: o.S3, bucket: bucket, key: res.Key, since: res.Uploaded.Add(-recordClockSkew), checked: map[string]string{}}
	if v := aws.ToString(put.VersionId); v != "" && v != "null" {
		// A versioned bucket: the event names this version, which makes the
		// run id (docs/pipeline.md, Idempotency).
		f.predicted = names.RecordPrefix + runrecord.RunID(runrecord.Source{Bucket: bucket, Key: res.Key, VersionID: v}, nil) + ".json"
	}
	w := watch{o: &o, queue: queue, finder: f, start: res.Uploaded, deadline: res.Uploaded.Add(p.timeout)}
	rec, last, err := w.untilRecord(ctx)
	if err != nil {
		return res, err
	}
	res.Record, res.RecordKey = rec, f.found
	if rec == nil {
		res.Problems = append(res.Problems, fmt.Sprintf("no run record for %s within %s (queue %d visible / %d in flight)",
			res.Key, p.timeout.Round(time.Second), last.Visible, last.InFlight))
	} else {
		if err := w.untilQueueSettles(ctx); err != nil {
			return res, err
		}
		res.Latency = rec.FinishedAt.Sub(res.Uploaded)
		fmt.Fprintf(o.Out, "edp smoke: run record %s: %s; upload→start %s, upload→done %s\n", res.RecordKey, rec.Status,
			rec.StartedAt.Sub(res.Uploaded).Round(10*time.Millisecond), res.Latency.Round(10*time.Millisecond))
		res.Problems = append(res.Problems, recordProblems(res.RecordKey, rec)...)
		missing, err := missingArtifacts(ctx, o.S3, bucket, rec)
		if err != nil {
			return res, err
		}
		res.Problems = append(res.Problems, missing...)
	}
	if res.DLQ, err = stackview.Depth(ctx, o.SQS, dlq); err != nil {
		return res, fmt.Errorf("dead-letter queue: %w", err)
	}
	if n := res.DLQ.Visible + res.DLQ.InFlight; n > 0 {
		res.Problems = append(res.Problems, fmt.Sprintf("the dead-letter queue holds %d message(s) (%d before the upload)",
			n, res.DLQBefore.Visible+res.DLQBefore.InFlight))
	}
	fmt.Fprintln(o.Out, res.Summary())
	if o.ECS != nil && res.Passed() {
		m, err := measure(ctx, &o, res, bucket, st.Outputs[names.OutputCluster])
		if err != nil {
			res.MeasureError = err
			fmt.Fprintln(o.Out, "edp smoke: no timings measured:", err)
		} else {
			res.Measured = &m
			line := fmt.Sprintf("edp smoke: task %s ran the job %s after its RunTask", m.Task[strings.LastIndex(m.Task, "/")+1:], m.TaskStart.Round(10*time.Millisecond))
			if m.HasEventDelay {
				line += fmt.Sprintf(", %s after the upload", m.EventDelay.Round(10*time.Millisecond))
			}
			if o.Local != nil {
				line += fmt.Sprintf(" (model time: real × %g)", o.Local.Speedup)
			}
			fmt.Fprintln(o.Out, line)
		}
	}
	return res, nil
}

// uniqueKey is configs/smoke-<UTC time>-<random>.<suffix of name>.
func uniqueKey(now time.Time, name string) string {
	ext := ".yaml"
	for _, s := range names.ConfigSuffixes {
		if strings.HasSuffix(name, s) {
			ext = s
		}
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return names.ConfigPrefix + "smoke-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b) + ext
}

// recordProblems are the failed checks of a run record.
func recordProblems(key string, r *runrecord.Record) []string {
	switch {
	case r.Status == runrecord.StatusSucceeded && len(r.Artifacts) == 0:
		return []string{fmt.Sprintf("run record %s lists no artifacts", key)}
	case r.Status == runrecord.StatusSucceeded:
		return nil
	case r.Status == runrecord.StatusFailed:
		kind := "transient"
		if r.Permanent {
			kind = "permanent"
		}
		return []string{fmt.Sprintf("run record %s has status failed (%s): %s", key, kind, r.Error)}
	}
	return []string{fmt.Sprintf("run record %s has status %s, want succeeded: %s", key, r.Status, r.Reason)}
}

// missingArtifacts checks each artifact of a succeeded run with HeadObject.
func missingArtifacts(ctx context.Context, api S3API, bucket string, r *runrecord.Record) ([]string, error) {
	if r.Status != runrecord.StatusSucceeded {
		return nil, nil
	}
	var out []string
	for _, k := range r.Artifacts {
		_, err := api.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		switch {
		case isNotFound(err):
			out = append(out, fmt.Sprintf("artifact %s is missing", k))
		case err != nil:
			return nil, fmt.Errorf("head artifact %s: %w", k, err)
		}
	}
	return out, nil
}
