package alarms

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// State is a CloudWatch alarm state.
type State string

// Alarm states. A new alarm is in StateInsufficientData.
const (
	StateOK               State = "OK"
	StateAlarm            State = "ALARM"
	StateInsufficientData State = "INSUFFICIENT_DATA"
)

// Comparison is an alarm's ComparisonOperator.
type Comparison string

// The comparisons of a static-threshold alarm.
const (
	GreaterThanOrEqual Comparison = "GreaterThanOrEqualToThreshold"
	GreaterThan        Comparison = "GreaterThanThreshold"
	LessThan           Comparison = "LessThanThreshold"
	LessThanOrEqual    Comparison = "LessThanOrEqualToThreshold"
)

// Breaches reports whether v is on the alarming side of threshold.
func (c Comparison) Breaches(v, threshold float64) bool {
	switch c {
	case GreaterThanOrEqual:
		return v >= threshold
	case GreaterThan:
		return v > threshold
	case LessThan:
		return v < threshold
	case LessThanOrEqual:
		return v <= threshold
	}
	return false
}

// above says the alarm fires on high values.
func (c Comparison) above() bool { return c == GreaterThan || c == GreaterThanOrEqual }

// phrase is how CloudWatch's state reasons word the comparison.
func (c Comparison) phrase() string {
	switch c {
	case GreaterThanOrEqual:
		return "greater than or equal to"
	case GreaterThan:
		return "greater than"
	case LessThan:
		return "less than"
	}
	return "less than or equal to"
}

// TreatMissingData is how an alarm counts periods without a data point.
type TreatMissingData string

// The four ways; the default (left out of the template) is TreatMissing.
const (
	TreatBreaching    TreatMissingData = "breaching"
	TreatNotBreaching TreatMissingData = "notBreaching"
	TreatIgnore       TreatMissingData = "ignore"
	TreatMissing      TreatMissingData = "missing"
)

// Action is one entry of an alarm's AlarmActions, OKActions or
// InsufficientDataActions.
type Action struct {
	// Ref is the logical id when the action is {"Ref": id}, else "".
	Ref string
	// Value is the action resolved to its physical value (an ARN).
	Value string
}

// AlarmSpec is an AWS::CloudWatch::Alarm as the template defines it.
type AlarmSpec struct {
	LogicalID   string
	Name        string
	Description string
	// Metrics is the Metrics list, or for a single-metric alarm a set of one
	// metric with Id "m1" (then Single is true).
	Metrics *MetricSet
	Single  bool
	// Period is the length of one data point: the period of the metrics.
	Period            time.Duration
	Threshold         float64
	Comparison        Comparison
	EvaluationPeriods int
	// DatapointsToAlarm is M of an M-out-of-N alarm (N: EvaluationPeriods).
	DatapointsToAlarm int
	TreatMissingData  TreatMissingData
	ActionsEnabled    bool

	AlarmActions            []Action
	OKActions               []Action
	InsufficientDataActions []Action
}

// Actions returns the actions of a state.
func (s *AlarmSpec) Actions(st State) []Action {
	if !s.ActionsEnabled {
		return nil
	}
	switch st {
	case StateAlarm:
		return s.AlarmActions
	case StateOK:
		return s.OKActions
	}
	return s.InsufficientDataActions
}

type alarmProps struct {
	AlarmName               any                    `json:"AlarmName"`
	AlarmDescription        any                    `json:"AlarmDescription"`
	ActionsEnabled          boolean                `json:"ActionsEnabled"`
	AlarmActions            []any                  `json:"AlarmActions"`
	OKActions               []any                  `json:"OKActions"`
	InsufficientDataActions []any                  `json:"InsufficientDataActions"`
	ComparisonOperator      string                 `json:"ComparisonOperator"`
	DatapointsToAlarm       number                 `json:"DatapointsToAlarm"`
	EvaluationPeriods       number                 `json:"EvaluationPeriods"`
	Threshold               number                 `json:"Threshold"`
	ThresholdMetricID       string                 `json:"ThresholdMetricId"`
	TreatMissingData        string                 `json:"TreatMissingData"`
	Metrics                 []metricDataQueryProps `json:"Metrics"`
	// A single-metric alarm.
	MetricName        string           `json:"MetricName"`
	Namespace         string           `json:"Namespace"`
	Statistic         string           `json:"Statistic"`
	ExtendedStatistic string           `json:"ExtendedStatistic"`
	Dimensions        []dimensionProps `json:"Dimensions"`
	Period            number           `json:"Period"`
}

// parseAlarm reads an AWS::CloudWatch::Alarm's Properties.
func parseAlarm(logicalID string, raw json.RawMessage, resolve Resolver) (*AlarmSpec, error) {
	var p alarmProps
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("alarm %s: %w", logicalID, err)
	}
	fail := func(format string, args ...any) (*AlarmSpec, error) {
		return nil, fmt.Errorf("alarm %s: %s", logicalID, fmt.Sprintf(format, args...))
	}
	s := &AlarmSpec{LogicalID: logicalID, ActionsEnabled: p.ActionsEnabled.or(true)}
	var err error
	if p.AlarmName != nil {
		s.Name, err = resolveString(p.AlarmName, resolve)
	} else {
		// CloudFormation generated the name; Ref returns it.
		s.Name, err = resolveString(map[string]any{"Ref": logicalID}, resolve)
	}
	if err != nil {
		return fail("name: %v", err)
	}
	if d, ok := p.AlarmDescription.(string); ok {
		s.Description = d
	}
	switch c := Comparison(p.ComparisonOperator); c {
	case GreaterThanOrEqual, GreaterThan, LessThan, LessThanOrEqual:
		s.Comparison = c
	default:
		return fail("ComparisonOperator %q is not supported", p.ComparisonOperator)
	}
	if p.ThresholdMetricID != "" || !p.Threshold.set {
		return fail("only static thresholds are supported (Threshold, not ThresholdMetricId)")
	}
	s.Threshold = p.Threshold.v
	if s.EvaluationPeriods, err = p.EvaluationPeriods.integer("EvaluationPeriods", 0); err != nil {
		return fail("%v", err)
	}
	if s.DatapointsToAlarm, err = p.DatapointsToAlarm.integer("DatapointsToAlarm", s.EvaluationPeriods); err != nil {
		return fail("%v", err)
	}
	if s.EvaluationPeriods < 1 || s.DatapointsToAlarm < 1 || s.DatapointsToAlarm > s.EvaluationPeriods {
		return fail("needs 1 <= DatapointsToAlarm (%d) <= EvaluationPeriods (%d)", s.DatapointsToAlarm, s.EvaluationPeriods)
	}
	switch t := TreatMissingData(p.TreatMissingData); t {
	case "":
		s.TreatMissingData = TreatMissing
	case TreatBreaching, TreatNotBreaching, TreatIgnore, TreatMissing:
		s.TreatMissingData = t
	default:
		return fail("TreatMissingData %q is not supported", p.TreatMissingData)
	}

	switch {
	case len(p.Metrics) > 0 && p.MetricName != "":
		return fail("has both Metrics and MetricName")
	case len(p.Metrics) > 0:
		s.Metrics, err = buildMetricSet(p.Metrics, 0, resolve)
		if err != nil {
			return fail("%v", err)
		}
		// All metrics of an alarm share one period (CloudWatch requires it).
		for _, q := range s.Metrics.Queries {
			if q.Metric == nil {
				continue
			}
			if s.Period == 0 {
				s.Period = q.Metric.Period
			} else if q.Metric.Period != s.Period {
				return fail("metrics have different periods (%s, %s)", s.Period, q.Metric.Period)
			}
		}
	case p.MetricName != "":
		if p.ExtendedStatistic != "" || p.Statistic == "" {
			return fail("a single-metric alarm needs Statistic (ExtendedStatistic is not supported)")
		}
		dims, err := resolveDims(p.Dimensions, resolve)
		if err != nil {
			return fail("%v", err)
		}
		s.Single = true
		s.Metrics, err = NewMetricSet([]MetricDataQuery{{
			ID:         "m1",
			ReturnData: true,
			Metric: &MetricQuery{
				Namespace: p.Namespace, Name: p.MetricName, Dims: dims,
				Stat: p.Statistic, Period: seconds(p.Period.or(0)),
			},
		}})
		if err != nil {
			return fail("%v", err)
		}
		s.Period = s.Metrics.Queries[0].Metric.Period
	default:
		return fail("has neither Metrics nor MetricName")
	}
	if s.Period <= 0 || s.Period%time.Minute != 0 {
		return fail("period %s is not a positive multiple of 60 seconds", s.Period)
	}

	for _, list := range []struct {
		in  []any
		out *[]Action
	}{{p.AlarmActions, &s.AlarmActions}, {p.OKActions, &s.OKActions}, {p.InsufficientDataActions, &s.InsufficientDataActions}} {
		for _, v := range list.in {
			a := Action{}
			a.Ref, _ = refTarget(v)
			if a.Value, err = resolveString(v, resolve); err != nil {
				return fail("action: %v", err)
			}
			*list.out = append(*list.out, a)
		}
	}
	return s, nil
}

// Datapoint is one period's value of an alarm; OK false means missing.
type Datapoint struct {
	Time  time.Time
	Value float64
	OK    bool
}

// Evaluation is the outcome of one period's evaluation.
type Evaluation struct {
	Old, New State
	// Reason is the CloudWatch-style state reason of New.
	Reason string
	// Values are the real data points evaluated, newest first (what a step
	// scaling policy aggregates with its MetricAggregationType).
	Values []float64
}

// Changed reports a state transition.
func (e Evaluation) Changed() bool { return e.Old != e.New }

// evaluationRangeExtra is how many periods beyond EvaluationPeriods the
// evaluation range looks back. CloudWatch retrieves "a higher number of data
// points than specified by Evaluation Periods", depending on the period and
// resolution; its documented example retrieves 5 for 3 evaluation periods.
const evaluationRangeExtra = 2

// Alarm is the state machine of one alarm. It is not safe for concurrent use.
type Alarm struct {
	spec   *AlarmSpec
	state  State
	reason string
	window []Datapoint // the evaluation range, oldest first
}

// NewAlarm returns the alarm in INSUFFICIENT_DATA, as CloudWatch creates it.
func NewAlarm(spec *AlarmSpec) *Alarm {
	return &Alarm{spec: spec, state: StateInsufficientData, reason: "Unchecked: Initial alarm creation"}
}

// Spec returns the alarm's definition.
func (a *Alarm) Spec() *AlarmSpec { return a.spec }

// State returns the current state.
func (a *Alarm) State() State { return a.state }

// Reason returns the reason of the current state.
func (a *Alarm) Reason() string { return a.reason }

// Record adds one period's data point and evaluates the alarm as CloudWatch
// documents ("How alarm state is evaluated when data is missing"), over an
// evaluation range of EvaluationPeriods+2 periods:
//
//   - If the range holds at least N (EvaluationPeriods) real data points,
//     the N most recent real ones are evaluated; TreatMissingData does not
//     matter.
//   - Otherwise breaching and notBreaching fill the gap: all real points plus
//     as many filled points as needed to make N.
//   - missing and ignore evaluate the real points alone: ALARM if at least M
//     (DatapointsToAlarm) breach, else OK if any does not breach. If none is
//     real, or all real ones breach but fewer than M, missing goes to
//     INSUFFICIENT_DATA and ignore keeps the state — except the documented
//     case of a breaching point at the oldest end of the range with only
//     missing data after it, which is ALARM under missing.
//
// Then ALARM when at least M evaluated points breach, else OK.
//
// Unlike CloudWatch, which also reads the metric's history from before the
// alarm existed, the alarm knows only the data points recorded so far: it
// stays in INSUFFICIENT_DATA until it has recorded EvaluationPeriods of them.
func (a *Alarm) Record(dp Datapoint) Evaluation {
	s := a.spec
	rng := s.EvaluationPeriods + evaluationRangeExtra
	a.window = append(a.window, dp)
	if len(a.window) > rng {
		a.window = a.window[len(a.window)-rng:]
	}
	ev := Evaluation{Old: a.state, New: a.state}
	if len(a.window) < s.EvaluationPeriods {
		// Nothing before the first data point is known (locally there is
		// no metric history): the alarm first evaluates once it has seen
		// EvaluationPeriods periods, in INSUFFICIENT_DATA until then.
		return ev
	}
	var real []Datapoint // newest first
	for i := len(a.window) - 1; i >= 0; i-- {
		if a.window[i].OK {
			real = append(real, a.window[i])
		}
	}
	n, m := s.EvaluationPeriods, s.DatapointsToAlarm
	breaches := func(pts []Datapoint) int {
		c := 0
		for _, p := range pts {
			if s.Comparison.Breaches(p.Value, s.Threshold) {
				c++
			}
		}
		return c
	}
	decide := func(evaluated []Datapoint, breaching, filled int) {
		for _, p := range evaluated {
			ev.Values = append(ev.Values, p.Value)
		}
		if breaching >= m {
			ev.New = StateAlarm
		} else {
			ev.New = StateOK
		}
		ev.Reason = a.thresholdReason(ev.Old, ev.New, evaluated, breaching, filled)
	}
	switch {
	case len(real) >= n:
		decide(real[:n], breaches(real[:n]), 0)
	case s.TreatMissingData == TreatBreaching || s.TreatMissingData == TreatNotBreaching:
		fill := n - len(real)
		b := breaches(real)
		if s.TreatMissingData == TreatBreaching {
			b += fill
		}
		decide(real, b, fill)
	default: // missing, ignore
		b := breaches(real)
		oldestBreaching := len(a.window) == rng && a.window[0].OK && s.Comparison.Breaches(a.window[0].Value, s.Threshold)
		switch {
		case len(real) > 0 && (b >= m || b < len(real)):
			decide(real, b, 0)
		case s.TreatMissingData == TreatIgnore:
			// Retain the current state.
		case len(real) > 0 && oldestBreaching:
			decide(real, b, 0)
			ev.New = StateAlarm
			ev.Reason = a.thresholdReason(ev.Old, ev.New, real, b, 0)
		default:
			ev.New = StateInsufficientData
			unknown := n
			ev.Reason = fmt.Sprintf("Insufficient Data: %d %s unknown.", unknown, plural(unknown, "datapoint was", "datapoints were"))
		}
	}
	if ev.Changed() {
		a.state, a.reason = ev.New, ev.Reason
	}
	return ev
}

// thresholdReason words a state reason as CloudWatch does, e.g.
// "Threshold Crossed: 1 out of the last 1 datapoints [42.0 (23/11/26
// 17:00:00)] was greater than or equal to the threshold (10.0) (minimum 1
// datapoint for OK -> ALARM transition)."
func (a *Alarm) thresholdReason(old, next State, real []Datapoint, breaching, filled int) string {
	s := a.spec
	if len(real) == 0 {
		how := "Breaching"
		if s.TreatMissingData == TreatNotBreaching {
			how = "NonBreaching"
		}
		return fmt.Sprintf("Threshold Crossed: no datapoints were received for %d %s and %d missing %s treated as [%s].",
			filled, plural(filled, "period", "periods"), filled, plural(filled, "datapoint was", "datapoints were"), how)
	}
	n, m := s.EvaluationPeriods, s.DatapointsToAlarm
	pts := make([]string, len(real))
	for i, p := range real {
		pts[i] = fmt.Sprintf("%s (%s)", formatValue(p.Value), p.Time.UTC().Format("02/01/06 15:04:05"))
	}
	count, not, minimum := breaching, "", m
	if next == StateOK {
		count, not, minimum = n-breaching, "not ", n-m+1
	}
	return fmt.Sprintf("Threshold Crossed: %d out of the last %d datapoints [%s] %s %s%s the threshold (%s) (minimum %d %s for %s -> %s transition).",
		count, n, strings.Join(pts, ", "), plural(count, "was", "were"), not, s.Comparison.phrase(),
		formatValue(s.Threshold), minimum, plural(minimum, "datapoint", "datapoints"), old, next)
}

// formatValue prints a number as CloudWatch's reasons do: 42.0, 0.5.
func formatValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
