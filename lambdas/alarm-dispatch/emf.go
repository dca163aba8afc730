package main

import (
	"io"
	"time"

	"github.com/edp-pipelines/edp/internal/emf"
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

// writeEMF writes one EMF line (a single JSON object and a newline) for o.
func writeEMF(w io.Writer, at time.Time, cluster, alarm, dispatchID string, o outcome) error {
	ew := &emf.Writer{
		W:          w,
		Namespace:  MetricNamespace,
		Dimensions: map[string]string{MetricDimension: cluster},
		Now:        func() time.Time { return at },
	}
	// snake_case properties stay searchable in Logs Insights without
	// becoming metrics or dimensions.
	return ew.Emit([]emf.Metric{
		{Name: MetricTasksRequested, Unit: emf.Count, Value: float64(o.Requested)},
		{Name: MetricTasksStarted, Unit: emf.Count, Value: float64(o.Started)},
		{Name: MetricTasksFailed, Unit: emf.Count, Value: float64(o.Failed)},
		{Name: MetricBacklog, Unit: emf.Count, Value: float64(o.Backlog)},
		{Name: MetricRunningTasks, Unit: emf.Count, Value: float64(o.Running)},
	}, map[string]any{"alarm_name": alarm, "dispatch_id": dispatchID, "tasks_skipped": o.Skipped, "tasks_capped": o.Capped})
}
