package stacks_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/stacks"
)

// chart is one metric line of a dashboard graph.
type chart struct {
	namespace, name, stat string
	dims                  map[string]string
}

func (m chart) String() string {
	keys := make([]string, 0, len(m.dims))
	for k := range m.dims {
		keys = append(keys, k+"="+m.dims[k])
	}
	sort.Strings(keys)
	return fmt.Sprintf("%s %s {%s} %s", m.namespace, m.name, strings.Join(keys, ","), m.stat)
}

// charts reads every metric line of a dashboard body's graphs: the array
// form ["namespace", "name", "dim", "value", ..., {"stat": ...}].
func charts(body map[string]any) ([]chart, error) {
	var out []chart
	for _, w := range anyList(body["widgets"]) {
		wm, _ := w.(map[string]any)
		if wm["type"] != "metric" {
			continue
		}
		p, _ := wm["properties"].(map[string]any)
		for _, line := range anyList(p["metrics"]) {
			parts := anyList(line)
			var ss []string
			var opts map[string]any
			for _, e := range parts {
				switch e := e.(type) {
				case string:
					if e == "." || e == "..." {
						return nil, fmt.Errorf("metric line %s abbreviates; the check reads full lines only", asJSON(line))
					}
					ss = append(ss, e)
				case map[string]any:
					opts = e
				}
			}
			if len(ss) < 2 || len(ss)%2 != 0 {
				return nil, fmt.Errorf("metric line %s: want a namespace, a name and dimension pairs", asJSON(line))
			}
			c := chart{namespace: ss[0], name: ss[1], dims: map[string]string{}}
			c.stat, _ = opts["stat"].(string)
			for i := 2; i < len(ss); i += 2 {
				c.dims[ss[i]] = ss[i+1]
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// dashboardOf is the stack's one dashboard, resolved: its name and body.
func dashboardOf(c *checker) (string, map[string]any, error) {
	var found []string
	for lid, r := range c.res {
		if r.Type == "AWS::CloudWatch::Dashboard" {
			found = append(found, lid)
		}
	}
	if len(found) != 1 {
		return "", nil, fmt.Errorf("%d dashboards, want 1", len(found))
	}
	p := c.res[found[0]].Properties
	raw, ok := p["DashboardBody"].(string)
	if !ok {
		return "", nil, fmt.Errorf("dashboard body %s does not resolve to a string", asJSON(p["DashboardBody"]))
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(raw), &body); err != nil {
		return "", nil, fmt.Errorf("dashboard body: %w", err)
	}
	name, _ := p["DashboardName"].(string)
	return name, body, nil
}

// consumerMode is the mode the stack's consumer tasks run in: the
// container's command in the task definition.
func consumerMode(c *checker) (string, error) {
	for _, r := range c.res {
		if r.Type != "AWS::ECS::TaskDefinition" {
			continue
		}
		for _, cd := range anyList(r.Properties["ContainerDefinitions"]) {
			m, _ := cd.(map[string]any)
			if m["Name"] == names.ContainerName {
				if cmd := strs(m["Command"]); len(cmd) > 0 {
					return cmd[0], nil
				}
			}
		}
	}
	return "", errors.New("no consumer container with a command")
}

// checkDashboard lists what the stack's dashboard (body, resolved) fails to
// chart of the stack's own resources: its queues' depths and age, the
// cluster's (and service's) tasks, every metric the consumer emits in the
// stack's mode (names.ConsumerMetrics), the dispatch function and every
// metric it emits (names.DispatchMetrics), and the state of every alarm.
func checkDashboard(c *checker, body map[string]any) []error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	got, err := charts(body)
	if err != nil {
		return []error{err}
	}
	lid := func(typ, id string) string {
		l, err := c.logicalID(typ, id)
		if err != nil {
			fail("%v", err)
		}
		return l
	}
	want := func(namespace, name string, dims map[string]string, stats ...string) {
		for _, stat := range stats {
			w := chart{namespace: namespace, name: name, dims: dims, stat: stat}
			if !slices.ContainsFunc(got, func(g chart) bool {
				return g.namespace == w.namespace && g.name == w.name && (stat == "" || g.stat == stat) && asJSON(g.dims) == asJSON(w.dims)
			}) {
				fail("no chart of %s", w)
			}
		}
	}
	queueName := func(id string) map[string]string {
		return map[string]string{"QueueName": c.ref(lid("AWS::SQS::Queue", id), "QueueName")}
	}

	queue := queueName("PipelineQueue")
	want("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue, "Maximum")
	want("AWS/SQS", "ApproximateNumberOfMessagesNotVisible", queue, "Maximum")
	want("AWS/SQS", "ApproximateAgeOfOldestMessage", queue, "Maximum")
	dlqs := []string{"PipelineDeadLetterQueue", "PipelineDeliveryDLQ"}
	if _, err := c.logicalID("AWS::SQS::Queue", "DispatchFailures"); err == nil {
		dlqs = append(dlqs, "DispatchFailures")
	}
	for _, q := range dlqs {
		want("AWS/SQS", "ApproximateNumberOfMessagesVisible", queueName(q), "Maximum")
	}

	cluster := c.ref(lid("AWS::ECS::Cluster", "PipelineCluster"), "Ref")
	want(stacks.ContainerInsightsNamespace, "RunningTaskCount", map[string]string{"ClusterName": cluster}, "")
	if svc, err := c.logicalID("AWS::ECS::Service", "Service"); err == nil {
		dims := map[string]string{"ClusterName": cluster, "ServiceName": c.ref(svc, "Name")}
		want(stacks.ContainerInsightsNamespace, "RunningTaskCount", dims, "")
		want(stacks.ContainerInsightsNamespace, "DesiredTaskCount", dims, "")
	}

	mode, err := consumerMode(c)
	if err != nil {
		fail("%v", err)
	}
	modeDim := map[string]string{names.ConsumerMetricMode: mode, names.ConsumerMetricCluster: cluster}
	for _, name := range names.ConsumerMetrics(mode) {
		want(names.ConsumerMetricNamespace, name, modeDim, "")
	}
	want(names.ConsumerMetricNamespace, names.MetricJobsSucceeded, modeDim, "Sum")
	want(names.ConsumerMetricNamespace, names.MetricJobsFailed, modeDim, "Sum")
	want(names.ConsumerMetricNamespace, names.MetricJobDuration, modeDim, "p50", "p90")
	want(names.ConsumerMetricNamespace, names.MetricQueueWait, modeDim, "p50", "p90")

	fn, fnErr := c.logicalID("AWS::Lambda::Function", "Dispatch")
	if fnErr == nil {
		f := map[string]string{"FunctionName": c.ref(fn, "Ref")}
		want("AWS/Lambda", "Invocations", f, "Sum")
		want("AWS/Lambda", "Errors", f, "Sum")
		want("AWS/Lambda", "Duration", f, "")
		for _, name := range names.DispatchMetrics() {
			want(names.DispatchMetricNamespace, name, map[string]string{names.DispatchMetricCluster: cluster}, "")
		}
	}
	// Nothing charted in the edp namespaces that no task of this stack
	// emits: another mode, another cluster, a name nobody emits.
	for _, g := range got {
		switch {
		case g.namespace == names.ConsumerMetricNamespace &&
			(asJSON(g.dims) != asJSON(modeDim) || !slices.Contains(names.ConsumerMetrics(mode), g.name)):
			fail("chart %s: the stack's %s tasks emit no such metric", g, mode)
		case g.namespace == names.DispatchMetricNamespace &&
			(fnErr != nil || g.dims[names.DispatchMetricCluster] != cluster || len(g.dims) != 1 || !slices.Contains(names.DispatchMetrics(), g.name)):
			fail("chart %s: the stack's dispatch function emits no such metric", g)
		}
	}

	var alarms, shown []string
	for l, r := range c.raw {
		if r.Type == "AWS::CloudWatch::Alarm" {
			alarms = append(alarms, c.arnOf(l))
		}
	}
	for _, w := range anyList(body["widgets"]) {
		if wm, _ := w.(map[string]any); wm["type"] == "alarm" {
			p, _ := wm["properties"].(map[string]any)
			shown = append(shown, strs(p["alarms"])...)
		}
	}
	sort.Strings(alarms)
	sort.Strings(shown)
	if !slices.Equal(alarms, shown) {
		fail("alarm widgets show %v, want every alarm of the stack %v", shown, alarms)
	}
	return errs
}

// Every stack has one dashboard, named after the stack, charting its own
// resources and exactly the metrics its consumer (and dispatch function)
// emit, and an output with the dashboard's console address.
func TestEveryStackHasADashboardOfItsOwnResources(t *testing.T) {
	for _, b := range defaultBuilds() {
		t.Run(b.name, func(t *testing.T) {
			c := b.checker()
			name, body, err := dashboardOf(c)
			if err != nil {
				t.Fatal(err)
			}
			if name != b.name {
				t.Errorf("dashboard name %q, want the stack's name %q", name, b.name)
			}
			for _, err := range checkDashboard(c, body) {
				t.Error(err)
			}
			// The local cloud deploys through moto's CloudFormation, which
			// models no alarm: a reference to one fails the deploy.
			for lid, r := range c.raw {
				if r.Type != "AWS::CloudWatch::Dashboard" {
					continue
				}
				for alarm := range resourcesOf(b.doc, "AWS::CloudWatch::Alarm") {
					if s := asJSON(r.Properties["DashboardBody"]); strings.Contains(s, `"`+alarm+`"`) {
						t.Errorf("dashboard %s refers to the alarm %s; name it by an ARN built from its name", lid, alarm)
					}
				}
			}
			outputs, _ := b.doc["Outputs"].(map[string]any)
			out, _ := outputs[names.OutputDashboard].(map[string]any)
			wantURL := "https://" + b.env.Region + ".console.aws.amazon.com/cloudwatch/home?region=" + b.env.Region + "#dashboards:name=" + b.name
			if got := c.resolve(out["Value"]); got != wantURL {
				t.Errorf("output %s = %v, want %s", names.OutputDashboard, got, wantURL)
			}
		})
	}
}

// The dashboard check fails when a chart is missing, names another
// resource or mode, or an alarm is left out.
func TestDashboardCheckMutations(t *testing.T) {
	var b build
	for _, d := range defaultBuilds() {
		if d.name == names.StackAlarmDispatch {
			b = d
		}
	}
	c := b.checker()
	_, body, err := dashboardOf(c)
	if err != nil {
		t.Fatal(err)
	}
	if errs := checkDashboard(c, body); len(errs) != 0 {
		t.Fatalf("unmutated dashboard: %v", errs)
	}
	// Each mutation edits the resolved body's JSON text.
	raw := asJSON(body)
	queue := c.ref(mustLID(t, c, "AWS::SQS::Queue", "PipelineQueue"), "QueueName")
	dlq := c.ref(mustLID(t, c, "AWS::SQS::Queue", "PipelineDeadLetterQueue"), "QueueName")
	mutations := map[string]func(string) string{
		"a consumer metric renamed": func(s string) string {
			return strings.Replace(s, `"`+names.MetricJobsFailed+`"`, `"JobsRetried"`, 1)
		},
		"the other mode": func(s string) string {
			return strings.ReplaceAll(s, `"Mode","drain"`, `"Mode","serve"`)
		},
		"another queue": func(s string) string { return strings.ReplaceAll(s, `"`+queue+`"`, `"`+dlq+`"`) },
		"the consumer namespace": func(s string) string {
			return strings.ReplaceAll(s, `"`+names.ConsumerMetricNamespace+`"`, `"edp/worker"`)
		},
		"a dispatch metric dropped": func(s string) string {
			return strings.Replace(s, `"`+names.MetricTasksFailed+`"`, `"`+names.MetricTasksStarted+`"`, 1)
		},
		"p90 dropped":              func(s string) string { return strings.ReplaceAll(s, `"p90"`, `"Average"`) },
		"an alarm left out":        func(s string) string { return strings.Replace(s, `"alarms":["`, `"alarms":["x`, 1) },
		"no running tasks charted": func(s string) string { return strings.ReplaceAll(s, `"RunningTaskCount"`, `"PendingTaskCount"`) },
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			m := mutate(raw)
			if m == raw {
				t.Fatal("mutation changed nothing")
			}
			var mb map[string]any
			if err := json.Unmarshal([]byte(m), &mb); err != nil {
				t.Fatal(err)
			}
			if errs := checkDashboard(c, mb); len(errs) == 0 {
				t.Error("the check accepts the mutated dashboard")
			}
		})
	}
}

func mustLID(t *testing.T, c *checker, typ, id string) string {
	t.Helper()
	l, err := c.logicalID(typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}
