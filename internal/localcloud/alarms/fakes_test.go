package alarms

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// fakeResolve resolves the intrinsics of the testdata templates as a
// deployed stack would: Ref → "EdpTest-<id>", GetAtt → "EdpTest-<id>-<attr>";
// a topic's Ref is its ARN.
func fakeResolve(v any) (string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("not an intrinsic: %v", v)
	}
	if id, ok := m["Ref"].(string); ok {
		if id == "AlarmTopicD01E77F9" {
			return "arn:aws:sns:us-east-1:123456789012:EdpTest-AlarmTopic", nil
		}
		return "EdpTest-" + id, nil
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
		return fmt.Sprintf("EdpTest-%v-%v", ga[0], ga[1]), nil
	}
	return "", fmt.Errorf("unsupported intrinsic %v", v)
}

// Physical names the fakes expect in dimensions (see fakeResolve).
const (
	testQueueName   = "EdpTest-PipelineQueueC13966F5-QueueName"
	testClusterName = "EdpTest-PipelineClusterEBBD0A76"
	testServiceName = "EdpTest-ServiceD69D759B-Name"
	// testFunctionName is the dispatch function's name (its Ref).
	testFunctionName = "EdpTest-DispatchDB0A2E2F"
)

// fakeSource serves the queue's metrics and the dispatch function's
// invocations from set values (absent: no data point) and the service's Container Insights metrics from the scaler, as
// if tasks started at once. Any other query is an error.
type fakeSource struct {
	mu     sync.Mutex
	queue  map[string]float64 // by SQS metric name
	scaler *fakeScaler
	fail   error
	reads  int
	// lastRead is when Value last answered.
	lastRead time.Time
}

func (s *fakeSource) set(metric string, v float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue[metric] = v
}

func (s *fakeSource) unset(metric string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.queue, metric)
}

func (s *fakeSource) Value(_ context.Context, q MetricQuery) (float64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	s.lastRead = time.Now()
	if s.fail != nil {
		return 0, false, s.fail
	}
	if q.Period != time.Minute {
		return 0, false, fmt.Errorf("unexpected period %s", q.Period)
	}
	switch q.Namespace {
	case "AWS/SQS":
		if len(q.Dims) != 1 || q.Stat != "Maximum" {
			return 0, false, fmt.Errorf("unexpected query %s", q)
		}
		if name := q.Dims["QueueName"]; name != testQueueName {
			// The dead-letter queues of the alert alarms: set as
			// "<queue name>/<metric>", else no data point.
			v, ok := s.queue[name+"/"+q.Name]
			return v, ok, nil
		}
		v, ok := s.queue[q.Name]
		return v, ok, nil
	case "AWS/Lambda":
		if len(q.Dims) != 1 || q.Dims["FunctionName"] != testFunctionName || q.Stat != "Sum" || q.Name != invocations {
			return 0, false, fmt.Errorf("unexpected query %s", q)
		}
		v, ok := s.queue[q.Name]
		return v, ok, nil
	case "ECS/ContainerInsights":
		if len(q.Dims) != 2 || q.Dims["ClusterName"] != testClusterName || q.Dims["ServiceName"] != testServiceName || q.Stat != "Average" {
			return 0, false, fmt.Errorf("unexpected query %s", q)
		}
		if q.Name == "DesiredTaskCount" || q.Name == "RunningTaskCount" {
			return float64(s.scaler.current()), true, nil
		}
	}
	return 0, false, fmt.Errorf("unexpected query %s", q)
}

// fakeScaler is the service's desired count; sets records every change.
type fakeScaler struct {
	mu      sync.Mutex
	desired int
	sets    []int
}

func (s *fakeScaler) current() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired
}

func (s *fakeScaler) history() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sets)
}

func (s *fakeScaler) Desired(context.Context) (int, error) { return s.current(), nil }

func (s *fakeScaler) SetDesired(_ context.Context, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.desired = n
	s.sets = append(s.sets, n)
	return nil
}

type notification struct {
	topic  string
	change AlarmStateChange
}

type fakeNotifier struct {
	mu   sync.Mutex
	sent []notification
}

func (n *fakeNotifier) Notify(_ context.Context, topic string, c AlarmStateChange) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, notification{topic, c})
	return nil
}

func (n *fakeNotifier) all() []notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.sent)
}
