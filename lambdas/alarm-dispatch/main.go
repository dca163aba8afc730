// Command alarm-dispatch is the Lambda behind the EdpAlarmDispatch stack: it
// turns a queue-length alarm (CloudWatch → SNS) into ECS RunTask calls.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// Placeholder handler until the dispatch logic lands (issue 5).
func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	lambda.Start(func(ctx context.Context, ev events.SNSEvent) error {
		log.InfoContext(ctx, "received", "records", len(ev.Records))
		return nil
	})
}
