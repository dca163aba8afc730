package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
)

// verbResult is one run of an edp verb.
type verbResult struct {
	code           int
	stdout, stderr string
}

func runVerb(t *testing.T, run func(context.Context, []string, io.Writer, io.Writer) int, args ...string) verbResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), args, &stdout, &stderr)
	return verbResult{code, stdout.String(), stderr.String()}
}

// localTarget starts a local cloud of stack from the package's assembly and
// writes its state.json into the cloud's work directory, as `edp local up`
// would, so that -local -work-dir finds it.
func localTarget(t *testing.T, stack string) (*localcloud.Cloud, string) {
	t.Helper()
	cloud := upCloud(t, assemblyForTests(t), stack)
	writeLocalState(t, cloud, cloud.WorkDir())
	return cloud, cloud.WorkDir()
}

// writeLocalState writes the state.json of a local cloud into workDir,
// naming this process as its runtime.
func writeLocalState(t *testing.T, cloud *localcloud.Cloud, workDir string) {
	t.Helper()
	st := state{PID: os.Getpid(), Stack: cloud.Stack().Name, Endpoint: cloud.Endpoint(), ECSEndpoint: cloud.ECSEndpoint(), Speedup: cloud.Speedup(), Outputs: cloud.Stack().Outputs}
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(statePath(workDir), raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

var runIDLine = regexp.MustCompile(`(?m)^run ([0-9a-f]{32})$`)

// The operator verbs against the local cloud, end to end: submit refuses a
// bad config before it reaches S3 and uploads a good one, printing the run
// id it gets; watch follows it to its end; status lists it and shows it in
// detail with its pointer; logs prints its lines; dlq lists a poison
// message and redrives it; submit -wait follows a second run to its end.
func TestOperatorVerbsLocal(t *testing.T) {
	t.Parallel()
	cloud, workDir := localTarget(t, names.StackOneOff)
	local := []string{"-local", "-work-dir", workDir}
	with := func(args ...string) []string { return append(append([]string{}, local...), args...) }
	submit, watch, status, logs, dlqVerb := cmdSubmit, cmdWatch, cmdStatus, cmdLogs, cmdDLQ
	bucket := cloud.Stack().Outputs[names.OutputBucket]

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("model:\n  type: SupportVectorMachine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runVerb(t, submit, with(bad)...)
	if r.code != 1 || !strings.Contains(r.stderr, "refused by the stack's checks") || !strings.Contains(r.stderr, "SupportVectorMachine") {
		t.Errorf("submit of a bad config: %+v", r)
	}
	if list, err := cloud.Clients().S3.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(names.ConfigPrefix)}); err != nil || len(list.Contents) != 0 {
		t.Errorf("after a refused submit, configs/ holds %d objects (%v), want none", len(list.Contents), err)
	}

	// A poison message for dlq: the task the submit starts dead-letters it.
	if _, err := cloud.Clients().SQS.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(cloud.Stack().Outputs[names.OutputQueueURL]), MessageBody: aws.String("not an event")}); err != nil {
		t.Fatal(err)
	}
	r = runVerb(t, submit, with(exampleConfig)...)
	m := runIDLine.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || !strings.Contains(r.stdout, "edp watch -local") {
		t.Fatalf("submit: %+v", r)
	}
	runID := m[1]
	r = runVerb(t, watch, with("-timeout", "2m", runID)...)
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("watch: %+v", r)
	}
	r = runVerb(t, status, with()...)
	if r.code != 0 || !strings.Contains(r.stdout, runID[:12]) || !strings.Contains(r.stdout, "succeeded") {
		t.Errorf("status: %+v", r)
	}
	r = runVerb(t, status, with(runID[:8])...)
	if r.code != 0 || !strings.Contains(r.stdout, "names this run") || !strings.Contains(r.stdout, "artifact s3://"+bucket+"/artifacts/") {
		t.Errorf("status of one run: %+v", r)
	}
	r = runVerb(t, status, with("-json", "-failed")...)
	if r.code != 0 || strings.Contains(r.stdout, runID) {
		t.Errorf("status -failed lists the succeeded run: %+v", r)
	}
	if r := runVerb(t, status, with(strings.Repeat("0", 32))...); r.code != 1 || !strings.Contains(r.stderr, "run not found") {
		t.Errorf("unknown run: %+v", r)
	}
	if r := runVerb(t, status, with("-stack", "cron")...); r.code != 1 || !strings.Contains(r.stderr, "runs EdpOneOff, not EdpCron") {
		t.Errorf("another stack than the local cloud's: %+v", r)
	}
	r = runVerb(t, logs, with(runID)...)
	if r.code != 0 || !strings.Contains(r.stdout, runID) || strings.Count(r.stdout, "\n") < 2 {
		t.Errorf("logs: %+v", r)
	}

	waitFor := func(what string, ok func() bool) {
		deadline := time.Now().Add(time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 1m", what)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	waitFor("the poison message in the DLQ", func() bool {
		r = runVerb(t, dlqVerb, append([]string{"list"}, with()...)...)
		return r.code == 0 && strings.Contains(r.stdout, "not an event")
	})
	if !strings.Contains(r.stdout, "1 messages in the dead-letter queue") {
		t.Errorf("dlq list: %+v", r)
	}
	if r := runVerb(t, dlqVerb, append([]string{"list", "-queue", "undelivered"}, with()...)...); r.code != 0 || !strings.Contains(r.stdout, "0 messages in the dead-letter queue") {
		t.Errorf("dlq list -queue undelivered: %+v", r)
	}
	r = runVerb(t, dlqVerb, append([]string{"redrive"}, with()...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "redrove 1 of 1") {
		t.Errorf("dlq redrive: %+v", r)
	}

	// Flags may follow the config, as in `edp submit CONFIG --wait`.
	r = runVerb(t, submit, with("-key", "configs/again.yaml", exampleConfig, "--wait", "-timeout", "2m")...)
	if r.code != 0 || !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "s3://"+bucket+"/configs/again.yaml") {
		t.Errorf("submit -wait: %+v", r)
	}
}

// The verbs' errors each say what is wrong: no local cloud, another stack
// than the local cloud's, an unknown run, no AWS credentials, a stack that
// is not deployed, a stack without edp's outputs.
func TestOperatorVerbErrors(t *testing.T) {
	status := cmdStatus
	// Started first: moto_server inherits the environment set below.
	moto := motoserver.StartT(t)
	empty := t.TempDir()
	if r := runVerb(t, status, "-local", "-work-dir", empty); r.code != 1 || !strings.Contains(r.stderr, "no local cloud is running in "+empty) || !strings.Contains(r.stderr, "make local-up") {
		t.Errorf("no local cloud: %+v", r)
	}

	// AWS, without credentials (nothing from this machine's environment).
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(empty, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(empty, "none"))
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "")
	if r := runVerb(t, status, "-region", "us-east-1"); r.code != 1 || !strings.Contains(r.stderr, "no AWS credentials") {
		t.Errorf("no credentials: %+v", r)
	}

	// AWS through moto: EdpCron is not deployed; EdpOneOff is, but without
	// edp's outputs.
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_ENDPOINT_URL", moto.Endpoint)
	c, err := localcloud.NewClients(t.Context(), moto.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := `{"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "not-edp"}}}}`
	if _, err := c.CFN.CreateStack(t.Context(), &cloudformation.CreateStackInput{StackName: aws.String(names.StackOneOff), TemplateBody: aws.String(tmpl)}); err != nil {
		t.Fatal(err)
	}
	if r := runVerb(t, status, "-region", "us-east-1", "-stack", "cron"); r.code != 1 || !strings.Contains(r.stderr, "no such stack: EdpCron") {
		t.Errorf("unknown stack: %+v", r)
	}
	if r := runVerb(t, status, "-region", "us-east-1"); r.code != 1 || !strings.Contains(r.stderr, "not an edp stack: stack EdpOneOff has no BucketName, QueueUrl, DeadLetterQueueUrl output") {
		t.Errorf("stack without edp outputs (found as the only one): %+v", r)
	}
	if r := runVerb(t, status, "-region", "us-east-1", "-stack", "nonsense"); r.code != 1 || !strings.Contains(r.stderr, `unknown architecture "nonsense"`) {
		t.Errorf("bad stack name: %+v", r)
	}
}
