package lambdaemu

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"
)

// Async is what Lambda does around a function for an asynchronous
// invocation (the kind SNS makes): the first attempt, up to Retries more
// after a failure, then the invocation record to the on-failure
// destination. Lambda waits between attempts (about one minute, then two);
// the local cloud retries at once.
type Async struct {
	// Attempt runs one attempt (the caller counts it, for the function's
	// Invocations metric). Required.
	Attempt func(ctx context.Context, event []byte) ([]byte, error)
	// FunctionArn names the function in the record.
	FunctionArn string
	// Retries is the event-invoke config's MaximumRetryAttempts (0–2).
	Retries int
	// OnFailure receives the record when every attempt failed (nil: no
	// destination, the event is dropped).
	OnFailure func(ctx context.Context, record []byte) error
	// Logger receives one line per attempt. Default: none.
	Logger *slog.Logger
}

// Invoke runs event to success or to the on-failure destination. It
// returns the last attempt's error when there is no destination, and the
// destination's error if it could not take the record.
func (a Async) Invoke(ctx context.Context, event []byte) error {
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var err error
	attempts := 0
	for attempts <= a.Retries && ctx.Err() == nil {
		attempts++
		var out []byte
		if out, err = a.Attempt(ctx, event); err == nil {
			log.Info("Lambda invocation succeeded", "function", a.FunctionArn, "attempt", attempts, "result", string(out))
			return nil
		}
		log.Warn("Lambda invocation failed", "function", a.FunctionArn, "attempt", attempts, "error", err)
	}
	if a.OnFailure == nil || ctx.Err() != nil {
		return errors.Join(err, ctx.Err())
	}
	return a.OnFailure(ctx, failureRecord(a.FunctionArn, event, attempts, err))
}

// failureRecord is the invocation record Lambda sends to an on-failure
// destination when the retries are exhausted ("Capturing records of Lambda
// asynchronous invocations" in the developer guide).
func failureRecord(functionArn string, event []byte, attempts int, err error) []byte {
	response := newFunctionError("Unhandled", err.Error()).Payload
	var fe *FunctionError
	if errors.As(err, &fe) {
		response = fe.Payload
	}
	record, _ := json.Marshal(map[string]any{ // raw JSON and strings: cannot fail
		"version":   "1.0",
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"requestContext": map[string]any{
			"requestId": newUUID(), "functionArn": functionArn + ":$LATEST",
			"condition": "RetriesExhausted", "approximateInvokeCount": attempts,
		},
		"requestPayload":  json.RawMessage(event),
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
		"responsePayload": json.RawMessage(response),
	})
	return record
}
