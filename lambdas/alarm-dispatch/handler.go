package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edp-pipelines/edp/internal/names"
)

// runTaskLimit is the most tasks one RunTask call may start.
const runTaskLimit = 10

// listTasksPage is the largest ListTasks page.
const listTasksPage = 100

// Tag keys put on every task the dispatcher starts.
const (
	TagStartedBy  = "edp:started-by"
	TagDispatchID = "edp:dispatch-id"
)

// ErrTasksNotStarted marks a dispatch that started fewer tasks than it
// decided to: returning it makes Lambda retry the invocation asynchronously
// and, once retries are used up, send the event to the on-failure destination.
var ErrTasksNotStarted = errors.New("tasks not started")

// QueueAPI is the one SQS call the dispatcher makes (*sqs.Client has it).
type QueueAPI interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// TaskLister lists the cluster's tasks (*ecs.Client has it).
type TaskLister interface {
	ListTasks(ctx context.Context, in *ecs.ListTasksInput, optFns ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
}

// TaskRunner starts tasks (*ecs.Client has it).
type TaskRunner interface {
	RunTask(ctx context.Context, in *ecs.RunTaskInput, optFns ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
}

// Deps are the handler's collaborators. Queue, Lister and Runner are required.
type Deps struct {
	Queue  QueueAPI
	Lister TaskLister
	Runner TaskRunner
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives one EMF line per dispatch. Default: discard.
	Metrics io.Writer
}

// Handler turns CloudWatch alarm notifications (delivered by SNS) into ECS
// RunTask calls. Its only state is configuration, so one Handler serves
// every invocation of a warm Lambda environment.
type Handler struct {
	cfg     Config
	family  string
	batch   int // batchSize(cfg.MaxTasks)
	queue   QueueAPI
	lister  TaskLister
	runner  TaskRunner
	log     *slog.Logger
	metrics io.Writer
	rounds  roundPolicy   // re-requests of tasks in RunTask's failures[]
	reserve time.Duration // kept free before the invocation's deadline
}

// NewHandler returns a Handler for cfg, which must be valid: read by
// ConfigFromEnv, or given its defaults and checked with Config.Validate.
// NewHandler validates nothing but d, so a configuration is validated once.
func NewHandler(cfg Config, d Deps) (*Handler, error) {
	if d.Queue == nil || d.Lister == nil || d.Runner == nil {
		return nil, errors.New("new handler: Queue, Lister and Runner are required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Metrics == nil {
		d.Metrics = io.Discard
	}
	return &Handler{
		cfg:     cfg,
		family:  family(cfg.TaskDefinition),
		batch:   batchSize(cfg.MaxTasks),
		queue:   d.Queue,
		lister:  d.Lister,
		runner:  d.Runner,
		log:     d.Logger,
		metrics: d.Metrics,
		rounds:  defaultRounds,
		reserve: defaultReserve,
	}, nil
}

// Handle processes one SNS event. Records that are not a transition to
// ALARM are logged and ignored; the error (if any) joins the dispatch errors
// of the ALARM records, so Lambda retries only what can still succeed.
//
// Every call and pause is bounded by a deadline h.reserve earlier than the
// invocation's own (ctx's, set by the Lambda runtime): a call the SDK is
// still retrying then, or a round whose pause would outlast it, ends the
// dispatch with its missing tasks reported, in time.
func (h *Handler) Handle(ctx context.Context, ev events.SNSEvent) error {
	ctx, cancel := withBudget(ctx, h.reserve)
	defer cancel()
	if len(ev.Records) == 0 {
		h.log.InfoContext(ctx, "ignored event", "reason", "no records")
		return nil
	}
	var errs []error
	for _, rec := range ev.Records {
		n, reason := classify(rec)
		if reason != "" {
			h.log.InfoContext(ctx, "ignored record",
				"reason", reason,
				"sns_message_id", rec.SNS.MessageID,
				"sns_type", rec.SNS.Type,
				"subject", rec.SNS.Subject)
			continue
		}
		if err := h.dispatch(ctx, n); err != nil {
			h.log.ErrorContext(ctx, "dispatch failed",
				"alarm_name", n.AlarmName,
				"state_change_time", n.StateChangeTime,
				"sns_message_id", n.SNSMessageID,
				"error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// outcome is what one dispatch decided and achieved.
type outcome struct {
	// Backlog is visible plus in-flight messages.
	Backlog int64
	// Running counts consumer tasks of the family with desired status
	// RUNNING (pending ones included), capped at MaxTasks.
	Running int
	// Requested is the number of tasks the formula asked for.
	Requested int
	// Started is the number of tasks RunTask returned.
	Started int
	// Failed is Requested minus Started, Skipped and Capped: tasks still
	// missing.
	Failed int
	// Skipped counts tasks of batches that an earlier attempt at the same
	// state change already sent (ECS answered ConflictException).
	Skipped int
	// Capped counts requested tasks that were not started because a re-read
	// before a batch found the family at MaxTasks: someone else (another
	// invocation, an operator) started tasks in the meantime.
	Capped int
}

// tasksToStart is the dispatch formula: the tasks the backlog wants,
// min(maxTasks, ceil(backlog / perTask)), less those already running, never
// negative. With a backlog and nothing running it is at least one.
//
// The alarm invokes the function again every other period while work waits
// (its gate is the function's own invocations), so the formula tops the
// running tasks up rather than adding to them: a backlog the running tasks
// already cover starts nothing, a burst that arrives while they work starts
// the difference, up to maxTasks.
func tasksToStart(backlog int64, running, maxTasks, perTask int) int {
	if backlog <= 0 || perTask <= 0 || maxTasks <= 0 {
		return 0
	}
	need := (backlog-1)/int64(perTask) + 1 // ceil without overflow
	want := int(min(int64(maxTasks), need))
	return max(want-running, 0)
}

// batchSize is the most tasks one batch starts: a tenth of maxTasks,
// rounded up, at least 1 and at most RunTask's limit of 10. Running tasks are
// re-read before every batch, so invocations running at the same time can
// overshoot maxTasks only by the batches they have in flight at once; small
// batches keep that bound small, a tenth keeps the number of calls for a
// large maxTasks down (docs/alarm-dispatch.md, "Concurrent invocations").
func batchSize(maxTasks int) int {
	return min(runTaskLimit, max(1, (maxTasks+9)/10))
}

// dispatchID names one state change; it is stable across redeliveries and
// retries of the notification and short enough for a tag value.
func dispatchID(n alarmNotice) string {
	sum := sha256.Sum256([]byte(n.key()))
	return hex.EncodeToString(sum[:10])
}

// clientToken is RunTask's idempotency token for batch seq of a dispatch:
// "edp-", the 20 hex digits of the dispatch id, "-" and the batch number —
// about 30 of the 64 ASCII characters (33–126) ECS allows. ECS keeps a token
// for 24 hours: a repeat with the same parameters returns the original
// tasks, a repeat with other parameters fails with ConflictException; either
// way no task is started twice.
func clientToken(id string, seq int) string {
	return "edp-" + id + "-" + strconv.Itoa(seq)
}

// dispatch reads the queue and the cluster, applies the formula and starts
// the tasks, then writes the metric line.
func (h *Handler) dispatch(ctx context.Context, n alarmNotice) error {
	id := dispatchID(n)
	log := h.log.With("alarm_name", n.AlarmName, "dispatch_id", id)

	backlog, err := h.backlog(ctx)
	if err != nil {
		return err
	}
	running, err := h.running(ctx, nil)
	if err != nil {
		return err
	}
	o := outcome{Backlog: backlog, Running: running}
	o.Requested = tasksToStart(backlog, running, h.cfg.MaxTasks, h.cfg.MessagesPerTask)
	log.InfoContext(ctx, "dispatch decision",
		"state_change_time", n.StateChangeTime,
		"backlog", backlog,
		"running", running,
		"max_tasks", h.cfg.MaxTasks,
		"messages_per_task", h.cfg.MessagesPerTask,
		"requested", o.Requested)

	var runErr error
	if o.Requested > 0 {
		runErr = h.start(ctx, log, id, &o)
	}
	if err := writeEMF(h.metrics, time.Now(), h.cfg.Cluster, n.AlarmName, id, o); err != nil {
		log.WarnContext(ctx, "metrics line lost", "error", err.Error())
	}
	log.InfoContext(ctx, "dispatch done",
		"requested", o.Requested, "started", o.Started, "failed", o.Failed, "skipped", o.Skipped, "capped", o.Capped)
	return runErr
}

// backlog returns visible plus in-flight messages. In-flight ones count
// because a consumer that dies or times out makes them visible again.
func (h *Handler) backlog(ctx context.Context) (int64, error) {
	out, err := h.queue.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(h.cfg.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{
			sqstypes.QueueAttributeNameApproximateNumberOfMessages,
			sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
		},
	})
	if err != nil {
		return 0, fmt.Errorf("read queue attributes %s: %w", h.cfg.QueueURL, err)
	}
	var total int64
	for _, name := range []sqstypes.QueueAttributeName{
		sqstypes.QueueAttributeNameApproximateNumberOfMessages,
		sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	} {
		s, ok := out.Attributes[string(name)]
		if !ok {
			return 0, fmt.Errorf("read queue attributes %s: %s missing", h.cfg.QueueURL, name)
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("read queue attributes %s: %s=%q is not a count", h.cfg.QueueURL, name, s)
		}
		total += v
	}
	return total, nil
}

// running counts the family's tasks whose desired status is RUNNING — that
// includes PROVISIONING and PENDING ones, and tasks started by anyone — and
// stops paging once MaxTasks is reached, since more cannot change the answer.
// Tasks in own (those this invocation started) count even when the listing
// does not show them yet: ListTasks is eventually consistent.
//
// The family is the filter, not startedBy: ECS accepts startedBy only as the
// sole filter of a ListTasks call (no desired status, no family), and the
// family's tasks, whoever started them, are what MaxTasks bounds.
func (h *Handler) running(ctx context.Context, own map[string]bool) (int, error) {
	in := &ecs.ListTasksInput{
		Cluster:       aws.String(h.cfg.Cluster),
		Family:        aws.String(h.family),
		DesiredStatus: ecstypes.DesiredStatusRunning,
		MaxResults:    aws.Int32(listTasksPage),
	}
	count := 0
	listed := 0 // own tasks among the listed ones
	for {
		out, err := h.lister.ListTasks(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("list tasks of family %s in %s: %w", h.family, h.cfg.Cluster, err)
		}
		count += len(out.TaskArns)
		if count >= h.cfg.MaxTasks {
			return h.cfg.MaxTasks, nil
		}
		for _, arn := range out.TaskArns {
			if own[arn] {
				listed++
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return min(count+len(own)-listed, h.cfg.MaxTasks), nil
		}
		next := *in
		next.NextToken = out.NextToken
		in = &next
	}
}

// start runs o.Requested tasks in batches of at most h.batch. Before each
// batch but the first (whose count is the decision's, read just before) it
// re-reads the running tasks and sizes the batch to the room left under
// MaxTasks, so tasks that another invocation started meanwhile are counted;
// once the family is full the rest of the plan is dropped as capped, not
// failed. Tasks that RunTask reports in failures[] (capacity, throttling of
// placement) are asked for again in new batches after a pause, while time
// and rounds remain. It fills in o.Started, o.Skipped, o.Capped and
// o.Failed and returns ErrTasksNotStarted if any task is still missing.
func (h *Handler) start(ctx context.Context, log *slog.Logger, id string, o *outcome) error {
	own := map[string]bool{} // ARNs of the tasks this invocation started
	running := o.Running
	pending := o.Requested
	seq := 0
	var reasons []string
	var cause error
	for round := 0; pending > 0 && cause == nil; round++ {
		if round > 0 {
			if round >= h.rounds.MaxRounds {
				break
			}
			if !sleep(ctx, h.rounds.pause(round-1)) {
				log.WarnContext(ctx, "no time left to ask again for failed tasks", "round", round, "tasks", pending)
				break
			}
			log.InfoContext(ctx, "retrying failed tasks", "round", round, "tasks", pending)
		}
		missing := 0 // reported in failures[] this round: asked for again next round
		for pending > 0 && cause == nil {
			if seq > 0 {
				n, err := h.running(ctx, own)
				if err != nil {
					cause = fmt.Errorf("re-read before batch %d: %w", seq, err)
					break
				}
				running = n
			}
			room := h.cfg.MaxTasks - running
			if room <= 0 {
				o.Capped += pending + missing
				log.InfoContext(ctx, "family at max tasks, rest of the plan dropped",
					"running", running, "capped", pending+missing)
				pending, missing = 0, 0
				break
			}
			count := min(h.batch, pending, room)
			pending -= count
			token := clientToken(id, seq)
			seq++
			// One call per batch. The SDK's retryer resends it when it is
			// throttled or unanswered — the same body, so the same client
			// token: an attempt whose answer was lost cannot start tasks twice.
			out, err := h.runner.RunTask(ctx, h.runTaskInput(id, token, count))
			switch {
			case isConflict(err):
				log.WarnContext(ctx, "batch already sent by an earlier attempt",
					"client_token", token, "tasks", count, "error", err.Error())
				o.Skipped += count
			case err != nil:
				cause = fmt.Errorf("run %d tasks (client token %s): %w", count, token, err)
			default:
				for _, task := range out.Tasks {
					own[aws.ToString(task.TaskArn)] = true
				}
				o.Started += len(out.Tasks)
				short := count - len(out.Tasks)
				missing += max(short, 0)
				for _, f := range out.Failures {
					r := aws.ToString(f.Reason)
					if !slices.Contains(reasons, r) {
						reasons = append(reasons, r)
					}
					log.WarnContext(ctx, "task not started",
						"client_token", token,
						"reason", r,
						"detail", aws.ToString(f.Detail),
						"arn", aws.ToString(f.Arn))
				}
				log.InfoContext(ctx, "batch sent",
					"client_token", token, "tasks", count, "started", len(out.Tasks), "failures", short,
					"running", running)
			}
		}
		pending += missing
	}
	o.Failed = max(o.Requested-o.Started-o.Skipped-o.Capped, 0)
	if o.Failed == 0 {
		return nil
	}
	err := fmt.Errorf("dispatch %s: %d of %d %w", id, o.Failed, o.Requested, ErrTasksNotStarted)
	if len(reasons) > 0 {
		err = fmt.Errorf("%w (failures: %s)", err, strings.Join(reasons, "; "))
	}
	if cause != nil {
		err = errors.Join(err, cause)
	}
	return err
}

// runTaskInput is the RunTask request for one batch.
func (h *Handler) runTaskInput(id, token string, count int) *ecs.RunTaskInput {
	return &ecs.RunTaskInput{
		Cluster:        aws.String(h.cfg.Cluster),
		TaskDefinition: aws.String(h.cfg.TaskDefinition),
		Count:          aws.Int32(int32(count)),
		CapacityProviderStrategy: []ecstypes.CapacityProviderStrategyItem{{
			CapacityProvider: aws.String(h.cfg.CapacityProvider),
			Weight:           1,
		}},
		NetworkConfiguration: &ecstypes.NetworkConfiguration{
			AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
				Subnets:        h.cfg.Subnets,
				SecurityGroups: h.cfg.SecurityGroups,
				AssignPublicIp: ecstypes.AssignPublicIp(h.cfg.AssignPublicIP),
			},
		},
		Overrides: &ecstypes.TaskOverride{
			ContainerOverrides: []ecstypes.ContainerOverride{{
				Name:    aws.String(h.cfg.ContainerName),
				Command: []string{names.ModeDrain},
			}},
		},
		StartedBy: aws.String(h.cfg.StartedBy),
		Tags: []ecstypes.Tag{
			{Key: aws.String(TagStartedBy), Value: aws.String(h.cfg.StartedBy)},
			{Key: aws.String(TagDispatchID), Value: aws.String(id)},
		},
		ClientToken: aws.String(token),
	}
}
