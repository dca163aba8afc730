package alarms

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// ScalableTarget is an AWS::ApplicationAutoScaling::ScalableTarget: the
// capacity range scaling keeps the resource in.
type ScalableTarget struct {
	LogicalID string
	Min, Max  int
}

// Clamp keeps n within [Min, Max].
func (t *ScalableTarget) Clamp(n int) int { return min(max(n, t.Min), t.Max) }

type scalableTargetProps struct {
	MinCapacity number `json:"MinCapacity"`
	MaxCapacity number `json:"MaxCapacity"`
}

func parseScalableTarget(logicalID string, raw json.RawMessage) (*ScalableTarget, error) {
	var p scalableTargetProps
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("scalable target %s: %w", logicalID, err)
	}
	if !p.MinCapacity.set || !p.MaxCapacity.set {
		return nil, fmt.Errorf("scalable target %s: needs MinCapacity and MaxCapacity", logicalID)
	}
	t := &ScalableTarget{LogicalID: logicalID}
	var err error
	if t.Min, err = p.MinCapacity.integer("MinCapacity", 0); err != nil {
		return nil, fmt.Errorf("scalable target %s: %w", logicalID, err)
	}
	if t.Max, err = p.MaxCapacity.integer("MaxCapacity", 0); err != nil {
		return nil, fmt.Errorf("scalable target %s: %w", logicalID, err)
	}
	if t.Min < 0 || t.Max < t.Min {
		return nil, fmt.Errorf("scalable target %s: needs 0 <= MinCapacity (%d) <= MaxCapacity (%d)", logicalID, t.Min, t.Max)
	}
	return t, nil
}

// AdjustmentType says how a step's ScalingAdjustment applies.
type AdjustmentType string

// The adjustment types of a step scaling policy.
const (
	ChangeInCapacity        AdjustmentType = "ChangeInCapacity"
	ExactCapacity           AdjustmentType = "ExactCapacity"
	PercentChangeInCapacity AdjustmentType = "PercentChangeInCapacity"
)

// StepAdjustment is one step: its bounds are relative to the alarm
// threshold (breach delta = metric − threshold); an absent bound is
// infinite.
type StepAdjustment struct {
	Lower, Upper float64
	Adjustment   int
}

// StepScaling is an AWS::ApplicationAutoScaling::ScalingPolicy of type
// StepScaling.
type StepScaling struct {
	LogicalID string
	Name      string
	// Target is the logical id of the policy's ScalableTarget.
	Target         string
	AdjustmentType AdjustmentType
	Cooldown       time.Duration
	// MetricAggregationType (Average, Minimum or Maximum; default Average)
	// aggregates the alarm's evaluated data points into the metric value.
	MetricAggregationType  string
	MinAdjustmentMagnitude int
	Steps                  []StepAdjustment
}

// Step picks the step for a breach delta. As Application Auto Scaling
// documents, above the threshold a lower bound is inclusive and an upper
// bound exclusive; below it the reverse. A delta of exactly 0 counts as
// above for an alarm on high values (>, >=) and below otherwise.
func (p *StepScaling) Step(delta float64, cmp Comparison) (StepAdjustment, error) {
	above := delta > 0 || delta == 0 && cmp.above()
	for _, s := range p.Steps {
		if above && s.Lower <= delta && delta < s.Upper || !above && s.Lower < delta && delta <= s.Upper {
			return s, nil
		}
	}
	return StepAdjustment{}, fmt.Errorf("policy %s: no step adjustment for breach delta %s", p.Name, formatValue(delta))
}

// Aggregate combines an alarm's evaluated data points by the policy's
// MetricAggregationType; ok is false when there are none.
func (p *StepScaling) Aggregate(values []float64) (float64, bool) {
	if len(values) == 0 {
		return 0, false
	}
	acc := values[0]
	for _, v := range values[1:] {
		switch p.MetricAggregationType {
		case "Maximum":
			acc = math.Max(acc, v)
		case "Minimum":
			acc = math.Min(acc, v)
		default:
			acc += v
		}
	}
	if p.MetricAggregationType != "Maximum" && p.MetricAggregationType != "Minimum" {
		acc /= float64(len(values))
	}
	return acc, true
}

// Desired is the capacity the policy asks for from current, given the
// alarm's evaluated data points, threshold and comparison. With no data
// point (missing data treated as breaching) the breach delta is 0. The
// result is not yet clamped to the target's range.
func (p *StepScaling) Desired(current int, values []float64, threshold float64, cmp Comparison) (int, error) {
	delta := 0.0
	if v, ok := p.Aggregate(values); ok {
		delta = v - threshold
	}
	s, err := p.Step(delta, cmp)
	if err != nil {
		return current, err
	}
	return p.apply(current, s.Adjustment), nil
}

// apply applies one step's adjustment to a capacity.
func (p *StepScaling) apply(current, adj int) int {
	switch p.AdjustmentType {
	case ExactCapacity:
		return adj
	case PercentChangeInCapacity:
		// Rounded as Application Auto Scaling documents: away from zero
		// between -1 and 1, toward zero otherwise.
		d := float64(current) * float64(adj) / 100
		var change int
		switch {
		case d > 0 && d < 1:
			change = 1
		case d < 0 && d > -1:
			change = -1
		default:
			change = int(d)
		}
		if m := p.MinAdjustmentMagnitude; m > 0 && change != 0 && abs(change) < m {
			change = m * sign(change)
		}
		return current + change
	}
	return current + adj
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func sign(n int) int {
	if n < 0 {
		return -1
	}
	return 1
}

// TargetTracking is an AWS::ApplicationAutoScaling::ScalingPolicy of type
// TargetTrackingScaling with a customized metric.
type TargetTracking struct {
	LogicalID      string
	Name           string
	Target         string
	Metrics        *MetricSet
	TargetValue    float64
	DisableScaleIn bool
	// Cooldowns default to 300 s, Application Auto Scaling's default for
	// ECS services.
	ScaleOutCooldown time.Duration
	ScaleInCooldown  time.Duration
}

// Desired is the proportional rule of target tracking:
// ceil(current × metric / target), never below current when scale-in is
// disabled. A service at 0 stays at 0. Not yet clamped.
func (p *TargetTracking) Desired(current int, metric float64) int {
	// The small slack keeps 3 × 10 / 10 from becoming 4 through rounding.
	n := int(math.Ceil(float64(current)*metric/p.TargetValue - 1e-9))
	if p.DisableScaleIn && n < current {
		return current
	}
	return max(n, 0)
}

const defaultTrackingCooldown = 300 * time.Second

type scalingPolicyProps struct {
	PolicyName      any    `json:"PolicyName"`
	PolicyType      string `json:"PolicyType"`
	ScalingTargetID any    `json:"ScalingTargetId"`
	Step            *struct {
		AdjustmentType         string `json:"AdjustmentType"`
		Cooldown               number `json:"Cooldown"`
		MetricAggregationType  string `json:"MetricAggregationType"`
		MinAdjustmentMagnitude number `json:"MinAdjustmentMagnitude"`
		StepAdjustments        []struct {
			Lower      number `json:"MetricIntervalLowerBound"`
			Upper      number `json:"MetricIntervalUpperBound"`
			Adjustment number `json:"ScalingAdjustment"`
		} `json:"StepAdjustments"`
	} `json:"StepScalingPolicyConfiguration"`
	Tracking *struct {
		TargetValue      number  `json:"TargetValue"`
		DisableScaleIn   boolean `json:"DisableScaleIn"`
		ScaleInCooldown  number  `json:"ScaleInCooldown"`
		ScaleOutCooldown number  `json:"ScaleOutCooldown"`
		Predefined       any     `json:"PredefinedMetricSpecification"`
		Customized       *struct {
			Metrics    []metricDataQueryProps `json:"Metrics"`
			MetricName string                 `json:"MetricName"`
			Namespace  string                 `json:"Namespace"`
			Statistic  string                 `json:"Statistic"`
			Dimensions []dimensionProps       `json:"Dimensions"`
		} `json:"CustomizedMetricSpecification"`
	} `json:"TargetTrackingScalingPolicyConfiguration"`
}

// parseScalingPolicy reads an AWS::ApplicationAutoScaling::ScalingPolicy:
// it returns a *StepScaling or a *TargetTracking. targets are the template's
// scalable targets by logical id.
func parseScalingPolicy(logicalID string, raw json.RawMessage, targets map[string]*ScalableTarget, resolve Resolver) (any, error) {
	var p scalingPolicyProps
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("scaling policy %s: %w", logicalID, err)
	}
	fail := func(format string, args ...any) (any, error) {
		return nil, fmt.Errorf("scaling policy %s: %s", logicalID, fmt.Sprintf(format, args...))
	}
	name, err := resolveString(p.PolicyName, resolve)
	if err != nil {
		return fail("PolicyName: %v", err)
	}
	target, ok := refTarget(p.ScalingTargetID)
	if !ok || targets[target] == nil {
		return fail("ScalingTargetId %s is not a Ref to a scalable target of the template", describeValue(p.ScalingTargetID))
	}
	switch p.PolicyType {
	case "StepScaling":
		c := p.Step
		if c == nil {
			return fail("StepScaling without StepScalingPolicyConfiguration")
		}
		s := &StepScaling{
			LogicalID: logicalID, Name: name, Target: target,
			AdjustmentType:        AdjustmentType(c.AdjustmentType),
			Cooldown:              seconds(c.Cooldown.or(0)),
			MetricAggregationType: c.MetricAggregationType,
		}
		switch s.AdjustmentType {
		case ChangeInCapacity, ExactCapacity, PercentChangeInCapacity:
		default:
			return fail("AdjustmentType %q is not supported", c.AdjustmentType)
		}
		switch s.MetricAggregationType {
		case "", "Average", "Minimum", "Maximum":
		default:
			return fail("MetricAggregationType %q is not supported", c.MetricAggregationType)
		}
		if s.MinAdjustmentMagnitude, err = c.MinAdjustmentMagnitude.integer("MinAdjustmentMagnitude", 0); err != nil {
			return fail("%v", err)
		}
		if len(c.StepAdjustments) == 0 {
			return fail("no StepAdjustments")
		}
		for i, a := range c.StepAdjustments {
			adj, err := a.Adjustment.integer("ScalingAdjustment", 0)
			if err != nil || !a.Adjustment.set {
				return fail("StepAdjustments[%d]: needs an integer ScalingAdjustment", i)
			}
			st := StepAdjustment{Lower: a.Lower.or(math.Inf(-1)), Upper: a.Upper.or(math.Inf(1)), Adjustment: adj}
			if st.Lower >= st.Upper {
				return fail("StepAdjustments[%d]: lower bound %v is not below upper bound %v", i, st.Lower, st.Upper)
			}
			s.Steps = append(s.Steps, st)
		}
		return s, nil
	case "TargetTrackingScaling":
		c := p.Tracking
		if c == nil {
			return fail("TargetTrackingScaling without TargetTrackingScalingPolicyConfiguration")
		}
		if c.Predefined != nil || c.Customized == nil {
			return fail("only a CustomizedMetricSpecification is supported (no predefined metrics)")
		}
		if !c.TargetValue.set || c.TargetValue.v <= 0 {
			return fail("needs a positive TargetValue")
		}
		tt := &TargetTracking{
			LogicalID: logicalID, Name: name, Target: target,
			TargetValue:      c.TargetValue.v,
			DisableScaleIn:   c.DisableScaleIn.or(false),
			ScaleOutCooldown: seconds(c.ScaleOutCooldown.or(defaultTrackingCooldown.Seconds())),
			ScaleInCooldown:  seconds(c.ScaleInCooldown.or(defaultTrackingCooldown.Seconds())),
		}
		cm := c.Customized
		switch {
		case len(cm.Metrics) > 0:
			// Target tracking evaluates one-minute data points.
			tt.Metrics, err = buildMetricSet(cm.Metrics, time.Minute, resolve)
		case cm.MetricName != "":
			var dims map[string]string
			dims, err = resolveDims(cm.Dimensions, resolve)
			if err == nil {
				tt.Metrics, err = NewMetricSet([]MetricDataQuery{{ID: "m1", ReturnData: true, Metric: &MetricQuery{
					Namespace: cm.Namespace, Name: cm.MetricName, Dims: dims, Stat: cm.Statistic, Period: time.Minute,
				}}})
			}
		default:
			return fail("CustomizedMetricSpecification has neither Metrics nor MetricName")
		}
		if err != nil {
			return fail("%v", err)
		}
		return tt, nil
	}
	return fail("PolicyType %q is not supported", p.PolicyType)
}
