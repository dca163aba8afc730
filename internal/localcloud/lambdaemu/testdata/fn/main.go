// Command fn is a test function for lambdaemu, built with aws-lambda-go like
// a real provided.al2023 function. The event's "action" picks what it does;
// LAMBDAEMU_TEST_INIT makes its init fail.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type request struct {
	Action string `json:"action"`
	Sleep  string `json:"sleep,omitempty"`
	Text   string `json:"text,omitempty"`
}

type response struct {
	Count       int               `json:"count"` // invocations this process has served
	PID         int               `json:"pid"`
	RequestID   string            `json:"request_id"`
	FunctionArn string            `json:"function_arn"`
	DeadlineMs  int64             `json:"deadline_ms"`
	TraceID     string            `json:"trace_id"`
	Env         map[string]string `json:"env"`
	Text        string            `json:"text,omitempty"`
	ChildPID    int               `json:"child_pid,omitempty"`
}

// quotaError gives the error a type name the runtime reports as errorType.
type quotaError struct{ what string }

func (e *quotaError) Error() string { return "quota exceeded: " + e.what }

// brokenInvariant is a panic value with a type name of its own.
type brokenInvariant struct{ what string }

func (b brokenInvariant) String() string { return "broken invariant: " + b.what }

type handler struct{ count int }

func (h *handler) handle(ctx context.Context, req request) (*response, error) {
	h.count++
	lc, _ := lambdacontext.FromContext(ctx)
	deadline, _ := ctx.Deadline()
	resp := &response{
		Count:       h.count,
		PID:         os.Getpid(),
		RequestID:   lc.AwsRequestID,
		FunctionArn: lc.InvokedFunctionArn,
		DeadlineMs:  deadline.UnixMilli(),
		TraceID:     os.Getenv("_X_AMZN_TRACE_ID"),
		Env:         map[string]string{},
		Text:        req.Text,
	}
	for _, k := range []string{"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
		"AWS_REGION", "_HANDLER", "LAMBDA_TASK_ROOT", "TZ", "CUSTOM", "HOME", "AWS_ACCESS_KEY_ID"} {
		if v, ok := os.LookupEnv(k); ok {
			resp.Env[k] = v
		}
	}
	switch req.Action {
	case "echo":
		return resp, nil
	case "fail":
		return nil, &quotaError{what: req.Text}
	case "panic":
		panic(brokenInvariant{what: req.Text})
	case "sleep":
		d, err := time.ParseDuration(req.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d) // deliberately ignores ctx: a stuck function
		return resp, nil
	case "exit":
		os.Exit(3)
	case "exit-after":
		// Answer, then exit while idle: the environment dies between
		// invocations.
		go func() {
			time.Sleep(50 * time.Millisecond)
			os.Exit(0)
		}()
		return resp, nil
	case "spawn":
		// A child in the same process group, to check that resetting
		// the environment kills the whole group.
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "LAMBDAEMU_TEST_CHILD=1")
		if err := child.Start(); err != nil {
			return nil, err
		}
		resp.ChildPID = child.Process.Pid
		return resp, nil
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

func main() {
	if os.Getenv("LAMBDAEMU_TEST_CHILD") == "1" {
		time.Sleep(time.Minute) // long enough to outlive a test, short if one leaks it
		return
	}
	switch os.Getenv("LAMBDAEMU_TEST_INIT") {
	case "exit": // fail init without telling the Runtime API
		fmt.Fprintln(os.Stderr, "init: missing configuration")
		os.Exit(2)
	case "report": // fail init through the Runtime API, as a runtime should
		url := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/init/error"
		body := []byte(`{"errorMessage":"config bucket unreadable","errorType":"InitConfigError"}`)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Lambda-Runtime-Function-Error-Type", "Runtime.InitConfigError")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			fmt.Fprintln(os.Stderr, "init error reported:", resp.Status)
			resp.Body.Close()
		}
		os.Exit(1)
	}
	h := &handler{}
	lambda.Start(h.handle)
}
