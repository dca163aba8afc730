package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// targetFlags pick the deployed stack an operator verb works on (submit,
// status, watch, logs, dlq, top): on AWS through the SDK's default
// credential chain, or the local cloud that `edp local up` runs.
type targetFlags struct {
	stack, region, workDir string
	local                  bool
}

// bind adds the target flags to fs.
func (f *targetFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.stack, "stack", "", "the stack (EdpOneOff, EdpAlarmService, EdpAlarmDispatch, EdpCron, or an architecture name); default: the one edp stack deployed")
	fs.StringVar(&f.region, "region", "", "AWS region; default: the SDK's (AWS_REGION, the profile)")
	fs.BoolVar(&f.local, "local", false, "use the local cloud that make local-up runs (see -work-dir)")
	fs.StringVar(&f.workDir, "work-dir", ".edp-local", "the local cloud's `directory` (with -local)")
}

// target is one deployed stack and the clients that reach it.
type target struct {
	stack *stackview.Stack
	// where says where the stack runs: "AWS <region>" or "the local cloud".
	where string
	local bool
	// logDir holds the local tasks' logs (local only).
	logDir string
	// endpoint is the local cloud's AWS endpoint and ecsEndpoint its ECS
	// API (local only).
	endpoint, ecsEndpoint string
	s3                    *s3.Client
	sqs                   *sqs.Client
	ecs                   *ecs.Client
	logs                  *cloudwatchlogs.Client // nil locally
	cw                    *cloudwatch.Client     // nil locally
}

// Errors of openTarget, each a reason a verb cannot start.
var (
	errNoLocalCloud = errors.New("no local cloud is running")
	errNoStack      = errors.New("no such stack")
	errNotEdp       = errors.New("not an edp stack")
)

// edpOutputs are the outputs every edp stack has.
var edpOutputs = []string{names.OutputBucket, names.OutputQueueURL, names.OutputDLQURL}

// openTarget resolves the flags to a stack and its clients.
func openTarget(ctx context.Context, f targetFlags) (*target, error) {
	if f.local {
		return openLocal(ctx, f)
	}
	opts := []func(*config.LoadOptions) error{}
	if f.region != "" {
		opts = append(opts, config.WithRegion(f.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: pass -region, set AWS_REGION or a profile's region (or use -local)")
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("no AWS credentials (the SDK's default chain: environment, profile, SSO, instance role): %w", err)
	}
	cfn := cloudformation.NewFromConfig(cfg)
	name, err := pickStack(ctx, cfn, f.stack, cfg.Region)
	if err != nil {
		return nil, err
	}
	st, err := describeEdpStack(ctx, cfn, name, "")
	if err != nil {
		return nil, err
	}
	return &target{
		stack: st, where: "AWS " + cfg.Region,
		s3: s3.NewFromConfig(cfg), sqs: sqs.NewFromConfig(cfg), ecs: ecs.NewFromConfig(cfg),
		logs: cloudwatchlogs.NewFromConfig(cfg), cw: cloudwatch.NewFromConfig(cfg),
	}, nil
}

// openLocal opens the stack of the local cloud in f.workDir.
func openLocal(ctx context.Context, f targetFlags) (*target, error) {
	st, err := readState(f.workDir)
	if err != nil || syscall.Kill(st.PID, 0) != nil {
		return nil, fmt.Errorf("%w in %s: start one with `make local-up` (edp local up -detach)", errNoLocalCloud, f.workDir)
	}
	if f.stack != "" {
		want, err := stackFor(f.stack)
		if err != nil {
			return nil, err
		}
		if want != st.Stack {
			return nil, fmt.Errorf("%w: the local cloud in %s runs %s, not %s", errNoStack, f.workDir, st.Stack, want)
		}
	}
	c, err := localcloud.NewClients(ctx, st.Endpoint)
	if err != nil {
		return nil, err
	}
	stack, err := describeEdpStack(ctx, c.CFN, st.Stack, st.Endpoint)
	if err != nil {
		return nil, err
	}
	return &target{
		stack: stack, where: "the local cloud", local: true, logDir: filepath.Join(f.workDir, "logs"), endpoint: st.Endpoint, ecsEndpoint: st.ECSEndpoint,
		s3: c.S3, sqs: c.SQS,
		ecs: ecs.New(ecs.Options{Region: localcloud.Region, BaseEndpoint: aws.String(st.ECSEndpoint), Credentials: aws.AnonymousCredentials{}}),
	}, nil
}

// pickStack is the stack flag's stack, or the one edp stack deployed.
func pickStack(ctx context.Context, cfn *cloudformation.Client, flagValue, region string) (string, error) {
	if flagValue != "" {
		return stackFor(flagValue)
	}
	var found []string
	for _, name := range []string{names.StackOneOff, names.StackAlarmService, names.StackAlarmDispatch, names.StackCron} {
		if _, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)}); err == nil {
			found = append(found, name)
		} else if !strings.Contains(err.Error(), "does not exist") {
			return "", fmt.Errorf("look for edp stacks: %w", err)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: no edp stack is deployed in %s (deploy one: make deploy-oneoff), or pass -stack", errNoStack, region)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d edp stacks are deployed in %s (%s): pass -stack", len(found), region, strings.Join(found, ", "))
}

// describeEdpStack reads a stack and checks it is one of edp's.
func describeEdpStack(ctx context.Context, api stackview.StackReader, name, endpoint string) (*stackview.Stack, error) {
	st, err := stackview.DescribeStack(ctx, api, name, endpoint)
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, fmt.Errorf("%w: %s: %w", errNoStack, name, err)
		}
		return nil, err
	}
	var missing []string
	for _, o := range edpOutputs {
		if st.Outputs[o] == "" {
			missing = append(missing, o)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: stack %s has no %s output", errNotEdp, name, strings.Join(missing, ", "))
	}
	return st, nil
}

func (t *target) bucket() string { return t.stack.Outputs[names.OutputBucket] }

// deliveryDLQ is the URL of the queue that receives the events the rule
// or the Scheduler could not deliver ("" if the stack has none).
func (t *target) deliveryDLQ() string {
	for _, id := range t.stack.Resources("AWS::SQS::Queue") {
		if strings.Contains(id, "DeliveryDLQ") {
			if t.local {
				return stackview.RewriteURL(t.stack.Physical[id], t.endpoint)
			}
			return t.stack.Physical[id]
		}
	}
	return ""
}

// verb is the frame of every operator verb: its flags (the target's
// and its own), a parse, and exit codes: 0 done, 1 failed, 2 usage.
type verb struct {
	name, usage string
	fs          *flag.FlagSet
	target      targetFlags
	// args are the arguments that are not flags, wherever they stood.
	args []string
}

func newVerb(name, usage string, stderr io.Writer) *verb {
	v := &verb{name: name, usage: usage, fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	v.fs.SetOutput(stderr)
	v.target.bind(v.fs)
	v.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: edp %s\n", usage)
		fmt.Fprintln(stderr, "Each flag falls back to EDP_<FLAG> (EDP_STACK, EDP_LOCAL, ...).")
		v.fs.PrintDefaults()
	}
	return v
}

// parse parses args — flags may come before or after the other
// arguments (`edp submit CONFIG -wait`) — into the flags and v.args; ok
// false means return code. nargs, when given, are the allowed numbers of
// other arguments.
func (v *verb) parse(args []string, stderr io.Writer, nargs ...int) (code int, ok bool) {
	for {
		if err := parseFlags(v.fs, args, os.Getenv); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0, false
			}
			fmt.Fprintf(stderr, "edp %s: %v\n", v.name, err)
			return 2, false
		}
		args = v.fs.Args()
		if len(args) == 0 {
			break
		}
		v.args, args = append(v.args, args[0]), args[1:]
	}
	if len(nargs) > 0 && !slices.Contains(nargs, len(v.args)) {
		fmt.Fprintf(stderr, "edp %s: usage: edp %s\n", v.name, v.usage)
		return 2, false
	}
	return 0, true
}

// fail prints err and returns exit code 1.
func (v *verb) fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "edp %s: %v\n", v.name, err)
	return 1
}
