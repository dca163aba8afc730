// Package taskcap bounds how many drain tasks of one task definition family
// work at once in one ECS cluster, from inside the tasks themselves.
//
// EventBridge Scheduler starts a task at every fire and has no concurrency
// limit, so under a backlog that outlasts the interval every fire would add
// a drain task. Instead, each drain task asks, at start-up and before it
// receives anything, how many other tasks of its own family in its own
// cluster ECS means to run (ecs:ListTasks with the cluster, the family and
// desired status RUNNING, every page: pending and running tasks, itself
// left out). When those others already reach the cap, the task skips: it
// logs why, emits the SkippedMetric and exits 0 without touching the queue.
//
// The task learns its cluster, its own ARN and its family from the ECS task
// metadata endpoint v4 (GET $ECS_CONTAINER_METADATA_URI_V4/task, answered
// by the agent inside the task, no credentials needed).
//
// Failure policy: a check that cannot be made — no metadata endpoint (not
// on ECS), an unreadable answer, a ListTasks error or timeout — never skips
// work. The task drains uncapped, with a warning and the FailureMetric: an
// uncapped drain costs one more task at worst and loses nothing, while a
// wrong skip would leave the backlog waiting for the next fire.
//
// What the cap guarantees: of the tasks that pass the check, no more than
// the cap work at once, as long as ListTasks shows every task created before
// the call (of any two that work at once, the later to check saw the
// earlier). ListTasks is eventually consistent, so tasks started within
// moments of each other may miss each other; Scheduler starts one task per
// fire, at least a minute apart on AWS. Tasks that start together can also
// all skip (each counts the other); the next fire drains.
package taskcap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// MetadataEnv is the variable ECS sets in every container to the base URL
// of the task metadata endpoint v4.
const MetadataEnv = "ECS_CONTAINER_METADATA_URI_V4"

// Metrics (EMF, unit Count) a Checker emits.
const (
	// SkippedMetric counts drains skipped because the cap was reached.
	SkippedMetric = names.MetricDrainsSkipped
	// FailureMetric counts checks that could not be made (the task drained
	// uncapped).
	FailureMetric = names.MetricTaskCapCheckFailures
)

// DefaultCallTimeout bounds the metadata read and, separately, the whole
// ListTasks paging when Checker.CallTimeout is zero.
const DefaultCallTimeout = 10 * time.Second

// listPage is the largest ListTasks page.
const listPage = 100

// maxMetadataBytes bounds the metadata answer read (a task's metadata is a
// few kilobytes per container).
const maxMetadataBytes = 1 << 20

// Lister lists a cluster's tasks (*ecs.Client has it).
type Lister interface {
	ListTasks(ctx context.Context, in *ecs.ListTasksInput, optFns ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
}

// Task is what the task metadata endpoint says about the task the caller
// runs in.
type Task struct {
	// Cluster is the cluster's ARN (Fargate) or short name.
	Cluster string `json:"Cluster"`
	// TaskARN is the task's own ARN.
	TaskARN string `json:"TaskARN"`
	// Family is the task definition's family.
	Family string `json:"Family"`
}

// ReadTask reads the task metadata endpoint v4 at metadataURI (the value of
// MetadataEnv) with hc (nil: http.DefaultClient): GET <metadataURI>/task.
// The answer must name the cluster, the task and the family.
func ReadTask(ctx context.Context, hc *http.Client, metadataURI string) (Task, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	url := strings.TrimSuffix(metadataURI, "/") + "/task"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Task{}, fmt.Errorf("read task metadata: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Task{}, fmt.Errorf("read task metadata: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return Task{}, fmt.Errorf("read task metadata %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return Task{}, fmt.Errorf("read task metadata %s: status %s", url, resp.Status)
	}
	var t Task
	if err := json.Unmarshal(body, &t); err != nil {
		return Task{}, fmt.Errorf("read task metadata %s: %w", url, err)
	}
	var missing []string
	for _, f := range []struct{ name, val string }{{"Cluster", t.Cluster}, {"TaskARN", t.TaskARN}, {"Family", t.Family}} {
		if f.val == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Task{}, fmt.Errorf("read task metadata %s: no %s in the answer", url, strings.Join(missing, ", "))
	}
	return t, nil
}

// CountOthers counts the tasks of self's family in self's cluster that ECS
// means to run (desired status RUNNING), self left out, reading every page.
func CountOthers(ctx context.Context, l Lister, self Task) (int, error) {
	in := &ecs.ListTasksInput{
		Cluster:       aws.String(self.Cluster),
		Family:        aws.String(self.Family),
		DesiredStatus: ecstypes.DesiredStatusRunning,
		MaxResults:    aws.Int32(listPage),
	}
	others := 0
	for {
		out, err := l.ListTasks(ctx, in)
		if err != nil {
			return 0, fmt.Errorf("list tasks of family %s in %s: %w", self.Family, self.Cluster, err)
		}
		for _, arn := range out.TaskArns {
			if arn != self.TaskARN {
				others++
			}
		}
		if aws.ToString(out.NextToken) == "" {
			return others, nil
		}
		next := *in
		next.NextToken = out.NextToken
		in = &next
	}
}

// Decision is the outcome of a check.
type Decision struct {
	// Drain is false only when the cap was reached: the task must not
	// receive anything and should exit 0.
	Drain bool
	// Checked reports whether the count was made; false when there is no
	// cap or the check failed.
	Checked bool
	// Task is the task as its metadata named it (zero when not read).
	Task Task
	// Others is how many other tasks of the family ECS means to run (when
	// Checked).
	Others int
}

// Checker makes the start-up check. Its fields are read-only once Check is
// called; the zero value with Max 0 always drains.
type Checker struct {
	// Max is the cap: the most tasks of the family that may work at once,
	// this one included. 0 means no cap: Check drains without a call.
	Max int
	// MetadataURI is the value of MetadataEnv; empty (not on ECS) makes
	// every capped check fail, so the task drains with a warning.
	MetadataURI string
	// Lister counts the tasks. Required when Max > 0.
	Lister Lister
	// HTTP reads the metadata; default http.DefaultClient.
	HTTP *http.Client
	// CallTimeout bounds the metadata read and the ListTasks paging, each;
	// default DefaultCallTimeout.
	CallTimeout time.Duration
	// Logger receives one line per check; default discard.
	Logger *slog.Logger
	// Metrics receives SkippedMetric and FailureMetric lines; nil emits
	// none.
	Metrics *emf.Writer
}

// Check decides whether this task may drain; see the package comment for
// the rule and the failure policy. A check cut short by ctx (a stop signal
// at start-up) drains without a warning: the drain then stops at once.
func (c *Checker) Check(ctx context.Context) Decision {
	if c.Max <= 0 {
		return Decision{Drain: true}
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := c.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	failed := func(d Decision, err error) Decision {
		if ctx.Err() != nil {
			return d
		}
		log.WarnContext(ctx, "task cap not enforced: draining uncapped", "max_tasks", c.Max,
			"cluster", d.Task.Cluster, "family", d.Task.Family, "error", err.Error(),
			"why", "the check could not be made; an uncapped drain loses nothing, a wrong skip would leave work waiting")
		_ = c.Metrics.Emit([]emf.Metric{{Name: FailureMetric, Unit: emf.Count, Value: 1}}, map[string]any{"error": err.Error()})
		return d
	}
	d := Decision{Drain: true}
	if c.MetadataURI == "" {
		return failed(d, fmt.Errorf("%s is not set: not running on ECS", MetadataEnv))
	}
	if c.Lister == nil {
		return failed(d, errors.New("no ECS client to list tasks with"))
	}
	mctx, cancel := context.WithTimeout(ctx, timeout)
	self, err := ReadTask(mctx, c.HTTP, c.MetadataURI)
	cancel()
	if err != nil {
		return failed(d, err)
	}
	d.Task = self
	lctx, cancel := context.WithTimeout(ctx, timeout)
	others, err := CountOthers(lctx, c.Lister, self)
	timedOut := errors.Is(lctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	cancel()
	if timedOut {
		err = fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	if err != nil {
		return failed(d, err)
	}
	d.Checked, d.Others = true, others
	attrs := []any{"running_tasks", others, "family", self.Family, "cluster", self.Cluster, "max_tasks", c.Max, "task_arn", self.TaskARN}
	if others >= c.Max {
		d.Drain = false
		log.InfoContext(ctx, "drain skipped: task cap reached", append(attrs,
			"reason", fmt.Sprintf("%d tasks of family %s already run, cap %d", others, self.Family, c.Max))...)
		_ = c.Metrics.Emit([]emf.Metric{{Name: SkippedMetric, Unit: emf.Count, Value: 1}}, map[string]any{"family": self.Family})
		return d
	}
	log.InfoContext(ctx, "task cap checked: draining", attrs...)
	return d
}
