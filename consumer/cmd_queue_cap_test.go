package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/edp-pipelines/edp/consumer/taskcap"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// fakeAWS is the task metadata endpoint and an AWS endpoint that answers
// ECS ListTasks with a fixed list and refuses, and records, every other call.
type fakeAWS struct {
	taskArns []string
	mu       sync.Mutex
	calls    []string // X-Amz-Target or method and path of every API call
}

const (
	capCluster = "arn:aws:ecs:us-east-1:123456789012:cluster/edp"
	capFamily  = "EdpCronPipelineTask"
	capSelf    = "arn:aws:ecs:us-east-1:123456789012:task/edp/0000000000000000000000000000self"
)

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/v4/self/task" {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"Cluster": capCluster, "TaskARN": capSelf, "Family": capFamily, "Revision": "1",
			"DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "LaunchType": "FARGATE",
		})
		return
	}
	call := r.Header.Get("X-Amz-Target")
	if call == "" {
		call = r.Method + " " + r.URL.Path
	}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if call == "AmazonEC2ContainerServiceV20141113.ListTasks" {
		b, _ := io.ReadAll(r.Body)
		var in struct{ Cluster, Family, DesiredStatus string }
		if err := json.Unmarshal(b, &in); err != nil || in.Cluster != capCluster || in.Family != capFamily || in.DesiredStatus != "RUNNING" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"__type":"InvalidParameterException","message":"unexpected request %s"}`, b)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"taskArns": f.taskArns})
		return
	}
	// Refused without a retry: the test only needs to see the call.
	w.WriteHeader(http.StatusBadRequest)
	_, _ = io.WriteString(w, `{"__type":"AccessDeniedException","message":"the fake refuses everything but ListTasks"}`)
}

func (f *fakeAWS) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// TestDrainOverTheCapExitsWithoutReceiving runs drain with a cap of 3
// against a fake AWS. With 3 other tasks of its family (and itself) listed,
// it exits 0 after ListTasks alone — no queue or bucket call, let alone a
// receive — saying why; with 2 others it goes on to its start-up checks.
// Not parallel: the SDK reads its endpoint from the environment (t.Setenv).
func TestDrainOverTheCapExitsWithoutReceiving(t *testing.T) {
	others := func(n int) []string {
		out := []string{capSelf}
		for i := range n {
			out = append(out, fmt.Sprintf("arn:aws:ecs:us-east-1:123456789012:task/edp/%032d", i))
		}
		return out
	}
	for name, tt := range map[string]struct {
		listed    []string
		wantCode  int
		wantCalls string
		wantLog   string
	}{
		"at the cap":    {listed: others(3), wantCode: 0, wantCalls: "AmazonEC2ContainerServiceV20141113.ListTasks", wantLog: `"msg":"drain skipped: task cap reached"`},
		"below the cap": {listed: others(2), wantCode: 1, wantCalls: "AmazonEC2ContainerServiceV20141113.ListTasks,AmazonSQS.GetQueueAttributes", wantLog: `"msg":"task cap checked: draining"`},
	} {
		t.Run(name, func(t *testing.T) {
			fake := &fakeAWS{taskArns: tt.listed}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			for k, v := range map[string]string{
				"AWS_ENDPOINT_URL": srv.URL, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
				"AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "",
			} {
				t.Setenv(k, v)
			}
			env := taskEnv()
			env[names.EnvMaxTasks] = "3"
			env[taskcap.MetadataEnv] = srv.URL + "/v4/self"
			var stdout, stderr syncbuf.Buffer
			code := runQueue(context.Background(), names.ModeDrain, nil, envMap(env), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			if got := strings.Join(fake.got(), ","); got != tt.wantCalls {
				t.Errorf("AWS calls %s, want %s", got, tt.wantCalls)
			}
			if !strings.Contains(stderr.String(), tt.wantLog) {
				t.Errorf("log lacks %s:\n%s", tt.wantLog, stderr.String())
			}
			if skipped := strings.Contains(stdout.String(), `"DrainsSkipped":1`); skipped != (tt.wantCode == 0) {
				t.Errorf("metrics %q: DrainsSkipped emitted %v, want %v", stdout.String(), skipped, tt.wantCode == 0)
			}
		})
	}
}
