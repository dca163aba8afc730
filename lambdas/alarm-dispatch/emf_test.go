package main

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// The dispatcher's line carries exactly the namespace, dimension and
// metrics the EdpAlarmDispatch dashboard charts (internal/names), with the
// cluster as the dimension's value: a metric added here but not to
// names.DispatchMetrics would be charted nowhere.
func TestEMFLineIsWhatTheDashboardCharts(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	o := outcome{Backlog: 130, Running: 3, Requested: 10, Started: 9, Failed: 1}
	if err := writeEMF(&buf, time.Unix(1795000000, 0), "edp-cluster", "edp-backlog", "d1", o); err != nil {
		t.Fatal(err)
	}
	got, err := emf.Decode(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if got.Namespace != names.DispatchMetricNamespace {
		t.Errorf("namespace %q, want %q", got.Namespace, names.DispatchMetricNamespace)
	}
	if diff := cmp.Diff(map[string]string{names.DispatchMetricCluster: "edp-cluster"}, got.Dimensions); diff != "" {
		t.Errorf("dimensions (-want +got):\n%s", diff)
	}
	want := map[string]float64{
		names.MetricBacklog: 130, names.MetricRunningTasks: 3,
		names.MetricTasksRequested: 10, names.MetricTasksStarted: 9, names.MetricTasksFailed: 1,
	}
	if diff := cmp.Diff(want, got.Metrics); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	var emitted []string
	for name := range got.Metrics {
		emitted = append(emitted, name)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(names.DispatchMetrics())), slices.Sorted(slices.Values(emitted))); diff != "" {
		t.Errorf("emitted names are not names.DispatchMetrics (-charted +emitted):\n%s", diff)
	}
}
