package lambdaemu

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const alarmDispatch = "lambdas/alarm-dispatch"

// fixtureNotification returns the topic, subject and message of an SNS
// fixture of the alarm-dispatch Lambda.
func fixtureNotification(t *testing.T, name string) (topic, subject, message string) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, alarmDispatch, "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Records []struct {
			Sns struct{ TopicArn, Subject, Message string }
		}
	}
	if err := json.Unmarshal(raw, &ev); err != nil || len(ev.Records) != 1 {
		t.Fatalf("fixture %s: %v", name, err)
	}
	s := ev.Records[0].Sns
	return s.TopicArn, s.Subject, s.Message
}

// unreachableEndpoint returns a loopback URL nothing listens on.
func unreachableEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestAlarmDispatchBootstrap runs the real alarm-dispatch bootstrap, built
// for this machine, with a complete configuration whose AWS endpoint is
// unreachable: an OK notification is ignored without touching AWS (result
// null), and an ALARM notification fails cleanly with the handler's error
// (it cannot read the queue), as a function error, not a crash.
func TestAlarmDispatchBootstrap(t *testing.T) {
	t.Parallel()
	endpoint := unreachableEndpoint(t)
	out := &syncBuffer{}
	r := start(t, Function{
		Name:      "EdpAlarmDispatch-Dispatch",
		Bootstrap: buildBootstrap(t, alarmDispatch),
		Timeout:   30 * time.Second,
		MemoryMB:  256,
		Env: map[string]string{
			"EDP_QUEUE_URL":       endpoint + "/123456789012/EdpAlarmDispatch-Queue",
			"EDP_CLUSTER":         "edp-cluster",
			"EDP_TASK_DEFINITION": "EdpAlarmDispatchTask:1",
			"EDP_SUBNETS":         "subnet-0a1b2c3d",
			"EDP_MAX_TASKS":       "10",
			"AWS_ENDPOINT_URL":    endpoint,
		},
		Output: out,
	})

	okEvent := SNSEvent(fixtureNotification(t, "ok.json"))
	result, err := r.Invoke(t.Context(), okEvent)
	if err != nil {
		t.Fatalf("OK notification: %v\n%s", err, out)
	}
	if string(result) != "null" {
		t.Errorf("OK notification result = %s, want null (the handler returns only an error)", result)
	}
	if !out.waitFor(`"reason":"alarm state OK"`) {
		t.Errorf("no ignored-record log for the OK state:\n%s", out)
	}

	alarmEvent := SNSEvent(fixtureNotification(t, "alarm-single-metric.json"))
	_, err = r.Invoke(t.Context(), alarmEvent)
	// Handle joins the errors of its records (errors.Join), so the
	// runtime reports the type joinError.
	fe := functionError(t, err, "joinError")
	if !strings.Contains(fe.Message, "read queue attributes "+endpoint) {
		t.Errorf("message = %q, want the queue read failure", fe.Message)
	}
	if !out.waitFor(`"msg":"dispatch failed"`) {
		t.Errorf("no dispatch-failed log:\n%s", out)
	}
}

// TestAlarmDispatchColdStartFailure: without its required configuration
// the real bootstrap logs the problem and exits before asking for an
// invocation; the invocation fails with Runtime.ExitError (the emulator
// gives no exit status for a failed init: it is in the log).
func TestAlarmDispatchColdStartFailure(t *testing.T) {
	t.Parallel()
	out := &syncBuffer{}
	r := start(t, Function{
		Name:      "EdpAlarmDispatch-Dispatch",
		Bootstrap: buildBootstrap(t, alarmDispatch),
		Env:       map[string]string{"EDP_CLUSTER": "edp-cluster"},
		Output:    out,
	})
	_, err := r.Invoke(t.Context(), SNSEvent(fixtureNotification(t, "alarm-single-metric.json")))
	functionError(t, err, "Runtime.ExitError")
	for _, want := range []string{`"msg":"cold start failed"`, "EDP_QUEUE_URL", "EDP_SUBNETS"} {
		if !out.waitFor(want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
