// Package stackview reads what a deployed edp stack holds — its run
// records, the depth of its queues, what waits in its dead-letter queue —
// and renders the run table, the same way for a stack on AWS (edp smoke)
// and in the local cloud (edp local). It knows only the S3 and SQS calls it
// makes, each behind a small interface.
package stackview

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// Objects is the part of the S3 API Records reads with (*s3.Client has it).
type Objects interface {
	s3.ListObjectsV2APIClient
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// QueueDepth is a queue's visible and in-flight message counts.
type QueueDepth struct{ Visible, InFlight int }

// Attributes is the SQS call Depth makes (*sqs.Client has it).
type Attributes interface {
	GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// DepthAttributes are the queue attributes a QueueDepth is made of.
var DepthAttributes = []sqstypes.QueueAttributeName{
	sqstypes.QueueAttributeNameApproximateNumberOfMessages,
	sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
}

// Depth reads a queue's approximate counts, without receiving.
func Depth(ctx context.Context, api Attributes, queueURL string) (QueueDepth, error) {
	out, err := api.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(queueURL), AttributeNames: DepthAttributes})
	if err != nil {
		return QueueDepth{}, fmt.Errorf("attributes of %s: %w", path.Base(queueURL), err)
	}
	return DepthOf(out.Attributes), nil
}

// DepthOf reads the counts from queue attributes (DepthAttributes).
func DepthOf(attrs map[string]string) QueueDepth {
	n := func(k sqstypes.QueueAttributeName) int { v, _ := strconv.Atoi(attrs[string(k)]); return v }
	return QueueDepth{
		Visible:  n(sqstypes.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: n(sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
	}
}

// DeadLetter is one message in a dead-letter queue.
type DeadLetter struct {
	Key, Reason string
}

// Receiver is the SQS call PeekDLQ makes (*sqs.Client has it).
type Receiver interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
}

// PeekDLQ lists the DLQ's messages without consuming them for long: each is
// received with a 1 s visibility timeout, so it reappears at once.
func PeekDLQ(ctx context.Context, api Receiver, queueURL string) ([]DeadLetter, error) {
	seen := map[string]bool{}
	var out []DeadLetter
	for range 5 {
		r, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(queueURL), MaxNumberOfMessages: 10, VisibilityTimeout: 1,
			MessageAttributeNames: []string{"All"},
		})
		if err != nil {
			return nil, fmt.Errorf("peek DLQ: %w", err)
		}
		if len(r.Messages) == 0 {
			break
		}
		for _, m := range r.Messages {
			id := aws.ToString(m.MessageId)
			if seen[id] {
				continue
			}
			seen[id] = true
			d := DeadLetter{Key: objectKeyOf(aws.ToString(m.Body))}
			for k, v := range m.MessageAttributes {
				if strings.Contains(strings.ToLower(k), "reason") {
					d.Reason = aws.ToString(v.StringValue)
				}
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// objectKeyOf finds detail.object.key in an EventBridge S3 event body.
func objectKeyOf(body string) string {
	var e struct {
		Detail struct {
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"detail"`
	}
	if json.Unmarshal([]byte(body), &e) == nil && e.Detail.Object.Key != "" {
		return e.Detail.Object.Key
	}
	return textlimit.Clip(body, 60+len(textlimit.Ellipsis))
}

// WriteTable prints one row per run: model, accuracy, artifacts, upload →
// start and upload → done, then what is in the DLQ.
func WriteTable(w io.Writer, runs []runrecord.Record, uploaded map[string]time.Time, dlq []DeadLetter) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONFIG\tSTATUS\tMODEL\tACCURACY\tUPLOAD→START\tUPLOAD→DONE\tARTIFACTS / ERROR")
	for _, r := range runs {
		acc := "-"
		if r.Accuracy != nil {
			acc = strconv.FormatFloat(*r.Accuracy, 'f', 3, 64)
		}
		toStart, toDone := "-", "-"
		if up, ok := uploaded[r.Source.Key]; ok {
			toStart, toDone = since(up, r.StartedAt), since(up, r.FinishedAt)
		}
		detail := r.Error
		if r.Status == "succeeded" {
			detail = artifactSummary(r.Artifacts)
		}
		detail = textlimit.Clip(detail, 140+len(textlimit.Ellipsis))
		model := r.ModelType
		switch {
		case model == "" && r.Job == "command":
			model = "command" // a command job has no model of edp's
		case model == "":
			model = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Source.Key, r.Status, model, acc, toStart, toDone, detail)
	}
	tw.Flush()
	if len(dlq) == 0 {
		fmt.Fprintln(w, "dead-letter queue: empty")
		return
	}
	fmt.Fprintf(w, "dead-letter queue: %d message(s)\n", len(dlq))
	for _, d := range dlq {
		fmt.Fprintf(w, "  %s: %s\n", d.Key, d.Reason)
	}
}

// artifactSummary shows a run's artifacts as their folder and file names.
func artifactSummary(keys []string) string {
	if len(keys) == 0 {
		return "-"
	}
	dir := keys[0][:strings.LastIndex(keys[0], "/")+1]
	var files []string
	for _, k := range keys {
		if !strings.HasPrefix(k, dir) {
			return strings.Join(keys, " ")
		}
		files = append(files, k[len(dir):])
	}
	return dir + "{" + strings.Join(files, ",") + "}"
}

func since(from, to time.Time) string {
	if to.IsZero() {
		return "-"
	}
	d := to.Sub(from)
	if d < 0 {
		d = 0
	}
	return d.Round(10 * time.Millisecond).String()
}
