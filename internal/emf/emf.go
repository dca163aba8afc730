// Package emf writes CloudWatch Embedded Metric Format lines: one JSON
// object per line that CloudWatch Logs turns into metrics when the line
// reaches a log group (the awslogs driver sends stdout there), so no agent
// and no PutMetricData permission is needed.
//
// A Writer is safe for concurrent use; each Emit is one Write of one line.
package emf

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"time"
)

// Unit is a CloudWatch metric unit.
type Unit string

// Units used by edp.
const (
	Count        Unit = "Count"
	Milliseconds Unit = "Milliseconds"
)

// Metric is one value in a line.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Writer emits EMF lines to W.
type Writer struct {
	// W receives the lines; nil discards them.
	W io.Writer
	// Namespace is the CloudWatch namespace; required when W is set.
	Namespace string
	// Dimensions are added to every line as dimension keys and values
	// (e.g. {"Mode": "serve"}); may be empty.
	Dimensions map[string]string
	// Now stamps lines; default time.Now.
	Now func() time.Time

	mu sync.Mutex
}

// Emit writes one line with the metrics and extra properties (searchable
// in CloudWatch Logs Insights but not metrics). Property names must not
// collide with metric or dimension names; metrics win when they do.
func (w *Writer) Emit(metrics []Metric, props map[string]any) error {
	if w == nil || w.W == nil || len(metrics) == 0 {
		return nil
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	type metricDef struct {
		Name string `json:"Name"`
		Unit Unit   `json:"Unit,omitempty"`
	}
	type directive struct {
		Namespace  string      `json:"Namespace"`
		Dimensions [][]string  `json:"Dimensions"`
		Metrics    []metricDef `json:"Metrics"`
	}
	// Never nil: a dimension set must be a JSON array, empty when there are
	// no dimensions ([[]]), or CloudWatch rejects the line.
	dims := append([]string{}, slices.Sorted(maps.Keys(w.Dimensions))...)
	d := directive{Namespace: w.Namespace, Dimensions: [][]string{dims}}
	line := make(map[string]any, len(props)+len(dims)+len(metrics)+1)
	maps.Copy(line, props)
	for _, k := range dims {
		line[k] = w.Dimensions[k]
	}
	for _, m := range metrics {
		d.Metrics = append(d.Metrics, metricDef{Name: m.Name, Unit: m.Unit})
		line[m.Name] = m.Value
	}
	line["_aws"] = map[string]any{
		"Timestamp":         now().UnixMilli(),
		"CloudWatchMetrics": []directive{d},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("encode EMF line: %w", err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.W.Write(b); err != nil {
		return fmt.Errorf("write EMF line: %w", err)
	}
	return nil
}

// Line is one EMF line read back: its namespace, its dimensions with their
// values and its metrics with their values.
type Line struct {
	Namespace  string
	Dimensions map[string]string
	Metrics    map[string]float64
}

// Decode reads one line as CloudWatch would: the directive's namespace,
// dimension keys and metric names, each looked up in the line's members.
// It accepts the lines Emit writes (one directive, one dimension set) and
// reports a directive that names a member the line lacks or holds with the
// wrong type.
func Decode(line []byte) (Line, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Line{}, fmt.Errorf("decode EMF line: %w", err)
	}
	var meta struct {
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name string }
		}
	}
	if err := json.Unmarshal(raw["_aws"], &meta); err != nil {
		return Line{}, fmt.Errorf("decode EMF line: _aws: %w", err)
	}
	if n := len(meta.CloudWatchMetrics); n != 1 {
		return Line{}, fmt.Errorf("decode EMF line: %d directives, want 1", n)
	}
	d := meta.CloudWatchMetrics[0]
	if n := len(d.Dimensions); n != 1 {
		return Line{}, fmt.Errorf("decode EMF line: %d dimension sets, want 1", n)
	}
	out := Line{Namespace: d.Namespace, Dimensions: map[string]string{}, Metrics: map[string]float64{}}
	for _, k := range d.Dimensions[0] {
		var v string
		if err := json.Unmarshal(raw[k], &v); err != nil {
			return Line{}, fmt.Errorf("decode EMF line: dimension %q: %w", k, err)
		}
		out.Dimensions[k] = v
	}
	for _, m := range d.Metrics {
		var v float64
		if err := json.Unmarshal(raw[m.Name], &v); err != nil {
			return Line{}, fmt.Errorf("decode EMF line: metric %q: %w", m.Name, err)
		}
		out.Metrics[m.Name] = v
	}
	return out, nil
}
