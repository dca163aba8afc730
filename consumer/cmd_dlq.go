package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/consumer/dlq"
	"github.com/edp-pipelines/edp/consumer/event"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// dlqLine is one original message as `consumer dlq list` prints it.
type dlqLine struct {
	OriginalMessageID string `json:"original_message_id"`
	Copies            int    `json:"copies"`
	Bucket            string `json:"bucket,omitempty"`
	S3Key             string `json:"s3_key,omitempty"`
	Body              string `json:"body,omitempty"` // when it names no config object
	Reason            string `json:"reason,omitempty"`
	FailedAt          string `json:"failed_at,omitempty"`
	ReceiveCount      int    `json:"receive_count,omitempty"`
	RedrivenBySQS     bool   `json:"redriven_by_sqs,omitempty"`
}

// maxListedBody bounds a body printed by `dlq list`.
const maxListedBody = 200

// cmdDLQ is `consumer dlq list|redrive`: it reads the dead-letter queue and
// counts the copies of one message (a lost SendMessage answer makes several)
// as one.
func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runDLQ(ctx, args, os.Getenv, stdout, stderr)
}

func runDLQ(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: consumer dlq list|redrive [flags]")
		fmt.Fprintln(stderr, "\n  list     print one JSON line per original message in the dead-letter queue, with its copies counted")
		fmt.Fprintln(stderr, "  redrive  send each original message back to the work queue once, then delete all its copies")
		fmt.Fprintln(stderr, "\nrun 'consumer dlq <subcommand> -h' for its flags")
	}
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			usage()
			return 0
		}
		usage()
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	dlqURL := fs.String("dlq-url", getenv(names.EnvDLQURL), "dead-letter queue URL (env "+names.EnvDLQURL+"; required)")
	queueURL := ""
	if sub == "redrive" {
		fs.StringVar(&queueURL, "queue-url", getenv(names.EnvQueueURL), "work queue the originals go back to (env "+names.EnvQueueURL+"; required)")
	}
	hold := fs.Duration("hold", dlq.DefaultHold, "how long each message stays hidden while the queue is read")
	maxMessages := fs.Int("max", dlq.DefaultMaxMessages, "read at most this many messages")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *dlqURL == "" {
		errs = append(errs, fmt.Errorf("%s (or -dlq-url) is required", names.EnvDLQURL))
	}
	if sub == "redrive" && queueURL == "" {
		errs = append(errs, fmt.Errorf("%s (or -queue-url) is required", names.EnvQueueURL))
	}
	if *hold < time.Second || *hold > 12*time.Hour {
		errs = append(errs, fmt.Errorf("-hold %v: want 1s to 12h", *hold))
	}
	if *maxMessages < 1 {
		errs = append(errs, fmt.Errorf("-max %d: want at least 1", *maxMessages))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "dlq %s: invalid settings:\n  %v\n", sub, err)
		return 2
	}

	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("command", "dlq "+sub, "version", version)
	cfg, err := loadAWS(ctx)
	if err != nil {
		log.ErrorContext(ctx, "start", "error", err.Error())
		return 1
	}
	r := &dlq.Reader{SQS: sqs.NewFromConfig(cfg), QueueURL: *dlqURL, Hold: *hold, MaxMessages: *maxMessages, Logger: log}
	scan, err := r.Scan(ctx)
	if err != nil {
		log.ErrorContext(ctx, "read dead-letter queue", "error", err.Error())
		return 1
	}
	attrs := []any{"dlq_url", *dlqURL, "messages", scan.Messages, "originals", len(scan.Entries), "truncated", scan.Truncated}
	if sub == "list" {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, e := range scan.Entries {
			if err := enc.Encode(listLine(e)); err != nil {
				log.ErrorContext(ctx, "write list", "error", err.Error())
				scan.Release(context.WithoutCancel(ctx))
				return 1
			}
		}
		scan.Release(context.WithoutCancel(ctx))
		log.InfoContext(ctx, "dead-letter queue listed", attrs...)
		return 0
	}
	res, err := scan.Redrive(ctx, queueURL)
	attrs = append(attrs, "queue_url", queueURL, "sent", res.Sent, "deleted", res.Deleted, "failed", res.Failed)
	if err != nil {
		log.ErrorContext(ctx, "dead-letter queue redriven in part", append(attrs, "error", err.Error())...)
		return 1
	}
	log.InfoContext(ctx, "dead-letter queue redriven", attrs...)
	return 0
}

func listLine(e *dlq.Entry) dlqLine {
	l := dlqLine{
		OriginalMessageID: e.OriginalID, Copies: e.Copies, Reason: e.Reason, FailedAt: e.FailedAt,
		ReceiveCount: e.ReceiveCount, RedrivenBySQS: e.RedrivenBySQS,
	}
	if m, err := event.Parse([]byte(e.Body)); err == nil && m.Kind == event.KindConfig {
		l.Bucket, l.S3Key = m.Bucket, m.Key
	} else {
		l.Body = textlimit.Clip(e.Body, maxListedBody)
	}
	return l
}
