package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/internal/faultproxy"
	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// alarmPeriod is one CloudWatch minute of the local cloud, in real time.
const alarmPeriod = time.Minute / speedup

// recoveryBound is how soon after Fargate capacity returns a dispatched
// task must start for work that a dispatch which started nothing left in
// the queue: the alarm is OK for the period after each invocation and back
// in ALARM the period after that (2 periods), then the function's own
// rounds of asking for failed tasks (up to about 8 s of pauses in an
// invocation that began just before capacity returned), plus slack for a
// loaded 2-core machine (moto, the Lambda emulator, process starts).
const recoveryBound = 2*alarmPeriod + 8*time.Second + 15*time.Second

// burstBound is how soon after a burst is in the queue the dispatched
// tasks must reach maxTasks while one task works: the alarm reads the
// burst at its next evaluation, or two periods later if the function ran
// in the period before (its gate), then one dispatch, plus the same slack.
const burstBound = 3*alarmPeriod + 15*time.Second

// dispatchStartsNothing proves that a dispatch which starts nothing does
// not strand the queue: with Fargate capacity gone, the alarm's dispatch
// fails (RunTask failures[]), the function gives up and its event lands
// in the on-failure queue, and no task runs; once capacity is back the
// configs run without any new upload, within recoveryBound. (With the
// alarm gated on nothing in flight it stayed in ALARM after the failed
// dispatch, never notified again, and the configs waited for retention.)
func (s *stack) dispatchStartsNothing(t *testing.T) {
	const prefix = "configs/nocapacity/"
	failures := s.queueURLOf(t, "DispatchFailures")
	s.waitNoTaskRunning(t)
	s.cloud.ECS().SetCapacity(false)
	defer s.cloud.ECS().SetCapacity(true)
	began := time.Now()
	var want []expect
	for i := range 4 { // below N: the max-wait trigger dispatches them
		u := s.put(t, fmt.Sprintf("%scfg-%d.yaml", prefix, i), fixture(t, "good/dt-gini.yaml"))
		want = append(want, expect{u, "succeeded"})
	}
	waitFor(t, "a dispatch that started nothing, given up into the on-failure queue", 2*time.Minute, func() (bool, string, error) {
		d, err := stackview.Depth(t.Context(), s.cloud.Clients().SQS, failures)
		if err != nil {
			return false, "", err
		}
		if n := len(s.tasksSince(began)); n > 0 {
			return false, "", fmt.Errorf("%d tasks started without Fargate capacity", n)
		}
		return d.Visible > 0, fmt.Sprintf("on-failure queue: %d; %s", d.Visible, s.alarmSummary()), nil
	})
	if recs, err := s.recordsUnder(t.Context(), prefix); err != nil || len(recs) > 0 {
		t.Fatalf("records before any task could start: %d (%v)", len(recs), err)
	}
	restored := time.Now()
	s.cloud.ECS().SetCapacity(true)
	first := s.firstTaskSince(t, "a dispatched task after capacity returned", restored, recoveryBound)
	if first.StartedBy != names.DefaultStartedBy {
		t.Errorf("task %s started by %q, want the dispatcher", taskID(first.Arn), first.StartedBy)
	}
	s.waitSettled(t, prefix, want, 2*time.Minute)
	if d := s.deadLetters(t, prefix); len(d) > 0 {
		t.Errorf("DLQ holds %v, want nothing", d)
	}
	t.Logf("no capacity for %s: the dispatch failed and no task ran; capacity back → first task %s later, no new upload",
		restored.Sub(began).Round(100*time.Millisecond), first.CreatedAt.Sub(restored).Round(100*time.Millisecond))
}

// burstWhileWorking proves that a burst arriving while a dispatched task
// works scales out to maxTasks: one config below N is dispatched by the
// max-wait trigger to one task, whose read of it is held; then a burst of
// uploads well above maxTasks × messagesPerTask arrives, and within
// burstBound of the burst being in the queue maxTasks dispatched tasks
// run at once — the held one among them. (Gated on nothing in flight, the
// busy task held the alarm at OK and drained the burst alone.)
func (s *stack) burstWhileWorking(t *testing.T) {
	const prefix = "configs/burst/"
	slow := prefix + "slow.yaml"
	held, remove := s.holdRead(slow, 40*time.Second)
	defer remove()
	s.waitNoTaskRunning(t)
	began := time.Now()
	want := []expect{{s.put(t, slow, fixture(t, "good/rf-small.yaml")), "succeeded"}}
	waitFor(t, "one dispatched task inside the job of "+slow, 2*time.Minute, func() (bool, string, error) {
		return held.Load() && len(s.jobStarts(slow)) > 0, s.taskSummary() + s.alarmSummary(), nil
	})
	if n := len(s.runningSince(began)); n != 1 {
		t.Fatalf("%d tasks run for one config below N, want 1", n)
	}
	// Each burst job takes a while (its config read is slowed), so the
	// backlog — visible plus in flight — outlasts the alarm's evaluation
	// instead of being drained by the busy task's free worker slots first.
	removeSlow := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: 3 * time.Second,
		Match: func(r *http.Request, _ []byte) bool { return s.isGetUnder(r, prefix+"burst-") }})
	defer removeSlow()
	var objs []object
	for i := range 4 * maxTasks * messagesPerTask {
		objs = append(objs, object{key: fmt.Sprintf("%sburst-%03d.yaml", prefix, i), body: fixture(t, "good/dt-minimal.json")})
	}
	for _, u := range s.putAll(t, objs) {
		want = append(want, expect{u, "succeeded"})
	}
	inQueue := time.Now()
	var peak int
	waitFor(t, fmt.Sprintf("%d dispatched tasks at once during the burst", maxTasks), burstBound, func() (bool, string, error) {
		peak = max(peak, len(s.runningSince(began)))
		return peak >= maxTasks, fmt.Sprintf("running %d; %s%s", peak, s.taskSummary(), s.alarmSummary()), nil
	})
	scaled := time.Since(inQueue)
	if !s.stillRunning(s.jobStarts(slow)[0].task) {
		t.Errorf("the held task finished before the scale-out: the test proves nothing")
	}
	s.waitSettled(t, prefix, want, 3*time.Minute)
	for _, ti := range s.tasksSince(began) {
		if ti.StartedBy != names.DefaultStartedBy {
			t.Errorf("task %s started by %q, want the dispatcher", taskID(ti.Arn), ti.StartedBy)
		}
	}
	t.Logf("burst of %d behind one busy task: %d tasks at once %s after the burst was in the queue",
		len(objs), maxTasks, scaled.Round(100*time.Millisecond))
}

// firstTaskSince waits up to bound for a task created at or after since
// and returns the first.
func (s *stack) firstTaskSince(t *testing.T, what string, since time.Time, bound time.Duration) ecsemu.TaskInfo {
	t.Helper()
	var first ecsemu.TaskInfo
	waitFor(t, what, bound, func() (bool, string, error) {
		tasks := s.tasksSince(since)
		if len(tasks) == 0 {
			return false, s.alarmSummary(), nil
		}
		first = tasks[0]
		return true, "", nil
	})
	return first
}

// runningSince returns the tasks created at or after since that have not
// stopped.
func (s *stack) runningSince(since time.Time) []ecsemu.TaskInfo {
	var out []ecsemu.TaskInfo
	for _, ti := range s.tasksSince(since) {
		if ti.LastStatus != ecsemu.StatusStopped {
			out = append(out, ti)
		}
	}
	return out
}

// waitNoTaskRunning waits until the tasks of earlier scenarios have
// exited, so none of them takes this scenario's messages.
func (s *stack) waitNoTaskRunning(t *testing.T) {
	t.Helper()
	waitFor(t, "no task running", time.Minute, func() (bool, string, error) {
		return len(s.runningSince(time.Time{})) == 0, s.taskSummary(), nil
	})
}

// stillRunning reports whether the task with this id has not stopped.
func (s *stack) stillRunning(id string) bool {
	for _, ti := range s.cloud.Tasks() {
		if taskID(ti.Arn) == id {
			return ti.LastStatus != ecsemu.StatusStopped
		}
	}
	return false
}

// queueURLOf returns the local URL of the stack's queue whose logical id
// starts with id.
func (s *stack) queueURLOf(t *testing.T, id string) string {
	t.Helper()
	st := s.cloud.Stack()
	for lid, typ := range st.Types {
		if typ == "AWS::SQS::Queue" && strings.HasPrefix(lid, id) {
			return localcloud.RewriteURL(st.Physical[lid], s.cloud.Endpoint())
		}
	}
	t.Fatalf("no queue %s in %s", id, st.Name)
	return ""
}

// strandedRetry proves EdpOneOff's retry path for stranded messages: with
// Fargate capacity gone, the upload rule's RunTask target starts nothing;
// each upload's event is retried as the deployed target's RetryPolicy says
// and then lands, with EventBridge's attributes, in the target's
// dead-letter queue, so the configs wait in the queue with no task for
// them. Once capacity is back — and with no new upload — the StrandedWork
// alarm (messages older than the max wait, nothing in flight) sends its
// state change to the default bus, the retry rule starts a drain task and
// every config runs. (Before, the messages waited for the next upload, and
// without one until retention deleted them.)
func (s *stack) strandedRetry(t *testing.T) {
	const prefix = "configs/stranded/"
	s.waitNoTaskRunning(t)
	s.cloud.ECS().SetCapacity(false)
	defer s.cloud.ECS().SetCapacity(true)
	var want []expect
	for i := range 3 {
		u := s.put(t, fmt.Sprintf("%scfg-%d.yaml", prefix, i), fixture(t, "good/dt-gini.yaml"))
		want = append(want, expect{u, "succeeded"})
	}
	uploaded := time.Now()
	s.waitDeadLettered(t, prefix, len(want))
	// Past the max wait without capacity: nothing ran.
	time.Sleep(time.Until(uploaded.Add(maxWaitMinutes*alarmPeriod + 2*alarmPeriod)))
	if n := len(s.tasksSince(uploaded)); n > 0 {
		t.Fatalf("%d tasks started without Fargate capacity", n)
	}
	restored := time.Now()
	s.cloud.ECS().SetCapacity(true)
	first := s.firstTaskSince(t, "a drain task for the stranded messages", restored, recoveryBound)
	if !strings.HasPrefix(first.StartedBy, "events-rule/") || first.OverrideEnv[names.EnvTriggerKey] != "" {
		t.Errorf("task %s started by %q with trigger %q, want the stranded-work rule (no trigger)",
			taskID(first.Arn), first.StartedBy, first.OverrideEnv[names.EnvTriggerKey])
	}
	s.waitSettled(t, prefix, want, 2*time.Minute)
	t.Logf("stranded for %s: capacity back → drain task %s later, no new upload",
		restored.Sub(uploaded).Round(100*time.Millisecond), first.CreatedAt.Sub(restored).Round(100*time.Millisecond))
}

// waitDeadLettered waits until the upload rule's ECS target has given up
// on n upload events under prefix, and checks that each reached the
// delivery DLQ as EventBridge sends it: the event itself, RETRY_ATTEMPTS
// the deployed MaximumRetryAttempts, and the rule, target and error named.
// It removes them from the queue.
func (s *stack) waitDeadLettered(t *testing.T, prefix string, n int) {
	t.Helper()
	dlq := s.queueURLOf(t, "PipelineDeliveryDLQ")
	rule, retries := s.uploadRuleECSRetries(t)
	began := time.Now()
	got := map[string]bool{}
	other := 0
	waitFor(t, "the upload events retried, then dead-lettered", time.Minute, func() (bool, string, error) {
		out, err := s.sqs.ReceiveMessage(t.Context(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq),
			MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
		if err != nil {
			return false, "", err
		}
		for _, m := range out.Messages {
			attr := func(k string) string { return aws.ToString(m.MessageAttributes[k].StringValue) }
			var ev struct {
				Detail struct {
					Object struct{ Key string } `json:"object"`
				} `json:"detail"`
			}
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &ev)
			if !strings.HasSuffix(attr("RULE_ARN"), ":rule/"+rule) {
				other++ // the stranded-work rule's own tries, which also find no capacity
			} else if key := ev.Detail.Object.Key; strings.HasPrefix(key, prefix) {
				got[key] = true
				if attr("RETRY_ATTEMPTS") != retries || attr("EXHAUSTED_RETRY_CONDITION") != "MaximumRetryAttempts" ||
					attr("ERROR_CODE") != "ERROR_FROM_TARGET" || !strings.Contains(attr("ERROR_MESSAGE"), ecsemu.CapacityReason) ||
					!strings.Contains(attr("TARGET_ARN"), ":cluster/") {
					t.Errorf("%s dead-lettered with %v, want %s retries of the cluster target exhausted by no capacity", key, m.MessageAttributes, retries)
				}
			}
			if _, err := s.sqs.DeleteMessage(t.Context(), &sqs.DeleteMessageInput{QueueUrl: aws.String(dlq), ReceiptHandle: m.ReceiptHandle}); err != nil {
				return false, "", err
			}
		}
		if k := len(s.tasksSince(began)); k > 0 {
			return false, "", fmt.Errorf("%d tasks started without Fargate capacity", k)
		}
		return len(got) == n, fmt.Sprintf("%d of %d upload events dead-lettered, %d other", len(got), n, other), nil
	})
	t.Logf("%d upload events dead-lettered after %s retries in %s (%d of the stranded-work rule's)",
		n, retries, time.Since(began).Round(100*time.Millisecond), other)
}

// uploadRuleECSRetries returns the upload rule's name and its ECS target's
// MaximumRetryAttempts, as deployed.
func (s *stack) uploadRuleECSRetries(t *testing.T) (string, string) {
	t.Helper()
	st := s.cloud.Stack()
	for lid, typ := range st.Types {
		if typ != "AWS::Events::Rule" || !strings.HasPrefix(lid, "PipelineConfigUploaded") {
			continue
		}
		targets, _ := st.Properties(lid)["Targets"].([]any)
		for _, x := range targets {
			tg, _ := x.(map[string]any)
			rp, _ := tg["RetryPolicy"].(map[string]any)
			if n, ok := rp["MaximumRetryAttempts"].(float64); ok && tg["EcsParameters"] != nil {
				name := st.Physical[lid]
				return name[strings.LastIndexAny(name, "/|")+1:], fmt.Sprint(n)
			}
		}
	}
	t.Fatalf("no upload rule with an ECS target and a retry policy in %s", st.Name)
	return "", ""
}
