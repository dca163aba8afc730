// Command fn is a test function for lambdaemu, built with aws-lambda-go like
// a real provided.al2023 function. The event's "action" picks what it does;
// LAMBDAEMU_TEST_INIT=exit makes its init fail.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

type request struct {
	Action string `json:"action"`
	Sleep  string `json:"sleep,omitempty"`
	Size   int    `json:"size,omitempty"`
}

type response struct {
	Count      int               `json:"count"` // invocations this process has served
	PID        int               `json:"pid"`
	DeadlineMs int64             `json:"deadline_ms"`
	Env        map[string]string `json:"env"`
	Text       string            `json:"text,omitempty"`
}

// quotaError gives the error a type name the runtime reports as errorType.
type quotaError struct{}

func (quotaError) Error() string { return "quota exceeded" }

type handler struct{ count int }

func (h *handler) handle(ctx context.Context, req request) (*response, error) {
	h.count++
	deadline, _ := ctx.Deadline()
	resp := &response{Count: h.count, PID: os.Getpid(), DeadlineMs: deadline.UnixMilli(), Env: map[string]string{}}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		resp.Env[k] = v
	}
	switch req.Action {
	case "echo":
		resp.Text = strings.Repeat("x", req.Size)
		return resp, nil
	case "fail":
		return nil, quotaError{}
	case "panic":
		panic("broken invariant")
	case "sleep":
		d, err := time.ParseDuration(req.Sleep)
		if err != nil {
			return nil, err
		}
		time.Sleep(d) // deliberately ignores ctx: a stuck function
		return resp, nil
	case "exit":
		os.Exit(3)
	}
	return nil, fmt.Errorf("unknown action %q", req.Action)
}

func main() {
	if os.Getenv("LAMBDAEMU_TEST_INIT") == "exit" { // fail init without telling the Runtime API
		fmt.Fprintln(os.Stderr, "init: missing configuration")
		os.Exit(2)
	}
	lambda.Start((&handler{}).handle)
}
