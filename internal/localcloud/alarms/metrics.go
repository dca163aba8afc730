package alarms

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// MetricQuery names one CloudWatch metric statistic over one period.
type MetricQuery struct {
	Namespace string
	Name      string
	// Dims are the dimensions, values resolved to physical names.
	Dims   map[string]string
	Stat   string
	Period time.Duration
}

// key identifies the query within one evaluation round.
func (q MetricQuery) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\x00%s\x00%s\x00%d", q.Namespace, q.Name, q.Stat, q.Period)
	for _, k := range slices.Sorted(maps.Keys(q.Dims)) {
		fmt.Fprintf(&b, "\x00%s=%s", k, q.Dims[k])
	}
	return b.String()
}

func (q MetricQuery) String() string {
	var dims []string
	for _, k := range slices.Sorted(maps.Keys(q.Dims)) {
		dims = append(dims, k+"="+q.Dims[k])
	}
	return fmt.Sprintf("%s %s{%s} %s/%s", q.Namespace, q.Name, strings.Join(dims, ","), q.Stat, q.Period)
}

// Source supplies data points: the value of the statistic over the period
// that just ended. ok false means no data point (CloudWatch would have
// none, e.g. SQS metrics of an inactive queue); an error means the value
// could not be read, which is not the same as missing data (see Loop.Step).
type Source interface {
	Value(ctx context.Context, q MetricQuery) (v float64, ok bool, err error)
}

// MetricDataQuery is one entry of a Metrics list: a metric statistic or an
// expression over other entries.
type MetricDataQuery struct {
	ID    string
	Label string
	// Exactly one of Metric and Expression is set.
	Metric     *MetricQuery
	Expression *Expr
	ReturnData bool
}

// MetricSet is an alarm's or a target-tracking policy's metrics: what it
// evaluates each period is the one entry with ReturnData.
type MetricSet struct {
	Queries []MetricDataQuery
	// order evaluates expressions after what they use; ret is the result.
	order []int
	ret   int
}

// NewMetricSet checks the queries (unique ids, known references, no cycles,
// exactly one ReturnData) and orders the expressions.
func NewMetricSet(queries []MetricDataQuery) (*MetricSet, error) {
	if len(queries) == 0 {
		return nil, errors.New("no metrics")
	}
	byID := map[string]int{}
	ret := -1
	for i, q := range queries {
		if q.ID == "" {
			return nil, fmt.Errorf("metrics[%d]: no Id", i)
		}
		if _, dup := byID[q.ID]; dup {
			return nil, fmt.Errorf("metrics: duplicate Id %q", q.ID)
		}
		byID[q.ID] = i
		if (q.Metric == nil) == (q.Expression == nil) {
			return nil, fmt.Errorf("metrics %q: needs exactly one of MetricStat and Expression", q.ID)
		}
		if q.ReturnData {
			if ret >= 0 {
				return nil, fmt.Errorf("metrics: both %q and %q have ReturnData; exactly one may", queries[ret].ID, q.ID)
			}
			ret = i
		}
	}
	if ret < 0 {
		return nil, errors.New("metrics: no entry has ReturnData")
	}
	for _, q := range queries {
		if q.Expression == nil {
			continue
		}
		for _, id := range q.Expression.IDs() {
			if _, ok := byID[id]; !ok {
				return nil, fmt.Errorf("metrics %q: expression %q uses unknown id %q", q.ID, q.Expression, id)
			}
		}
	}
	// Depth-first topological order; a cycle is an error.
	const (
		unvisited = iota
		visiting
		done
	)
	mark := make([]int, len(queries))
	var order []int
	var visit func(i int) error
	visit = func(i int) error {
		switch mark[i] {
		case done:
			return nil
		case visiting:
			return fmt.Errorf("metrics: expression %q refers to itself", queries[i].ID)
		}
		mark[i] = visiting
		if e := queries[i].Expression; e != nil {
			for _, id := range e.IDs() {
				if err := visit(byID[id]); err != nil {
					return err
				}
			}
		}
		mark[i] = done
		order = append(order, i)
		return nil
	}
	for i := range queries {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return &MetricSet{Queries: queries, order: order, ret: ret}, nil
}

// Result is the entry whose value the set returns.
func (m *MetricSet) Result() MetricDataQuery { return m.Queries[m.ret] }

// Evaluate reads every metric of the set from src and evaluates the
// expressions; it returns the ReturnData entry's value, ok false if missing.
func (m *MetricSet) Evaluate(ctx context.Context, src Source) (float64, bool, error) {
	values := make(map[string]float64, len(m.Queries))
	for _, i := range m.order {
		q := m.Queries[i]
		var (
			v   float64
			ok  bool
			err error
		)
		if q.Metric != nil {
			v, ok, err = src.Value(ctx, *q.Metric)
			if err != nil {
				return 0, false, fmt.Errorf("read %s: %w", q.Metric, err)
			}
		} else {
			v, ok = q.Expression.Eval(values)
		}
		if ok {
			values[q.ID] = v
		}
	}
	v, ok := values[m.Result().ID]
	return v, ok, nil
}

// Template shapes of metrics: an alarm's Metrics, a target-tracking
// policy's CustomizedMetricSpecification.Metrics (no Period: one minute).
type metricDataQueryProps struct {
	ID         string           `json:"Id"`
	Label      string           `json:"Label"`
	Expression string           `json:"Expression"`
	ReturnData boolean          `json:"ReturnData"`
	Period     number           `json:"Period"`
	MetricStat *metricStatProps `json:"MetricStat"`
}

type metricStatProps struct {
	Metric struct {
		Namespace  string           `json:"Namespace"`
		MetricName string           `json:"MetricName"`
		Dimensions []dimensionProps `json:"Dimensions"`
	} `json:"Metric"`
	Period number `json:"Period"`
	Stat   string `json:"Stat"`
	Unit   string `json:"Unit"`
}

type dimensionProps struct {
	Name  string `json:"Name"`
	Value any    `json:"Value"`
}

func resolveDims(dims []dimensionProps, resolve Resolver) (map[string]string, error) {
	out := make(map[string]string, len(dims))
	for _, d := range dims {
		v, err := resolveString(d.Value, resolve)
		if err != nil {
			return nil, fmt.Errorf("dimension %s: %w", d.Name, err)
		}
		out[d.Name] = v
	}
	return out, nil
}

// buildMetricSet compiles a template Metrics list. period applies to
// metric stats that name none.
func buildMetricSet(props []metricDataQueryProps, period time.Duration, resolve Resolver) (*MetricSet, error) {
	queries := make([]MetricDataQuery, 0, len(props))
	for i, p := range props {
		q := MetricDataQuery{ID: p.ID, Label: p.Label, ReturnData: p.ReturnData.or(true)}
		switch {
		case p.Expression != "" && p.MetricStat != nil:
			return nil, fmt.Errorf("metrics[%d] %q: both Expression and MetricStat", i, p.ID)
		case p.Expression != "":
			e, err := ParseExpr(p.Expression)
			if err != nil {
				return nil, fmt.Errorf("metrics[%d] %q: %w", i, p.ID, err)
			}
			q.Expression = e
		case p.MetricStat != nil:
			ms := p.MetricStat
			dims, err := resolveDims(ms.Metric.Dimensions, resolve)
			if err != nil {
				return nil, fmt.Errorf("metrics[%d] %q: %w", i, p.ID, err)
			}
			if ms.Stat == "" {
				return nil, fmt.Errorf("metrics[%d] %q: MetricStat has no Stat", i, p.ID)
			}
			q.Metric = &MetricQuery{
				Namespace: ms.Metric.Namespace,
				Name:      ms.Metric.MetricName,
				Dims:      dims,
				Stat:      ms.Stat,
				Period:    seconds(ms.Period.or(p.Period.or(period.Seconds()))),
			}
		default:
			return nil, fmt.Errorf("metrics[%d] %q: neither Expression nor MetricStat", i, p.ID)
		}
		queries = append(queries, q)
	}
	return NewMetricSet(queries)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
