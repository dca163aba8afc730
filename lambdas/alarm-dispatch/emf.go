package main

import (
	"io"
	"time"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// Metric names and namespace of the dispatcher's CloudWatch Embedded Metric
// Format line: internal/names declares them, so the stacks' dashboards chart
// exactly what this line carries.
const (
	MetricNamespace      = names.DispatchMetricNamespace
	MetricDimension      = names.DispatchMetricCluster
	MetricTasksRequested = names.MetricTasksRequested
	MetricTasksStarted   = names.MetricTasksStarted
	MetricTasksFailed    = names.MetricTasksFailed
	MetricBacklog        = names.MetricBacklog
	MetricRunningTasks   = names.MetricRunningTasks
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
