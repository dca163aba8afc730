package localcloud

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
)

// assemblyDir is one synthesis of the stacks shared by the package's tests.
var assemblyDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edp-localcloud-")
	if err != nil {
		panic(err)
	}
	out, err := Synthesize(context.Background(), SynthOptions{RepoRoot: filepath.Join("..", ".."), OutDir: filepath.Join(dir, "cdk.out")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "synthesize:", err)
		os.Exit(1)
	}
	assemblyDir = out
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestPrepareTemplateOnlyDropsKMSKeyTags(t *testing.T) {
	raw := []byte(`{"Resources":{"K":{"Type":"AWS::KMS::Key","Properties":{"Tags":[{"Key":"a","Value":"b"}],"EnableKeyRotation":true}},
		"Q":{"Type":"AWS::SQS::Queue","Properties":{"Tags":[{"Key":"a","Value":"b"}]}}}}`)
	tpl, changes, err := PrepareTemplate(raw)
	if err != nil {
		t.Fatal(err)
	}
	res := tpl["Resources"].(map[string]any)
	if _, ok := res["K"].(map[string]any)["Properties"].(map[string]any)["Tags"]; ok {
		t.Error("KMS key keeps its Tags")
	}
	if _, ok := res["Q"].(map[string]any)["Properties"].(map[string]any)["Tags"]; !ok {
		t.Error("queue lost its Tags: only KMS keys are changed")
	}
	if len(changes) != 1 || !strings.Contains(changes[0], "AWS::KMS::Key K") {
		t.Errorf("changes = %q", changes)
	}
}

func TestRewriteURL(t *testing.T) {
	got := RewriteURL("https://sqs.us-east-1.amazonaws.com/123456789012/q-1", "http://127.0.0.1:4566")
	if got != "http://127.0.0.1:4566/123456789012/q-1" {
		t.Errorf("got %s", got)
	}
}

// Each stack deploys through moto's CloudFormation as synthesized (with the
// documented transforms), and an upload under configs/ reaches the stack's
// own queue through the stack's own rule; other uploads do not.
func TestEveryStackDeploysAndRoutesUploads(t *testing.T) {
	srv := motoserver.StartT(t)
	ctx := context.Background()
	for _, stack := range []string{names.StackOneOff, names.StackAlarmService, names.StackAlarmDispatch, names.StackCron} {
		t.Run(stack, func(t *testing.T) {
			if err := srv.Reset(ctx); err != nil {
				t.Fatal(err)
			}
			c, err := NewClients(ctx, srv.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			st, err := Deploy(ctx, c, assemblyDir, stack, DeployOptions{Endpoint: srv.Endpoint})
			if err != nil {
				t.Fatal(err)
			}
			bucket, queue := st.Outputs[names.OutputBucket], st.Outputs[names.OutputQueueURL]
			if bucket == "" || !strings.HasPrefix(queue, srv.Endpoint) {
				t.Fatalf("outputs %v: want a bucket and a queue URL on the endpoint", st.Outputs)
			}
			// The dashboard was created: its Ref (the name) reached the output.
			if url, want := st.Outputs[names.OutputDashboard], "?region="+Region+"#dashboards:name="+stack; !strings.HasSuffix(url, want) {
				t.Errorf("output %s = %q, want a console URL ending in %q", names.OutputDashboard, url, want)
			}
			for _, key := range []string{"configs/a b+c.yaml", "artifacts/x.yaml", "configs/readme.txt"} {
				if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x: 1")}); err != nil {
					t.Fatal(err)
				}
			}
			var bodies []string
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && len(bodies) < 1 {
				out, err := c.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range out.Messages {
					bodies = append(bodies, aws.ToString(m.Body))
				}
			}
			if len(bodies) != 1 || !strings.Contains(bodies[0], `"key": "configs/a b+c.yaml"`) && !strings.Contains(bodies[0], `"key":"configs/a b+c.yaml"`) {
				t.Errorf("queue got %d messages %q, want exactly the configs/ .yaml upload", len(bodies), bodies)
			}
		})
	}
}
