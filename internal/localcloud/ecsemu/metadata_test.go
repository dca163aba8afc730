package ecsemu

import (
	"context"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/taskcap"
)

// The consumer's own task-cap code (consumer/taskcap), given the
// environment the emulator started a task with, reads the task's metadata
// over a real socket and counts the other tasks of its family through the
// ECS endpoint APIEndpointEnv named: tasks of another family and stopped
// tasks do not count.
func TestTaskMetadataServesTheCapCheck(t *testing.T) {
	t.Parallel()
	l := &fakeLauncher{}
	e := newEmulator(t, l, func(c *Config) {
		c.ExtraEnv = map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
		c.APIEndpointEnv = []string{"AWS_ENDPOINT_URL_ECS"}
	})
	endpoint, client := serve(t, e)
	ctx := context.Background()

	run, err := client.RunTask(ctx, dispatchRunTask("edp-meta-0", 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RunTask(ctx, RunTaskInput{TaskDefinition: otherDef.Arn}); err != nil {
		t.Fatal(err)
	}
	tasks := arns(run.Tasks)
	self := l.process(t, tasks[0])
	env := self.spec.Env
	id := taskArnPattern.FindStringSubmatch(tasks[0])[1]
	if got, want := env[MetadataURIEnv], endpoint+"/metadata/v4/"+id; got != want {
		t.Errorf("%s = %q, want %q", MetadataURIEnv, got, want)
	}
	if env["AWS_ENDPOINT_URL_ECS"] != endpoint || env["AWS_ENDPOINT_URL"] != "http://127.0.0.1:5000" {
		t.Errorf("endpoints: ECS %q, others %q; want the emulator for ECS only", env["AWS_ENDPOINT_URL_ECS"], env["AWS_ENDPOINT_URL"])
	}

	me, err := taskcap.ReadTask(ctx, nil, env[MetadataURIEnv])
	if err != nil {
		t.Fatal(err)
	}
	want := taskcap.Task{Cluster: "arn:aws:ecs:us-east-1:123456789012:cluster/edp", TaskARN: tasks[0], Family: "edp-consumer"}
	if diff := cmp.Diff(want, me); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	lister := sdkClient(env["AWS_ENDPOINT_URL_ECS"], nil)
	if n, err := taskcap.CountOthers(ctx, lister, me); err != nil || n != 2 {
		t.Errorf("others of the family: %d (%v), want 2", n, err)
	}
	if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("edp"), Task: aws.String(tasks[1])}); err != nil {
		t.Fatal(err)
	}
	if n, err := taskcap.CountOthers(ctx, lister, me); err != nil || n != 1 {
		t.Errorf("others after one was stopped: %d (%v), want 1", n, err)
	}

	// The rest of the answer, in the agent's shape.
	code, body := agentCall(t, http.MethodGet, env[MetadataURIEnv]+"/task", "")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	c := body["Containers"].([]any)[0].(map[string]any)
	got := map[string]any{
		"Revision": body["Revision"], "DesiredStatus": body["DesiredStatus"], "KnownStatus": body["KnownStatus"],
		"LaunchType": body["LaunchType"], "Container": c["Name"], "Type": c["Type"],
		"FamilyLabel": c["Labels"].(map[string]any)["com.amazonaws.ecs.task-definition-family"],
	}
	wantShape := map[string]any{
		"Revision": "3", "DesiredStatus": "RUNNING", "KnownStatus": "RUNNING", "LaunchType": "FARGATE",
		"Container": "consumer", "Type": "NORMAL", "FamilyLabel": "edp-consumer",
	}
	if diff := cmp.Diff(wantShape, got); diff != "" {
		t.Errorf("metadata answer (-want +got):\n%s", diff)
	}
	resp, err := http.Get(endpoint + "/metadata/v4/0123/task")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("metadata of an unknown task: status %d, want 404", resp.StatusCode)
	}
}
