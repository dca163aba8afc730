package ecsemu

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"
)

var taskArnPattern = regexp.MustCompile(`^arn:aws:ecs:us-east-1:123456789012:task/edp/([0-9a-f]{32})$`)

// The Lambda's RunTask, through the real SDK client and a real socket,
// starts one process per task with the task definition's environment, the
// overrides, the local cloud's extras and the agent URI of that task.
func TestRunTaskStartsProcessesWithMergedEnvironment(t *testing.T) {
	t.Parallel()
	l := &fakeLauncher{}
	e := newEmulator(t, l, func(c *Config) {
		c.ExtraEnv = map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "EDP_BUCKET": "local-bucket"}
	})
	endpoint, client := serve(t, e)

	in := dispatchRunTask("edp-abc-0", 2)
	in.Overrides.ContainerOverrides[0].Environment = []ecstypes.KeyValuePair{
		{Name: aws.String("EDP_TRIGGER_KEY"), Value: aws.String("configs/a b+c.yaml")},
	}
	out, err := client.RunTask(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 2 || len(out.Failures) != 0 {
		t.Fatalf("RunTask: %d tasks, %d failures; want 2, 0", len(out.Tasks), len(out.Failures))
	}
	for _, task := range out.Tasks {
		arn := aws.ToString(task.TaskArn)
		m := taskArnPattern.FindStringSubmatch(arn)
		if m == nil {
			t.Fatalf("task ARN %q does not look like an ECS task ARN of cluster edp", arn)
		}
		got := struct{ Status, Desired, Group, StartedBy, Def, Cluster, Container string }{
			aws.ToString(task.LastStatus), aws.ToString(task.DesiredStatus), aws.ToString(task.Group),
			aws.ToString(task.StartedBy), aws.ToString(task.TaskDefinitionArn), aws.ToString(task.ClusterArn),
			aws.ToString(task.Containers[0].Name),
		}
		want := struct{ Status, Desired, Group, StartedBy, Def, Cluster, Container string }{
			"RUNNING", "RUNNING", "family:edp-consumer", "edp-alarm-dispatch", consumerDef.Arn,
			"arn:aws:ecs:us-east-1:123456789012:cluster/edp", "consumer",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("task %s (-want +got):\n%s", arn, diff)
		}

		p := l.process(t, arn)
		if diff := cmp.Diff([]string{"drain"}, p.spec.Command); diff != "" {
			t.Errorf("command (-want +got):\n%s", diff)
		}
		wantEnv := map[string]string{
			"AWS_REGION":         "us-east-1",
			"AWS_DEFAULT_REGION": "us-east-1",
			"EDP_QUEUE_URL":      "http://sqs.local/123456789012/edp-queue",
			"EDP_BUCKET":         "local-bucket", // ExtraEnv over the task definition
			"EDP_TRIGGER_KEY":    "configs/a b+c.yaml",
			"AWS_ENDPOINT_URL":   "http://127.0.0.1:5000",
			"ECS_AGENT_URI":      endpoint + "/agent/" + m[1],
			MetadataURIEnv:       endpoint + "/metadata/v4/" + m[1],
		}
		if diff := cmp.Diff(wantEnv, p.spec.Env); diff != "" {
			t.Errorf("environment of %s (-want +got):\n%s", arn, diff)
		}
	}
	infos := e.Tasks()
	if len(infos) != 2 {
		t.Fatalf("Tasks() = %d tasks, want 2", len(infos))
	}
	if diff := cmp.Diff(map[string]string{"EDP_TRIGGER_KEY": "configs/a b+c.yaml"}, infos[0].OverrideEnv); diff != "" {
		t.Errorf("TaskInfo.OverrideEnv (-want +got):\n%s", diff)
	}
}

// A client token makes RunTask idempotent as ECS does: the same request
// returns the same tasks without starting more, another request with the
// token is a ConflictException naming the tasks.
func TestRunTaskClientToken(t *testing.T) {
	t.Parallel()
	l := &fakeLauncher{}
	e := newEmulator(t, l, nil)
	_, client := serve(t, e)
	ctx := context.Background()

	first, err := client.RunTask(ctx, dispatchRunTask("edp-abc-0", 2))
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.RunTask(ctx, dispatchRunTask("edp-abc-0", 2))
	if err != nil {
		t.Fatalf("repeat with the same token: %v", err)
	}
	if diff := cmp.Diff(arns(first.Tasks), arns(again.Tasks)); diff != "" {
		t.Errorf("repeat returned other tasks (-first +repeat):\n%s", diff)
	}
	if n := len(l.launched()); n != 2 {
		t.Errorf("processes launched = %d, want 2", n)
	}

	_, err = client.RunTask(ctx, dispatchRunTask("edp-abc-0", 1))
	var conflict *ecstypes.ConflictException
	if !errors.As(err, &conflict) {
		t.Fatalf("same token, other count: got %v, want ConflictException", err)
	}
	if diff := cmp.Diff(arns(first.Tasks), conflict.ResourceIds); diff != "" {
		t.Errorf("ConflictException.ResourceIds (-want +got):\n%s", diff)
	}

	next, err := client.RunTask(ctx, dispatchRunTask("edp-abc-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Tasks) != 1 || len(l.launched()) != 3 {
		t.Errorf("new token: %d tasks, %d launched in all; want 1, 3", len(next.Tasks), len(l.launched()))
	}
}

// RunTask refuses what ECS refuses for edp's Fargate task definition, and
// starts nothing then.
func TestRunTaskRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(in *ecs.RunTaskInput)
		code   string
	}{
		{"count 0", func(in *ecs.RunTaskInput) { in.Count = aws.Int32(0) }, "InvalidParameterException"},
		{"count 11", func(in *ecs.RunTaskInput) { in.Count = aws.Int32(11) }, "InvalidParameterException"},
		{"unknown task definition", func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("nope:1") }, "ClientException"},
		{"override of another container", func(in *ecs.RunTaskInput) {
			in.Overrides.ContainerOverrides[0].Name = aws.String("sidecar")
		}, "InvalidParameterException"},
		{"launch type and capacity providers", func(in *ecs.RunTaskInput) { in.LaunchType = ecstypes.LaunchTypeFargate }, "InvalidParameterException"},
		{"capacity provider not in the cluster", func(in *ecs.RunTaskInput) {
			in.CapacityProviderStrategy[0].CapacityProvider = aws.String("my-asg")
		}, "InvalidParameterException"},
		{"no network configuration", func(in *ecs.RunTaskInput) { in.NetworkConfiguration = nil }, "InvalidParameterException"},
		{"no subnets", func(in *ecs.RunTaskInput) { in.NetworkConfiguration.AwsvpcConfiguration.Subnets = []string{} }, "InvalidParameterException"},
		{"startedBy with a space", func(in *ecs.RunTaskInput) { in.StartedBy = aws.String("alarm dispatch") }, "InvalidParameterException"},
		{"client token too long", func(in *ecs.RunTaskInput) { in.ClientToken = aws.String(strings.Repeat("t", 65)) }, "InvalidParameterException"},
		{"another cluster", func(in *ecs.RunTaskInput) { in.Cluster = aws.String("prod") }, "ClusterNotFoundException"},
	}
	l := &fakeLauncher{}
	e := newEmulator(t, l, nil)
	_, client := serve(t, e)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := dispatchRunTask("edp-"+strings.ReplaceAll(tt.name, " ", "-"), 1)
			tt.modify(in)
			_, err := client.RunTask(context.Background(), in)
			if got := apiCode(err); got != tt.code {
				t.Errorf("error = %v, want %s", err, tt.code)
			}
		})
	}
	if n := len(l.launched()); n != 0 {
		t.Errorf("%d processes launched by refused calls", n)
	}
}

// ListTasks filters as the Lambda relies on (family, desired status,
// paging) and enforces ECS's rule that startedBy is the only filter.
// DescribeTasks reports a task that exited on its own with its exit code.
func TestListAndDescribeTasks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		client, _ := serveInMemory(t, e)
		defer e.Close(context.Background())
		ctx := context.Background()

		run, err := client.RunTask(ctx, dispatchRunTask("edp-list-0", 3))
		if err != nil {
			t.Fatal(err)
		}
		dispatched := arns(run.Tasks)
		other := dispatchRunTask("edp-list-1", 1)
		other.TaskDefinition = aws.String("other") // by family
		other.StartedBy = aws.String("someone-else")
		other.Overrides = nil
		otherRun, err := client.RunTask(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		l.process(t, dispatched[1]).exit(3)
		synctest.Wait()

		list := func(in *ecs.ListTasksInput) []string {
			t.Helper()
			in.Cluster = aws.String("edp")
			var got []string
			for p := ecs.NewListTasksPaginator(client, in); p.HasMorePages(); {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("ListTasks: %v", err)
				}
				got = append(got, page.TaskArns...)
			}
			return got
		}
		running := []string{dispatched[0], dispatched[2]}
		if diff := cmp.Diff(running, list(&ecs.ListTasksInput{
			Family: aws.String("edp-consumer"), DesiredStatus: ecstypes.DesiredStatusRunning, MaxResults: aws.Int32(100),
		})); diff != "" {
			t.Errorf("family, RUNNING (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(running, list(&ecs.ListTasksInput{
			Family: aws.String("edp-consumer"), MaxResults: aws.Int32(1),
		})); diff != "" {
			t.Errorf("family, one per page (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{dispatched[1]}, list(&ecs.ListTasksInput{DesiredStatus: ecstypes.DesiredStatusStopped})); diff != "" {
			t.Errorf("STOPPED (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(running, list(&ecs.ListTasksInput{StartedBy: aws.String("edp-alarm-dispatch")})); diff != "" {
			t.Errorf("startedBy (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(arns(otherRun.Tasks), list(&ecs.ListTasksInput{Family: aws.String("other")})); diff != "" {
			t.Errorf("other family (-want +got):\n%s", diff)
		}
		_, err = client.ListTasks(ctx, &ecs.ListTasksInput{
			Cluster: aws.String("edp"), StartedBy: aws.String("edp-alarm-dispatch"), Family: aws.String("edp-consumer"),
		})
		if apiCode(err) != "InvalidParameterException" {
			t.Errorf("startedBy with family: got %v, want InvalidParameterException", err)
		}

		desc, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{
			Cluster: aws.String("edp"),
			Tasks:   []string{dispatched[1], "0123456789abcdef0123456789abcdef"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(desc.Tasks) != 1 || len(desc.Failures) != 1 || aws.ToString(desc.Failures[0].Reason) != "MISSING" {
			t.Fatalf("DescribeTasks: %d tasks, failures %+v; want 1 task and one MISSING", len(desc.Tasks), desc.Failures)
		}
		got := desc.Tasks[0]
		if aws.ToString(got.LastStatus) != "STOPPED" || got.StopCode != ecstypes.TaskStopCodeEssentialContainerExited ||
			aws.ToInt32(got.Containers[0].ExitCode) != 3 || got.StoppedAt == nil {
			t.Errorf("exited task: status %s, stop code %s, exit code %d, stopped at %v; want STOPPED, EssentialContainerExited, 3, set",
				aws.ToString(got.LastStatus), got.StopCode, aws.ToInt32(got.Containers[0].ExitCode), got.StoppedAt)
		}
	})
}

// StopTask sends SIGTERM and, if the process is still there when the task
// definition's stop timeout has passed, SIGKILL — not a moment earlier.
func TestStopTaskTermThenKill(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		client, _ := serveInMemory(t, e)
		defer e.Close(context.Background())
		ctx := context.Background()

		l.set(true, nil) // this one ignores SIGTERM
		stubborn, err := client.RunTask(ctx, dispatchRunTask("edp-stop-0", 1))
		if err != nil {
			t.Fatal(err)
		}
		l.set(false, nil)
		polite, err := client.RunTask(ctx, dispatchRunTask("edp-stop-1", 1))
		if err != nil {
			t.Fatal(err)
		}
		stubbornArn, politeArn := arns(stubborn.Tasks)[0], arns(polite.Tasks)[0]

		out, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("edp"), Task: aws.String(stubbornArn), Reason: aws.String("operator said so")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Task.DesiredStatus) != "STOPPED" || aws.ToString(out.Task.LastStatus) != "RUNNING" {
			t.Errorf("StopTask answer: desired %s, last %s; want STOPPED, RUNNING",
				aws.ToString(out.Task.DesiredStatus), aws.ToString(out.Task.LastStatus))
		}
		p := l.process(t, stubbornArn)
		synctest.Wait()
		if sigs, killed := p.state(); len(sigs) != 1 || sigs[0] != sigterm || killed {
			t.Fatalf("after StopTask: signals %v, killed %v; want [SIGTERM], not killed", sigs, killed)
		}
		time.Sleep(consumerDef.StopTimeout - time.Millisecond)
		synctest.Wait()
		if _, killed := p.state(); killed {
			t.Fatal("killed before the stop timeout")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if _, killed := p.state(); !killed {
			t.Fatal("not killed at the stop timeout")
		}

		// The polite one exits on SIGTERM: no SIGKILL, no waiting.
		if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("edp"), Task: aws.String(politeArn)}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, killed := l.process(t, politeArn).state(); killed {
			t.Error("a task that exits on SIGTERM was killed")
		}

		desc, err := client.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("edp"), Tasks: []string{stubbornArn, politeArn}})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			Status, Reason string
			Code           ecstypes.TaskStopCode
			Exit           int32
		}
		var got []result
		for _, d := range desc.Tasks {
			got = append(got, result{aws.ToString(d.LastStatus), aws.ToString(d.StoppedReason), d.StopCode, aws.ToInt32(d.Containers[0].ExitCode)})
		}
		want := []result{
			{"STOPPED", "operator said so", ecstypes.TaskStopCodeUserInitiated, 137},
			{"STOPPED", "Task stopped by user", ecstypes.TaskStopCodeUserInitiated, 0},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("stopped tasks (-want +got):\n%s", diff)
		}

		if _, err := client.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String("edp"), Task: aws.String("ffffffffffffffffffffffffffffffff")}); apiCode(err) != "InvalidParameterException" {
			t.Errorf("StopTask of an unknown task: got %v, want InvalidParameterException", err)
		}
	})
}

// The Go RunTask used for the EventBridge and Scheduler targets takes the
// API's path: overrides, default group, client token.
func TestGoRunTask(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		serveInMemory(t, e)
		defer e.Close(context.Background())
		ctx := context.Background()

		in := RunTaskInput{
			TaskDefinition: "edp-consumer:3",
			StartedBy:      "events-rule",
			Command:        []string{"drain"},
			Overrides:      map[string]string{"EDP_TRIGGER_BUCKET": "b", "EDP_TRIGGER_KEY": "configs/x.yaml"},
			ClientToken:    "event-1",
		}
		got, err := e.RunTask(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		again, err := e.RunTask(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !cmp.Equal(got, again) || len(l.launched()) != 1 {
			t.Fatalf("RunTask twice with one token: %v then %v, %d launched; want one task, once", got, again, len(l.launched()))
		}
		p := l.process(t, got[0])
		if diff := cmp.Diff([]string{"drain"}, p.spec.Command); diff != "" {
			t.Errorf("command (-want +got):\n%s", diff)
		}
		if p.spec.Env["EDP_TRIGGER_KEY"] != "configs/x.yaml" || p.spec.Env["EDP_QUEUE_URL"] == "" {
			t.Errorf("environment %v lacks the override or the task definition's variables", p.spec.Env)
		}
		info := e.Tasks()[0]
		if info.Group != "family:edp-consumer" || info.StartedBy != "events-rule" || info.LastStatus != StatusRunning {
			t.Errorf("task: group %q, startedBy %q, status %s", info.Group, info.StartedBy, info.LastStatus)
		}
		if _, err := e.RunTask(ctx, RunTaskInput{TaskDefinition: "missing"}); apiCode(err) != "ClientException" {
			t.Errorf("unknown task definition: got %v, want ClientException", err)
		}
	})
}

// A process that cannot be started leaves a STOPPED task with
// TaskFailedToStart, as ECS reports a container that cannot start.
func TestLaunchFailure(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		l.set(false, errors.New("exec: no such file"))
		e := newEmulator(t, l, nil)
		client, _ := serveInMemory(t, e)
		defer e.Close(context.Background())

		out, err := client.RunTask(context.Background(), dispatchRunTask("edp-fail-0", 1))
		if err != nil {
			t.Fatal(err)
		}
		task := out.Tasks[0]
		if aws.ToString(task.LastStatus) != "STOPPED" || task.StopCode != ecstypes.TaskStopCodeTaskFailedToStart ||
			!strings.Contains(aws.ToString(task.StoppedReason), "no such file") {
			t.Errorf("task: %s, %s, %q; want STOPPED, TaskFailedToStart, the launch error",
				aws.ToString(task.LastStatus), task.StopCode, aws.ToString(task.StoppedReason))
		}
	})
}

// Calls the emulator does not implement fail loudly, as AWS answers an
// unknown operation.
func TestUnknownOperation(t *testing.T) {
	t.Parallel()
	e := newEmulator(t, &fakeLauncher{}, nil)
	_, client := serve(t, e)
	_, err := client.CreateCluster(context.Background(), &ecs.CreateClusterInput{ClusterName: aws.String("x")})
	if apiCode(err) != "UnknownOperationException" {
		t.Errorf("CreateCluster: got %v, want UnknownOperationException", err)
	}
	if _, err := client.UpdateService(context.Background(), &ecs.UpdateServiceInput{Service: aws.String("svc")}); apiCode(err) != "UnknownOperationException" {
		t.Errorf("UpdateService: got %v, want UnknownOperationException (the local Application Auto Scaling sets desired counts in process)", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Cluster: "arn:aws:ecs:us-east-1:1:cluster/x", ExtraEnv: map[string]string{AgentURIEnv: "x"},
		APIEndpointEnv: []string{MetadataURIEnv}})
	if err == nil {
		t.Fatal("New accepted an empty config")
	}
	for _, want := range []string{"TaskDefinitions", "Launcher", "ExtraEnv may not set " + AgentURIEnv, "APIEndpointEnv may not name " + MetadataURIEnv, "Cluster"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestTaskDefinitionsOf(t *testing.T) {
	t.Parallel()
	find := TaskDefinitionsOf(consumerDef, TaskDefinition{Family: "bare"})
	for ref, want := range map[string]bool{
		consumerDef.Arn:    true,
		"edp-consumer:3":   true,
		"edp-consumer":     true,
		"bare":             true,
		"edp-consumer:4":   false,
		"consumer":         false,
		"other-consumer:3": false,
	} {
		if _, got := find(ref); got != want {
			t.Errorf("lookup %q: found %v, want %v", ref, got, want)
		}
	}
}

// Without capacity, RunTask starts nothing: the API reports every task in
// failures[] with Fargate's capacity reason and the Go call fails with
// ErrNoCapacity; once capacity is back, tasks start again.
func TestRunTaskWithoutCapacity(t *testing.T) {
	t.Parallel()
	l := &fakeLauncher{}
	e := newEmulator(t, l, nil)
	_, client := serve(t, e)
	e.SetCapacity(false)
	out, err := client.RunTask(context.Background(), dispatchRunTask("edp-cap-0", 3))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 0 || len(out.Failures) != 3 || aws.ToString(out.Failures[0].Reason) != CapacityReason {
		t.Fatalf("RunTask without capacity: %d tasks, failures %+v; want 0 tasks and 3 capacity failures", len(out.Tasks), out.Failures)
	}
	if _, err := e.RunTask(context.Background(), RunTaskInput{TaskDefinition: consumerDef.Arn, Count: 1}); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("Go RunTask without capacity: %v, want ErrNoCapacity", err)
	}
	if n := len(l.launched()); n != 0 {
		t.Fatalf("%d processes launched without capacity", n)
	}
	e.SetCapacity(true)
	out, err = client.RunTask(context.Background(), dispatchRunTask("edp-cap-1", 2))
	if err != nil || len(out.Tasks) != 2 || len(out.Failures) != 0 {
		t.Fatalf("RunTask with capacity back: %v, %d tasks, %d failures; want 2 tasks", err, len(out.Tasks), len(out.Failures))
	}
}
