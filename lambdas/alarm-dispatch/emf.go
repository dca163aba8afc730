package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Metric names and namespace of the dispatcher's CloudWatch Embedded Metric
// Format line. Alarms and dashboards refer to them by these names.
const (
	MetricNamespace      = "edp/alarm-dispatch"
	MetricDimension      = "Cluster"
	MetricTasksRequested = "TasksRequested"
	MetricTasksStarted   = "TasksStarted"
	MetricTasksFailed    = "TasksFailed"
	MetricBacklog        = "Backlog"
	MetricRunningTasks   = "RunningTasks"
)

// emfMetric is one metric definition of an EMF directive.
type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// emfLine is the JSON object CloudWatch Logs turns into metrics; the extra
// snake_case members stay searchable in Logs Insights without becoming
// dimensions.
type emfLine struct {
	AWS            emfMeta `json:"_aws"`
	Cluster        string  `json:"Cluster"`
	TasksRequested int     `json:"TasksRequested"`
	TasksStarted   int     `json:"TasksStarted"`
	TasksFailed    int     `json:"TasksFailed"`
	Backlog        int64   `json:"Backlog"`
	RunningTasks   int     `json:"RunningTasks"`
	AlarmName      string  `json:"alarm_name"`
	DispatchID     string  `json:"dispatch_id"`
	TasksSkipped   int     `json:"tasks_skipped"`
}

// writeEMF writes one EMF line (a single JSON object and a newline) for o.
func writeEMF(w io.Writer, at time.Time, cluster, alarm, dispatchID string, o outcome) error {
	line := emfLine{
		AWS: emfMeta{
			Timestamp: at.UnixMilli(),
			CloudWatchMetrics: []emfDirective{{
				Namespace:  MetricNamespace,
				Dimensions: [][]string{{MetricDimension}},
				Metrics: []emfMetric{
					{Name: MetricTasksRequested, Unit: "Count"},
					{Name: MetricTasksStarted, Unit: "Count"},
					{Name: MetricTasksFailed, Unit: "Count"},
					{Name: MetricBacklog, Unit: "Count"},
					{Name: MetricRunningTasks, Unit: "Count"},
				},
			}},
		},
		Cluster:        cluster,
		TasksRequested: o.Requested,
		TasksStarted:   o.Started,
		TasksFailed:    o.Failed,
		Backlog:        o.Backlog,
		RunningTasks:   o.Running,
		AlarmName:      alarm,
		DispatchID:     dispatchID,
		TasksSkipped:   o.Skipped,
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encode metrics line: %w", err)
	}
	// One Write call per line, so concurrent writers never interleave it.
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("write metrics line: %w", err)
	}
	return nil
}
