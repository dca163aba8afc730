package alarms

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
)

func loadTemplate(t *testing.T, name string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name + ".template.json")
	if err != nil {
		t.Fatal(err)
	}
	var tpl map[string]any
	if err := json.Unmarshal(raw, &tpl); err != nil {
		t.Fatal(err)
	}
	return tpl
}

// policyOf parses one scaling policy of a testdata template.
func policyOf(t *testing.T, template, logicalID string) any {
	t.Helper()
	tpl, err := decodeTemplate(loadTemplate(t, template))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]*ScalableTarget{}
	for id, r := range tpl.Resources {
		if r.Type == typeScalableTarget {
			if targets[id], err = parseScalableTarget(id, r.Properties); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := parseScalingPolicy(logicalID, tpl.Resources[logicalID].Properties, targets, fakeResolve)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The edp scale-out tiers (stacks.ScaleOutSteps) with N = 10: +1 task below
// 2N visible, +2 below 5N, +4 from 5N on, from the synthesized policy.
func TestStepScalingEdpTiers(t *testing.T) {
	t.Parallel()
	p := policyOf(t, "EdpAlarmService", "ScaleOutOnBacklog979AB82A").(*StepScaling)
	if p.AdjustmentType != ChangeInCapacity || p.Cooldown.Seconds() != 60 || p.MetricAggregationType != "Maximum" {
		t.Fatalf("policy %+v", p)
	}
	tests := []struct {
		backlog float64
		want    int // tasks added
	}{
		{10, 1}, {19.9, 1}, {20, 2}, {49, 2}, {50, 4}, {1000, 4},
	}
	for _, tt := range tests {
		got, err := p.Desired(3, []float64{tt.backlog}, 10, GreaterThanOrEqual)
		if err != nil {
			t.Errorf("backlog %v: %v", tt.backlog, err)
			continue
		}
		if got != 3+tt.want {
			t.Errorf("backlog %v: desired %d, want %d", tt.backlog, got, 3+tt.want)
		}
	}
	if _, err := p.Desired(3, []float64{9}, 10, GreaterThanOrEqual); err == nil || !strings.Contains(err.Error(), "no step adjustment for breach delta -1.0") {
		t.Errorf("below the threshold: err = %v", err)
	}
}

func TestStepScalingIdleToZero(t *testing.T) {
	t.Parallel()
	p := policyOf(t, "EdpAlarmService", "ScaleInWhenIdleD78C94C3").(*StepScaling)
	for _, values := range [][]float64{{0, 0, 0, 0, 0}, nil} {
		got, err := p.Desired(4, values, 0, LessThanOrEqual)
		if err != nil || got != 0 {
			t.Errorf("values %v: desired %d, %v; want 0", values, got, err)
		}
	}
}

func TestStepBounds(t *testing.T) {
	t.Parallel()
	inf := math.Inf(1)
	p := &StepScaling{Name: "p", AdjustmentType: ChangeInCapacity, Steps: []StepAdjustment{
		{Lower: -inf, Upper: -10, Adjustment: -2},
		{Lower: -10, Upper: 0, Adjustment: -1},
		{Lower: 0, Upper: 10, Adjustment: 1},
		{Lower: 10, Upper: inf, Adjustment: 3},
	}}
	tests := []struct {
		delta float64
		cmp   Comparison
		want  int
	}{
		// Above the threshold: lower inclusive, upper exclusive.
		{10, GreaterThan, 3},
		{9.99, GreaterThan, 1},
		{0, GreaterThanOrEqual, 1},
		// Below: lower exclusive, upper inclusive.
		{-10, LessThan, -2},
		{-9.99, LessThan, -1},
		{0, LessThanOrEqual, -1},
	}
	for _, tt := range tests {
		s, err := p.Step(tt.delta, tt.cmp)
		if err != nil || s.Adjustment != tt.want {
			t.Errorf("delta %v (%s): adjustment %d, %v; want %d", tt.delta, tt.cmp, s.Adjustment, err, tt.want)
		}
	}
}

func TestAdjustmentTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     AdjustmentType
		minMag  int
		current int
		adj     int
		want    int
	}{
		{"change", ChangeInCapacity, 0, 3, 2, 5},
		{"change down", ChangeInCapacity, 0, 3, -5, -2}, // clamped later
		{"exact", ExactCapacity, 0, 7, 0, 0},
		{"percent", PercentChangeInCapacity, 0, 10, 50, 15},
		{"percent rounds toward zero", PercentChangeInCapacity, 0, 3, 50, 4},
		{"percent below 1 rounds to 1", PercentChangeInCapacity, 0, 1, 10, 2},
		{"percent above -1 rounds to -1", PercentChangeInCapacity, 0, 10, -5, 9},
		{"percent below -1 rounds toward zero", PercentChangeInCapacity, 0, 10, -15, 9},
		{"min adjustment magnitude", PercentChangeInCapacity, 2, 10, 10, 12},
	}
	for _, tt := range tests {
		p := &StepScaling{AdjustmentType: tt.typ, MinAdjustmentMagnitude: tt.minMag}
		if got := p.apply(tt.current, tt.adj); got != tt.want {
			t.Errorf("%s: %d %+d = %d, want %d", tt.name, tt.current, tt.adj, got, tt.want)
		}
	}
}

func TestAggregate(t *testing.T) {
	t.Parallel()
	values := []float64{4, 1, 7}
	for typ, want := range map[string]float64{"Maximum": 7, "Minimum": 1, "Average": 4, "": 4} {
		p := &StepScaling{MetricAggregationType: typ}
		if got, ok := p.Aggregate(values); !ok || got != want {
			t.Errorf("%q: %v, want %v", typ, got, want)
		}
	}
	if _, ok := (&StepScaling{}).Aggregate(nil); ok {
		t.Error("aggregate of nothing has a value")
	}
}

func TestTargetTrackingDesired(t *testing.T) {
	t.Parallel()
	p := policyOf(t, "EdpAlarmService-backlog", "BacklogPerTaskTracking").(*TargetTracking)
	if p.TargetValue != 10 || !p.DisableScaleIn || p.ScaleOutCooldown.Seconds() != 60 || p.ScaleInCooldown.Seconds() != 300 {
		t.Fatalf("policy %+v", p)
	}
	if got := p.Metrics.Result().Expression.String(); got != backlogPerTaskExpr {
		t.Errorf("metric %q", got)
	}
	scaleIn := *p
	scaleIn.DisableScaleIn = false
	tests := []struct {
		name    string
		p       *TargetTracking
		current int
		metric  float64
		want    int
	}{
		{"proportional", p, 1, 100, 10},
		{"on target", p, 3, 10, 3},
		{"rounds up", p, 2, 10.5, 3},
		{"from 4 at 25 per task", p, 4, 25, 10},
		{"cannot leave zero", p, 0, 100, 0},
		{"scale-in disabled", p, 10, 1, 10},
		{"scale-in enabled", &scaleIn, 10, 1, 1},
		{"scale-in to zero", &scaleIn, 10, 0, 0},
	}
	for _, tt := range tests {
		if got := tt.p.Desired(tt.current, tt.metric); got != tt.want {
			t.Errorf("%s: Desired(%d, %v) = %d, want %d", tt.name, tt.current, tt.metric, got, tt.want)
		}
	}
}

func TestScalableTargetClamp(t *testing.T) {
	t.Parallel()
	tpl, err := decodeTemplate(loadTemplate(t, "EdpAlarmService"))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := parseScalableTarget("ScalableTarget07F0A026", tpl.Resources["ScalableTarget07F0A026"].Properties)
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]int{-2: 0, 0: 0, 4: 4, 10: 10, 12: 10} {
		if got := tg.Clamp(n); got != want {
			t.Errorf("Clamp(%d) = %d, want %d", n, got, want)
		}
	}
}
