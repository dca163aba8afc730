package ecsemu

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
)

// protect sets scale-in protection of the task behind p the way the
// consumer does: its ecsprotect client at the ECS_AGENT_URI it was given.
func protect(t *testing.T, hc *http.Client, p *fakeProcess, on bool, d time.Duration) {
	t.Helper()
	c := &ecsprotect.Client{AgentURI: p.spec.Env[AgentURIEnv], HTTP: hc}
	if err := c.Set(context.Background(), on, d); err != nil {
		t.Fatalf("set protection of %s to %v: %v", p.spec.TaskArn, on, err)
	}
}

// A service follows its desired count; on scale-in it stops unprotected
// tasks and leaves protected ones running until their protection is
// dropped or lapses, as ECS does.
func TestServiceScaleInSparesProtectedTasks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		client, hc := serveInMemory(t, e)
		defer e.Close(context.Background())
		ctx := context.Background()
		const svc = "edp-service"
		if err := e.CreateService(svc, consumerDef.Arn); err != nil {
			t.Fatal(err)
		}

		if err := e.SetDesiredCount(svc, 3); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got := e.RunningCount(svc); got != 3 {
			t.Fatalf("running after scale-out to 3: %d", got)
		}
		procs := l.launched()
		for _, info := range e.Tasks() {
			if info.Group != "service:"+svc || info.Service != svc || len(info.StartedBy) != len("ecs-svc/")+19 {
				t.Errorf("service task: group %q, service %q, startedBy %q", info.Group, info.Service, info.StartedBy)
			}
		}
		shortly, later := procs[0], procs[1]
		protect(t, hc, shortly, true, time.Minute)
		protect(t, hc, later, true, 5*time.Minute)

		// Scale in to 0, as the local Application Auto Scaling does.
		if err := e.SetDesiredCount(svc, 0); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if !procs[2].exited() || shortly.exited() || later.exited() {
			t.Fatalf("after scale-in to 0: unprotected exited %v, protected exited %v %v; want true, false, false",
				procs[2].exited(), shortly.exited(), later.exited())
		}
		if d, r := e.DesiredCount(svc), e.RunningCount(svc); d != 0 || r != 2 {
			t.Errorf("after scale-in to 0: desired %d, running %d; want 0, 2 (the protected tasks)", d, r)
		}

		// Dropping protection lets the waiting scale-in stop the task.
		protect(t, hc, later, false, 0)
		synctest.Wait()
		if !later.exited() || e.RunningCount(svc) != 1 {
			t.Fatalf("after dropping protection: exited %v, running %d; want true, 1", later.exited(), e.RunningCount(svc))
		}

		// A lapsing protection does too, when it lapses and not before.
		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if shortly.exited() {
			t.Fatal("protected task stopped before its protection expired")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !shortly.exited() || e.RunningCount(svc) != 0 {
			t.Fatalf("after the protection expired: exited %v, running %d; want true, 0", shortly.exited(), e.RunningCount(svc))
		}
		for _, p := range procs {
			if sigs, killed := p.state(); len(sigs) != 1 || sigs[0] != sigterm || killed {
				t.Errorf("%s: signals %v, killed %v; want one SIGTERM", p.spec.TaskArn, sigs, killed)
			}
		}

		// Scale out again; ListTasks by service finds the new tasks only.
		if err := e.SetDesiredCount(svc, 2); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		listed, err := client.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String("edp"), ServiceName: aws.String(svc)})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, p := range l.launched()[3:] {
			want = append(want, p.spec.TaskArn)
		}
		if diff := cmp.Diff(want, listed.TaskArns); diff != "" {
			t.Errorf("ListTasks by service (-want +got):\n%s", diff)
		}
		if e.DesiredCount(svc) != 2 || e.RunningCount(svc) != 2 {
			t.Errorf("desired %d, running %d; want 2, 2", e.DesiredCount(svc), e.RunningCount(svc))
		}
	})
}

// A service task that exits on its own is replaced, after a delay that
// grows while replacements keep exiting, so a crashing task cannot make
// the emulator start processes as fast as it can.
func TestServiceReplacesExitedTasks(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		serveInMemory(t, e)
		defer e.Close(context.Background())
		const svc = "edp-service"
		if err := e.CreateService(svc, "edp-consumer"); err != nil {
			t.Fatal(err)
		}
		if err := e.SetDesiredCount(svc, 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		for i, delay := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
			procs := l.launched()
			procs[len(procs)-1].exit(1)
			synctest.Wait()
			if n := len(l.launched()); n != i+1 {
				t.Fatalf("crash %d: replaced at once (%d launched)", i+1, n)
			}
			time.Sleep(delay - time.Millisecond)
			synctest.Wait()
			if n := len(l.launched()); n != i+1 {
				t.Fatalf("crash %d: replaced before %v", i+1, delay)
			}
			time.Sleep(time.Millisecond)
			synctest.Wait()
			if n := len(l.launched()); n != i+2 || e.RunningCount(svc) != 1 {
				t.Fatalf("crash %d: %d launched, %d running after %v; want %d, 1", i+1, n, e.RunningCount(svc), delay, i+2)
			}
		}

		// A task that cannot even start is retried on the same schedule.
		l.set(false, context.DeadlineExceeded)
		l.launched()[3].exit(1)
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := l.launchAttempts(); n > 4+6 {
			t.Errorf("%d launch attempts in a minute of failures; the backoff does not hold", n)
		}
	})
}

// Close stops every task the SIGTERM way, kills those that outlast their
// stop timeout, and refuses new tasks.
func TestCloseStopsEveryTask(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		e := newEmulator(t, l, nil)
		client, _ := serveInMemory(t, e)
		ctx := context.Background()
		if err := e.CreateService("svc", consumerDef.Arn); err != nil {
			t.Fatal(err)
		}
		if err := e.SetDesiredCount("svc", 1); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the service's task exits on SIGTERM, the next one will not
		l.set(true, nil)
		if _, err := client.RunTask(ctx, dispatchRunTask("edp-close-0", 1)); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()

		start := time.Now()
		if err := e.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took != consumerDef.StopTimeout {
			t.Errorf("Close took %v, want the stop timeout %v (one task ignores SIGTERM)", took, consumerDef.StopTimeout)
		}
		procs := l.launched()
		if len(procs) != 2 {
			t.Fatalf("%d processes, want 2", len(procs))
		}
		for _, p := range procs {
			sigs, killed := p.state()
			if len(sigs) != 1 || sigs[0] != sigterm || killed != p.ignoreTerm {
				t.Errorf("%s: signals %v, killed %v", p.spec.TaskArn, sigs, killed)
			}
		}
		for _, info := range e.Tasks() {
			if info.LastStatus != StatusStopped {
				t.Errorf("%s is %s after Close", info.Arn, info.LastStatus)
			}
		}
		if _, err := e.RunTask(ctx, RunTaskInput{TaskDefinition: "edp-consumer"}); !errors.Is(err, ErrClosed) {
			t.Errorf("RunTask after Close: got %v, want ErrClosed", err)
		}
	})
}

// Close with a deadline shorter than the stop timeout kills what is left
// and says so.
func TestCloseDeadlineKills(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		l := &fakeLauncher{}
		l.set(true, nil)
		e := newEmulator(t, l, nil)
		serveInMemory(t, e)
		if _, err := e.RunTask(context.Background(), RunTaskInput{TaskDefinition: "edp-consumer", Count: 2}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close: got %v, want the deadline's error", err)
		}
		for _, p := range l.launched() {
			if _, killed := p.state(); !killed {
				t.Errorf("%s not killed", p.spec.TaskArn)
			}
		}
	})
}
