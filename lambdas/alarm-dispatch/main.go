// Command alarm-dispatch is the Lambda behind the EdpAlarmDispatch stack: it
// turns a queue-backlog alarm (CloudWatch → SNS) into ECS RunTask calls that
// start consumer tasks in drain mode.
//
// On every transition of the alarm to ALARM it re-reads the queue (visible
// plus in-flight messages), counts the consumer tasks of the task
// definition's family that are already running or pending, and tops them
// up to min(max_tasks, ceil(backlog / messages_per_task)) tasks on Fargate
// or Fargate Spot. The alarm is gated on this function's own invocations,
// so while work waits it notifies again about every two periods and the
// function acts as a reconciler (docs/alarm-dispatch.md). It starts them in batches of a tenth of max_tasks
// (1 to 10 tasks, one RunTask call each), re-counting the running tasks
// before every batch so that invocations running at the same time see each
// other's tasks, and gives each call a client token derived from the alarm's
// state-change time and the batch number so a repeated delivery or retried
// invocation never starts the same tasks twice. Every other notification is
// logged and ignored. Retrying a throttled or unanswered call is left to the
// SDK's standard retryer; the handler itself only asks again for tasks that
// RunTask reported in failures[]. Tasks that still could not be started when
// the invocation's time runs short are reported as an error, so Lambda's
// asynchronous retry and on-failure destination see them.
//
// main reads the environment once (see Config and docs/alarm-dispatch.md),
// builds the SDK clients and hands a Handler to the Lambda runtime; an
// invalid setting fails the cold start with an error naming every bad
// variable.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, err := coldStart(context.Background(), os.LookupEnv, log, os.Stdout)
	if err != nil {
		log.Error("cold start failed", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// The SDK's standard retryer is the only one: it resends throttled calls,
// server errors and unanswered requests with the same body, and the handler
// calls each API once. A throttled call costs at most sdkMaxAttempts
// requests; pauses grow from up to 1 s (throttling; 50 ms otherwise),
// doubling, to at most sdkMaxBackoff each, jittered. The invocation's
// deadline bounds them all.
const (
	sdkMaxAttempts = 5
	sdkMaxBackoff  = 4 * time.Second
)

// retryOptions sets the retryer every client of the function uses.
func retryOptions(o *retry.StandardOptions) {
	o.MaxAttempts = sdkMaxAttempts
	o.MaxBackoff = sdkMaxBackoff
}

// newRetryer returns a retryer for one client (each client keeps its own
// retry token bucket).
func newRetryer() aws.Retryer {
	return retry.NewStandard(retryOptions)
}

// coldStart reads the configuration (validated once, there), loads the SDK
// configuration (region and credentials of the function's role, or
// AWS_ENDPOINT_URL for an emulator) with the retryer above, and wires the
// clients into a Handler. A bad environment fails before any client is built.
func coldStart(ctx context.Context, lookup func(string) (string, bool), log *slog.Logger, metrics io.Writer) (*Handler, error) {
	cfg, err := ConfigFromEnv(lookup)
	if err != nil {
		return nil, err
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(newRetryer))
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	ecsClient := ecs.NewFromConfig(awsCfg)
	return NewHandler(cfg, Deps{
		Queue:   sqs.NewFromConfig(awsCfg),
		Lister:  ecsClient,
		Runner:  ecsClient,
		Logger:  log,
		Metrics: metrics,
	})
}
