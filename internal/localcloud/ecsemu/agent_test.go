package ecsemu

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
)

// agentCall makes a raw request to the agent endpoint and decodes the
// answer.
func agentCall(t *testing.T, method, url, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: answer %q is not JSON: %v", method, url, b, err)
	}
	return resp.StatusCode, out
}

// The consumer's own ecsprotect client, given the ECS_AGENT_URI the
// emulator put in its task's environment, sets protection over a real
// socket; GET reads it back in the agent's shape. Standalone tasks are
// refused with TASK_NOT_VALID, as ECS refuses them.
func TestAgentTaskProtection(t *testing.T) {
	t.Parallel()
	l := &fakeLauncher{}
	e := newEmulator(t, l, nil)
	_, client := serve(t, e)
	ctx := context.Background()

	// A standalone task (the Lambda's): refused.
	run, err := client.RunTask(ctx, dispatchRunTask("edp-agent-0", 1))
	if err != nil {
		t.Fatal(err)
	}
	standalone := l.process(t, arns(run.Tasks)[0])
	err = (&ecsprotect.Client{AgentURI: standalone.spec.Env[AgentURIEnv]}).Set(ctx, true, time.Hour)
	var refused *ecsprotect.RefusedError
	if !errors.As(err, &refused) || refused.Reason != "TASK_NOT_VALID" {
		t.Fatalf("protecting a standalone task: got %v, want a refusal with TASK_NOT_VALID", err)
	}

	// A service task: protected, read back, dropped.
	if err := e.CreateService("svc", consumerDef.Arn); err != nil {
		t.Fatal(err)
	}
	if err := e.SetDesiredCount("svc", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the service task", func() bool { return e.RunningCount("svc") == 1 })
	svcTask := l.launched()[1]
	agent := svcTask.spec.Env[AgentURIEnv]
	consumer := &ecsprotect.Client{AgentURI: agent}
	before := time.Now()
	if err := consumer.Set(ctx, true, 30*time.Minute); err != nil { // what the consumer does when it takes a job
		t.Fatal(err)
	}

	status, body := agentCall(t, http.MethodGet, agent+"/task-protection/v1/state", "")
	prot, _ := body["protection"].(map[string]any)
	if status != http.StatusOK || prot == nil || prot["ProtectionEnabled"] != true || prot["TaskArn"] != svcTask.spec.TaskArn {
		t.Fatalf("GET after enabling: %d %v", status, body)
	}
	exp, err := time.Parse(time.RFC3339, prot["ExpirationDate"].(string))
	if err != nil {
		t.Fatalf("ExpirationDate: %v", err)
	}
	if lo, hi := before.Add(30*time.Minute-time.Second), time.Now().Add(30*time.Minute); exp.Before(lo) || exp.After(hi) {
		t.Errorf("ExpirationDate %v, want 30 minutes from the PUT", exp)
	}
	if info := e.Tasks()[1]; !info.Protected {
		t.Error("Tasks() does not show the protection")
	}

	if err := consumer.Set(ctx, false, 0); err != nil { // and when it is idle again
		t.Fatal(err)
	}
	status, body = agentCall(t, http.MethodGet, agent+"/task-protection/v1/state", "")
	want := map[string]any{"protection": map[string]any{
		"ExpirationDate": nil, "ProtectionEnabled": false, "TaskArn": svcTask.spec.TaskArn,
	}}
	if diff := cmp.Diff(want, body); status != http.StatusOK || diff != "" {
		t.Errorf("GET after dropping: status %d (-want +got):\n%s", status, diff)
	}

	// Requests the agent refuses.
	for _, tt := range []struct {
		name, method, url, body string
		status                  int
		code                    string
	}{
		{"no ProtectionEnabled", http.MethodPut, agent + "/task-protection/v1/state", `{"ExpiresInMinutes":5}`, 400, "InvalidParameterException"},
		{"not JSON", http.MethodPut, agent + "/task-protection/v1/state", `yes please`, 400, "InvalidParameterException"},
		{"over 48 hours", http.MethodPut, agent + "/task-protection/v1/state", `{"ProtectionEnabled":true,"ExpiresInMinutes":2881}`, 400, "InvalidParameterException"},
		{"unknown task", http.MethodGet, strings.TrimSuffix(agent, "/"+lastSegment(agent)) + "/0000/task-protection/v1/state", "", 404, "ResourceNotFoundException"},
		{"POST", http.MethodPost, agent + "/task-protection/v1/state", `{}`, 405, "InvalidRequest"},
	} {
		status, body := agentCall(t, tt.method, tt.url, tt.body)
		errBody, _ := body["error"].(map[string]any)
		if status != tt.status || errBody == nil || errBody["Code"] != tt.code {
			t.Errorf("%s: %d %v; want %d with error code %s", tt.name, status, body, tt.status, tt.code)
		}
	}
}

func lastSegment(s string) string { return s[strings.LastIndex(s, "/")+1:] }
