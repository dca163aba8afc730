package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
)

// awsConfig points SDK clients at an emulator with static credentials,
// without touching the process environment (tests run in parallel).
func awsConfig() aws.Config {
	return aws.Config{
		Region:      motoserver.Region,
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	}
}

// sqsAt and ecsAt are clients as main builds them — with the function's
// retryer — pointed at endpoint.
func sqsAt(endpoint string) *sqs.Client {
	return sqs.NewFromConfig(awsConfig(), func(o *sqs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.Retryer = newRetryer()
	})
}

func ecsAt(endpoint string) *ecs.Client {
	return ecs.NewFromConfig(awsConfig(), func(o *ecs.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.Retryer = newRetryer()
	})
}

// TestIntegration runs the handler with real SDK clients: queue attributes
// and ListTasks against moto_server, RunTask against a capture server that
// records the JSON the SDK puts on the wire (moto cannot run Fargate tasks
// by capacity provider).
func TestIntegration(t *testing.T) {
	t.Parallel()
	moto := motoserver.StartT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sq, ec := sqsAt(moto.Endpoint), ecsAt(moto.Endpoint)
	queueURL := seedQueue(ctx, t, sq, 120, 10)
	subnet, sg := defaultNetwork(ctx, t, moto.Endpoint)
	taskDef := seedCluster(ctx, t, ec, moto.Endpoint, subnet, sg)

	cfg := Config{
		QueueURL:        queueURL,
		Cluster:         "edp-it",
		TaskDefinition:  taskDef,
		Subnets:         []string{subnet},
		SecurityGroups:  []string{sg},
		MaxTasks:        20,
		MessagesPerTask: 10,
	}
	cfg.SetDefaults()

	t.Run("decision and wire request", func(t *testing.T) {
		capture := newCaptureServer(t, nil)
		h, metrics := integrationHandler(t, cfg, sq, ec, ecsAt(capture.URL))
		ev := loadEvent(t, "alarm-single-metric.json")
		if err := h.Handle(ctx, ev); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		// backlog 120 visible + 10 in flight = 130 → 13 tasks wanted; 3 of the
		// family running or pending (the stopped one and the other family
		// excluded) → 10 to start, in batches of 2 (a tenth of max 20). The
		// tasks go to the capture server, so moto never lists them: the
		// re-reads before batches 1–4 add the invocation's own tasks to moto's 3.
		m := metrics.lines(t)
		if len(m) != 1 || m[0][MetricBacklog] != 130.0 || m[0][MetricRunningTasks] != 3.0 || m[0][MetricTasksStarted] != 10.0 {
			t.Fatalf("metrics = %v, want backlog 130, running 3, started 10", m)
		}
		batchCounts := []int{2, 2, 2, 2, 2}
		bodies := capture.bodies()
		if len(bodies) != len(batchCounts) {
			t.Fatalf("RunTask calls = %d, want %d", len(bodies), len(batchCounts))
		}
		id := dispatchID(alarmNotice{AlarmARN: fixtureAlarmARN, StateChangeTime: "2026-11-23T17:01:13.471+0000"})
		for i, count := range batchCounts {
			want := map[string]any{
				"cluster":        "edp-it",
				"taskDefinition": taskDef,
				"count":          float64(count),
				"capacityProviderStrategy": []any{
					map[string]any{"capacityProvider": "FARGATE", "weight": 1.0},
				},
				"networkConfiguration": map[string]any{"awsvpcConfiguration": map[string]any{
					"subnets":        []any{subnet},
					"securityGroups": []any{sg},
					"assignPublicIp": "DISABLED",
				}},
				"overrides": map[string]any{"containerOverrides": []any{
					map[string]any{"name": names.ContainerName, "command": []any{names.ModeDrain}},
				}},
				"startedBy": names.DefaultStartedBy,
				"tags": []any{
					map[string]any{"key": TagStartedBy, "value": names.DefaultStartedBy},
					map[string]any{"key": TagDispatchID, "value": id},
				},
				"clientToken": fmt.Sprintf("edp-%s-%d", id, i),
			}
			if diff := cmp.Diff(want, bodies[i].JSON); diff != "" {
				t.Errorf("RunTask body %d (-want +got):\n%s", i, diff)
			}
			if bodies[i].Target != "AmazonEC2ContainerServiceV20141113.RunTask" {
				t.Errorf("X-Amz-Target = %q", bodies[i].Target)
			}
		}

		// The same notification again (a Lambda retry): byte-for-byte the same
		// requests, so ECS would answer from its idempotency record.
		if err := h.Handle(ctx, ev); err != nil {
			t.Fatalf("second Handle: %v", err)
		}
		again := capture.bodies()
		if len(again) != 2*len(batchCounts) {
			t.Fatalf("RunTask calls after retry = %d, want %d", len(again), 2*len(batchCounts))
		}
		for i := range batchCounts {
			if diff := cmp.Diff(bodies[i].JSON, again[len(batchCounts)+i].JSON); diff != "" {
				t.Errorf("retried body %d differs (-first +retry):\n%s", i, diff)
			}
		}
	})

	t.Run("throttled then partial failure on the wire", func(t *testing.T) {
		// 1st answer: throttled (the SDK's retryer resends it with the same
		// body; the handler calls RunTask once for the batch);
		// 2nd: one of two tasks fails for capacity; the rest succeeds.
		capture := newCaptureServer(t, []captureReply{
			{status: http.StatusBadRequest, body: `{"__type":"ThrottlingException","message":"Rate exceeded"}`},
			{fail: 1},
		})
		h, metrics := integrationHandler(t, cfg, sq, ec, ecsAt(capture.URL))
		if err := h.Handle(ctx, loadEvent(t, "alarm-metric-math.json")); err != nil {
			t.Fatalf("Handle: %v", err)
		}
		bodies := capture.bodies()
		var got []string
		for _, b := range bodies {
			got = append(got, fmt.Sprintf("%v:%v", b.JSON["count"], b.JSON["clientToken"]))
		}
		id := dispatchID(alarmNotice{AlarmARN: fixtureAlarmARN, StateChangeTime: "2026-11-23T17:06:02.118+0000"})
		want := []string{
			fmt.Sprintf("2:edp-%s-0", id), // throttled
			fmt.Sprintf("2:edp-%s-0", id), // same token again; 1 fails
		}
		for seq := 1; seq <= 4; seq++ {
			want = append(want, fmt.Sprintf("2:edp-%s-%d", id, seq))
		}
		want = append(want, fmt.Sprintf("1:edp-%s-5", id)) // the failed one, new batch
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("RunTask count:token sequence (-want +got):\n%s", diff)
		}
		m := metrics.lines(t)
		if len(m) != 1 || m[0][MetricTasksStarted] != 10.0 || m[0][MetricTasksFailed] != 0.0 {
			t.Errorf("metrics = %v, want started 10 failed 0", m)
		}
	})
}

func integrationHandler(t *testing.T, cfg Config, q QueueAPI, l TaskLister, r TaskRunner) (*Handler, *syncBuffer) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test configuration: %v", err)
	}
	metrics := &syncBuffer{}
	h, err := NewHandler(cfg, Deps{
		Queue: q, Lister: l, Runner: r,
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, nil)),
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, metrics
}

// seedQueue creates a queue with visible messages and inFlight received
// (invisible) ones, and returns its URL.
func seedQueue(ctx context.Context, t *testing.T, sq *sqs.Client, visible, inFlight int) string {
	t.Helper()
	q, err := sq.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("edp-it-queue")})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	total := visible + inFlight
	for sent := 0; sent < total; {
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i := 0; i < 10 && sent < total; i++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
				Id:          aws.String(fmt.Sprint(i)),
				MessageBody: aws.String(fmt.Sprintf(`{"bucket":"edp-it","key":"configs/run-%03d.yaml"}`, sent)),
			})
			sent++
		}
		if _, err := sq.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: entries}); err != nil {
			t.Fatalf("send messages: %v", err)
		}
	}
	for got := 0; got < inFlight; {
		out, err := sq.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:            q.QueueUrl,
			MaxNumberOfMessages: int32(min(10, inFlight-got)),
			VisibilityTimeout:   900,
		})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		got += len(out.Messages)
	}
	return aws.ToString(q.QueueUrl)
}

// seedCluster registers the consumer family and an unrelated one and starts
// tasks: three consumer tasks stay RUNNING (started by the dispatcher and by
// someone else), one is stopped, and two belong to the other family. It
// returns the consumer task definition ARN.
func seedCluster(ctx context.Context, t *testing.T, ec *ecs.Client, endpoint, subnet, sg string) string {
	t.Helper()
	if _, err := ec.CreateCluster(ctx, &ecs.CreateClusterInput{ClusterName: aws.String("edp-it")}); err != nil {
		t.Fatalf("create cluster: %v", err)
	}
	register := func(fam string) string {
		out, err := ec.RegisterTaskDefinition(ctx, &ecs.RegisterTaskDefinitionInput{
			Family:                  aws.String(fam),
			NetworkMode:             ecstypes.NetworkModeAwsvpc,
			RequiresCompatibilities: []ecstypes.Compatibility{ecstypes.CompatibilityFargate},
			Cpu:                     aws.String("256"),
			Memory:                  aws.String("512"),
			ContainerDefinitions: []ecstypes.ContainerDefinition{{
				Name:      aws.String(names.ContainerName),
				Image:     aws.String("edp-consumer:test"),
				Essential: aws.Bool(true),
				// memoryReservation, not memory or cpu: moto echoes those
				// back in tasks as numbers where the API has strings.
				MemoryReservation: aws.Int32(512),
			}},
		})
		if err != nil {
			t.Fatalf("register task definition %s: %v", fam, err)
		}
		return aws.ToString(out.TaskDefinition.TaskDefinitionArn)
	}
	consumer, other := register("edp-consumer"), register("other-app")
	// Tasks are seeded and inspected with raw JSON calls: moto echoes each
	// container's cpu as a number where the API has a string, which the Go
	// SDK refuses to decode (ListTasks, which the handler uses, is unaffected).
	// moto runs tasks only with launchType FARGATE, not by capacity provider.
	run := func(td, startedBy string, n int) []string {
		var out struct {
			Tasks []struct {
				TaskArn string `json:"taskArn"`
			} `json:"tasks"`
		}
		ecsJSON(ctx, t, endpoint, "RunTask", map[string]any{
			"cluster": "edp-it", "taskDefinition": td, "count": n,
			"launchType": "FARGATE", "startedBy": startedBy,
			"networkConfiguration": map[string]any{"awsvpcConfiguration": map[string]any{
				"subnets": []string{subnet}, "securityGroups": []string{sg},
			}},
		}, &out)
		var arns []string
		for _, task := range out.Tasks {
			arns = append(arns, task.TaskArn)
		}
		return arns
	}
	mine := run(consumer, names.DefaultStartedBy, 2)
	theirs := run(consumer, "ops-manual", 2)
	run(other, names.DefaultStartedBy, 2)
	ecsJSON(ctx, t, endpoint, "StopTask", map[string]any{"cluster": "edp-it", "task": theirs[1]}, nil)

	// The emulator agrees on what the handler will count.
	var desc struct {
		Tasks []struct {
			StartedBy     string `json:"startedBy"`
			DesiredStatus string `json:"desiredStatus"`
		} `json:"tasks"`
	}
	ecsJSON(ctx, t, endpoint, "DescribeTasks", map[string]any{
		"cluster": "edp-it", "tasks": append(append([]string{}, mine...), theirs...),
	}, &desc)
	counts := map[string]int{}
	for _, task := range desc.Tasks {
		counts[task.StartedBy+" "+task.DesiredStatus]++
	}
	if diff := cmp.Diff(map[string]int{
		names.DefaultStartedBy + " RUNNING": 2,
		"ops-manual RUNNING":                1,
		"ops-manual STOPPED":                1,
	}, counts); diff != "" {
		t.Fatalf("seeded tasks (-want +got):\n%s", diff)
	}
	return consumer
}

// defaultNetwork returns a subnet and security group of moto's default VPC,
// found with plain EC2 query calls (the module has no EC2 client).
func defaultNetwork(ctx context.Context, t *testing.T, endpoint string) (subnet, sg string) {
	t.Helper()
	var subnets struct {
		IDs []string `xml:"subnetSet>item>subnetId"`
	}
	ec2Query(ctx, t, endpoint, "DescribeSubnets", &subnets)
	var groups struct {
		IDs []string `xml:"securityGroupInfo>item>groupId"`
	}
	ec2Query(ctx, t, endpoint, "DescribeSecurityGroups", &groups)
	if len(subnets.IDs) == 0 || len(groups.IDs) == 0 {
		t.Fatalf("moto has no default subnet (%v) or security group (%v)", subnets.IDs, groups.IDs)
	}
	return subnets.IDs[0], groups.IDs[0]
}

// ecsJSON makes one ECS JSON 1.1 call; out (if not nil) receives the answer.
func ecsJSON(ctx context.Context, t *testing.T, endpoint, op string, in, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113."+op)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/"+motoserver.Region+"/ecs/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("ecs %s: %v", op, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ecs %s: status %d: %s", op, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("ecs %s: decode: %v", op, err)
		}
	}
}

func ec2Query(ctx context.Context, t *testing.T, endpoint, action string, into any) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {"2016-11-15"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// moto routes by the service named in the credential scope.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/"+motoserver.Region+"/ec2/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("ec2 %s: %v", action, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ec2 %s: status %d: %s", action, resp.StatusCode, body)
	}
	if err := xml.Unmarshal(body, into); err != nil {
		t.Fatalf("ec2 %s: decode: %v", action, err)
	}
}

// captureReply scripts one answer of the capture server: a raw error reply
// (status, body and extra headers), or success with fail tasks reported in
// failures[].
type captureReply struct {
	status int
	body   string
	header http.Header
	fail   int
}

type captured struct {
	Target string
	JSON   map[string]any
}

// captureServer stands in for the ECS endpoint: it records every request
// body the SDK sends and answers RunTask the way ECS does.
type captureServer struct {
	*httptest.Server
	mu      sync.Mutex
	got     []captured
	replies []captureReply
}

func newCaptureServer(t *testing.T, replies []captureReply) *captureServer {
	t.Helper()
	c := &captureServer{replies: replies}
	c.Server = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.Close)
	return c
}

func (c *captureServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req map[string]any
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "body is not JSON", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.got = append(c.got, captured{Target: r.Header.Get("X-Amz-Target"), JSON: req})
	var reply captureReply
	if len(c.replies) > 0 {
		reply, c.replies = c.replies[0], c.replies[1:]
	}
	n := len(c.got)
	c.mu.Unlock()

	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	for k, v := range reply.header {
		w.Header()[k] = v
	}
	if reply.status != 0 {
		w.WriteHeader(reply.status)
		io.WriteString(w, reply.body)
		return
	}
	count, _ := req["count"].(float64)
	type task struct {
		TaskArn       string `json:"taskArn"`
		LastStatus    string `json:"lastStatus"`
		DesiredStatus string `json:"desiredStatus"`
	}
	type failure struct {
		Arn    string `json:"arn,omitempty"`
		Reason string `json:"reason"`
	}
	out := struct {
		Tasks    []task    `json:"tasks"`
		Failures []failure `json:"failures"`
	}{Tasks: []task{}, Failures: []failure{}}
	for i := 0; i < int(count)-reply.fail; i++ {
		out.Tasks = append(out.Tasks, task{
			TaskArn:    fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp-it/%08d%024d", n, i),
			LastStatus: "PROVISIONING", DesiredStatus: "RUNNING",
		})
	}
	for range reply.fail {
		out.Failures = append(out.Failures, failure{Reason: capacityReason})
	}
	_ = json.NewEncoder(w).Encode(out)
}

func (c *captureServer) bodies() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), c.got...)
}
