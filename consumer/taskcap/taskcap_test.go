package taskcap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// The task the fixture describes.
const (
	fixtureCluster = "arn:aws:ecs:eu-west-1:111122223333:cluster/EdpCron-PipelineCluster0A1B2C3D-xyz"
	fixtureTask    = "arn:aws:ecs:eu-west-1:111122223333:task/EdpCron-PipelineCluster0A1B2C3D-xyz/5f0c2d9e8a7b4c1d9e3f2a1b0c9d8e7f"
	fixtureFamily  = "EdpCronPipelineTask4E5F6A7B"
	metadataURI    = "http://169.254.170.2/v4/5f0c2d9e8a7b4c1d9e3f2a1b0c9d8e7f-2816473902"
)

// roundTrip is a fake HTTP transport: the task metadata endpoint without a
// socket (so it also works inside a synctest bubble).
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// metadata serves body with status at <metadataURI>/task and 404 elsewhere.
func metadata(t *testing.T, status int, body []byte) *http.Client {
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if r.Method != http.MethodGet || r.URL.String() != metadataURI+"/task" {
			t.Errorf("metadata request %s %s, want GET %s/task", r.Method, r.URL, metadataURI)
			status, body = http.StatusNotFound, nil
		}
		return &http.Response{StatusCode: status, Status: http.StatusText(status), Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
	})}
}

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/task-metadata-v4-fargate.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// listFunc is a fake Lister.
type listFunc func(ctx context.Context, in *ecs.ListTasksInput) (*ecs.ListTasksOutput, error)

func (f listFunc) ListTasks(ctx context.Context, in *ecs.ListTasksInput, _ ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	return f(ctx, in)
}

// pages is a Lister that answers with arns in pages of ECS's size and
// records every request.
type pages struct {
	arns []string
	mu   sync.Mutex
	reqs []ecs.ListTasksInput
}

func (p *pages) ListTasks(_ context.Context, in *ecs.ListTasksInput, _ ...func(*ecs.Options)) (*ecs.ListTasksOutput, error) {
	p.mu.Lock()
	p.reqs = append(p.reqs, *in)
	p.mu.Unlock()
	start := 0
	if in.NextToken != nil {
		fmt.Sscan(*in.NextToken, &start)
	}
	end := min(start+int(aws.ToInt32(in.MaxResults)), len(p.arns))
	out := &ecs.ListTasksOutput{TaskArns: p.arns[start:end]}
	if end < len(p.arns) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

// others are n task ARNs of the fixture's cluster other than the fixture's.
func others(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("arn:aws:ecs:eu-west-1:111122223333:task/EdpCron-PipelineCluster0A1B2C3D-xyz/%032x", i+1)
	}
	return out
}

func TestReadTaskFollowsTheV4Shape(t *testing.T) {
	t.Parallel()
	got, err := ReadTask(t.Context(), metadata(t, http.StatusOK, fixture(t)), metadataURI+"/")
	if err != nil {
		t.Fatal(err)
	}
	want := Task{Cluster: fixtureCluster, TaskARN: fixtureTask, Family: fixtureFamily}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
}

func TestReadTaskRefusesWhatItCannotUse(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		status int
		body   string
		want   string
	}{
		"agent error":    {status: http.StatusInternalServerError, body: "boom", want: "status Internal Server Error"},
		"not JSON":       {status: http.StatusOK, body: "<html>", want: "invalid character"},
		"missing fields": {status: http.StatusOK, body: `{"Cluster":"c","Revision":"3"}`, want: "no TaskARN, Family in the answer"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadTask(t.Context(), metadata(t, tt.status, []byte(tt.body)), metadataURI)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// logLines decodes the JSON log lines of buf.
func logLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.Lines(s) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestCheckDecides(t *testing.T) {
	t.Parallel()
	self := fixtureTask
	tests := map[string]struct {
		max      int
		uri      string         // default metadataURI
		status   int            // of the metadata answer; default 200 with the fixture
		tasks    []string       // what ListTasks lists
		listErr  error          // ListTasks fails
		want     Decision       // Task is filled in from the fixture when Checked
		wantLog  string         // the message of the one log line
		wantAttr map[string]any // some of its attributes
		metric   string         // the EMF metric emitted, "" none
		calls    int            // ListTasks calls
	}{
		"below cap drains": {max: 3, tasks: append([]string{self}, others(2)...),
			want: Decision{Drain: true, Checked: true, Others: 2}, wantLog: "task cap checked: draining",
			wantAttr: map[string]any{"running_tasks": 2.0, "max_tasks": 3.0, "family": fixtureFamily, "cluster": fixtureCluster}, calls: 1},
		"at cap skips": {max: 3, tasks: append(others(3), self),
			want: Decision{Drain: false, Checked: true, Others: 3}, wantLog: "drain skipped: task cap reached",
			wantAttr: map[string]any{"reason": "3 tasks of family " + fixtureFamily + " already run, cap 3", "running_tasks": 3.0},
			metric:   SkippedMetric, calls: 1},
		"above cap skips": {max: 1, tasks: others(4),
			want: Decision{Drain: false, Checked: true, Others: 4}, wantLog: "drain skipped: task cap reached", metric: SkippedMetric, calls: 1},
		// Counting itself, a task would see 2 ≥ 2 and skip.
		"self is not counted": {max: 2, tasks: []string{others(1)[0], self},
			want: Decision{Drain: true, Checked: true, Others: 1}, wantLog: "task cap checked: draining", calls: 1},
		"self not listed yet": {max: 2, tasks: others(1),
			want: Decision{Drain: true, Checked: true, Others: 1}, wantLog: "task cap checked: draining", calls: 1},
		"every page counts": {max: 250, tasks: append(others(250), self),
			want: Decision{Drain: false, Checked: true, Others: 250}, wantLog: "drain skipped: task cap reached", metric: SkippedMetric, calls: 3},
		"no cap makes no call": {max: 0, uri: "-", want: Decision{Drain: true}},
		"metadata missing drains with a warning": {max: 1, uri: "-", tasks: others(5),
			want: Decision{Drain: true}, wantLog: "task cap not enforced: draining uncapped",
			wantAttr: map[string]any{"level": "WARN", "error": MetadataEnv + " is not set: not running on ECS"}, metric: FailureMetric},
		"metadata unreadable drains with a warning": {max: 1, status: http.StatusInternalServerError, tasks: others(5),
			want: Decision{Drain: true}, wantLog: "task cap not enforced: draining uncapped", wantAttr: map[string]any{"level": "WARN"}, metric: FailureMetric},
		"list failure drains with a warning": {max: 1, listErr: errors.New("AccessDeniedException: not authorized to perform ecs:ListTasks"),
			want: Decision{Drain: true}, wantLog: "task cap not enforced: draining uncapped",
			wantAttr: map[string]any{"level": "WARN", "family": fixtureFamily}, metric: FailureMetric, calls: 1},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := &pages{arns: tt.tasks}
			var lister Lister = p
			if tt.listErr != nil {
				lister = listFunc(func(_ context.Context, in *ecs.ListTasksInput) (*ecs.ListTasksOutput, error) {
					p.mu.Lock()
					p.reqs = append(p.reqs, *in)
					p.mu.Unlock()
					return nil, tt.listErr
				})
			}
			uri := metadataURI
			if tt.uri == "-" {
				uri = ""
			}
			status := tt.status
			if status == 0 {
				status = http.StatusOK
			}
			var logs, metrics syncbuf.Buffer
			c := &Checker{
				Max: tt.max, MetadataURI: uri, Lister: lister, HTTP: metadata(t, status, fixture(t)),
				Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
				Metrics: &emf.Writer{W: &metrics, Namespace: "edp/consumer"},
			}
			got := c.Check(t.Context())
			want := tt.want
			if want.Checked || tt.listErr != nil {
				want.Task = Task{Cluster: fixtureCluster, TaskARN: fixtureTask, Family: fixtureFamily}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}

			if len(p.reqs) != tt.calls {
				t.Errorf("%d ListTasks calls, want %d", len(p.reqs), tt.calls)
			}
			for i, in := range p.reqs {
				if aws.ToString(in.Cluster) != fixtureCluster || aws.ToString(in.Family) != fixtureFamily ||
					in.DesiredStatus != ecstypes.DesiredStatusRunning || aws.ToInt32(in.MaxResults) != 100 {
					t.Errorf("ListTasks call %d: cluster %q family %q status %q max %d, want the task's own cluster and family, RUNNING, 100",
						i, aws.ToString(in.Cluster), aws.ToString(in.Family), in.DesiredStatus, aws.ToInt32(in.MaxResults))
				}
				if (i == 0) != (in.NextToken == nil) {
					t.Errorf("ListTasks call %d: next token %v", i, in.NextToken)
				}
			}

			lines := logLines(t, logs.String())
			if tt.wantLog == "" {
				if len(lines) != 0 {
					t.Errorf("log lines %v, want none", lines)
				}
			} else if len(lines) != 1 || lines[0]["msg"] != tt.wantLog {
				t.Errorf("log lines %v, want one %q", lines, tt.wantLog)
			} else {
				for k, v := range tt.wantAttr {
					if lines[0][k] != v {
						t.Errorf("log attribute %s = %v, want %v", k, lines[0][k], v)
					}
				}
			}
			m := metrics.String()
			if tt.metric == "" && m != "" || tt.metric != "" && (strings.Count(m, "\n") != 1 || !strings.Contains(m, `"`+tt.metric+`":1`)) {
				t.Errorf("metrics %q, want one %s line", m, tt.metric)
			}
			if m != "" {
				// Only drain tasks check a cap: what they emit, the drain
				// stacks' dashboards must chart.
				d, err := emf.Decode([]byte(m))
				if err != nil {
					t.Fatal(err)
				}
				for name := range d.Metrics {
					if !slices.Contains(names.ConsumerMetrics(names.ModeDrain), name) {
						t.Errorf("metric %s is not in names.ConsumerMetrics(drain): no dashboard charts it", name)
					}
				}
			}
		})
	}
}

// A ListTasks call that never answers holds the start for CallTimeout,
// not forever; the task then drains uncapped.
func TestCheckGivesUpOnASilentECS(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var logs syncbuf.Buffer
		c := &Checker{
			Max: 1, MetadataURI: metadataURI, HTTP: metadata(t, http.StatusOK, fixture(t)),
			Lister: listFunc(func(ctx context.Context, _ *ecs.ListTasksInput) (*ecs.ListTasksOutput, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}),
			Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		}
		start := time.Now()
		d := c.Check(t.Context())
		if took := time.Since(start); took != DefaultCallTimeout {
			t.Errorf("check took %v, want the call timeout %v", took, DefaultCallTimeout)
		}
		if !d.Drain || d.Checked {
			t.Errorf("decision %+v, want an unchecked drain", d)
		}
		if !strings.Contains(logs.String(), "no answer within 10s") {
			t.Errorf("log %q does not say the call timed out", logs.String())
		}
	})
}

// A stop signal during the check is no failure: no warning, no metric.
func TestCheckStoppedBySignalDrainsQuietly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var logs, metrics syncbuf.Buffer
	c := &Checker{
		Max: 1, MetadataURI: metadataURI, HTTP: metadata(t, http.StatusOK, fixture(t)),
		Lister: listFunc(func(ctx context.Context, _ *ecs.ListTasksInput) (*ecs.ListTasksOutput, error) {
			cancel()
			return nil, ctx.Err()
		}),
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
		Metrics: &emf.Writer{W: &metrics, Namespace: "edp/consumer"},
	}
	if d := c.Check(ctx); !d.Drain {
		t.Errorf("decision %+v, want drain", d)
	}
	if logs.String() != "" || metrics.String() != "" {
		t.Errorf("logs %q, metrics %q: want none", logs.String(), metrics.String())
	}
}
