package alarms

import (
	"encoding/json"
	"fmt"
	"math"
)

// Resolver turns a CloudFormation value of the template — an intrinsic such
// as {"Ref": "PipelineQueueC13966F5"} or {"Fn::GetAtt": ["Service", "Name"]},
// or a plain string — into the physical value of the deployed stack. The
// caller maps logical ids to physical names; this package asks for:
// dimension values of metrics, alarm names ({"Ref": alarmLogicalID}, when
// the template names none), and alarm actions (a Ref to a topic or policy).
type Resolver func(v any) (string, error)

// Resource types read from a template.
const (
	typeAlarm          = "AWS::CloudWatch::Alarm"
	typeScalableTarget = "AWS::ApplicationAutoScaling::ScalableTarget"
	typeScalingPolicy  = "AWS::ApplicationAutoScaling::ScalingPolicy"
	typeTopic          = "AWS::SNS::Topic"
)

type template struct {
	Resources map[string]resource `json:"Resources"`
}

type resource struct {
	Type       string          `json:"Type"`
	Properties json.RawMessage `json:"Properties"`
}

// decodeTemplate reads the resources of a template given as decoded JSON.
func decodeTemplate(t map[string]any) (*template, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode template: %w", err)
	}
	var tpl template
	if err := json.Unmarshal(raw, &tpl); err != nil {
		return nil, fmt.Errorf("decode template: %w", err)
	}
	return &tpl, nil
}

// scalar is a template number or boolean, which CloudFormation accepts as
// the JSON value or as a string of it: 60 and "60", true and "true".
type scalar[T float64 | bool] struct {
	set bool
	v   T
}

// number and boolean are the two scalars templates use.
type (
	number  = scalar[float64]
	boolean = scalar[bool]
)

func (n *scalar[T]) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	if text, ok := v.(string); ok {
		b = []byte(text)
	}
	if err := json.Unmarshal(b, &n.v); err != nil {
		return fmt.Errorf("not a %T: %s", n.v, b)
	}
	n.set = true
	return nil
}

// or returns the value, or def when the template leaves it out.
func (n scalar[T]) or(def T) T {
	if !n.set {
		return def
	}
	return n.v
}

// integer returns a number as an int, or def when left out.
func (n scalar[T]) integer(what string, def int) (int, error) {
	if !n.set {
		return def, nil
	}
	v, ok := any(n.v).(float64)
	if !ok || v != math.Trunc(v) || math.Abs(v) > 1e9 {
		return 0, fmt.Errorf("%s: %v is not an integer", what, n.v)
	}
	return int(v), nil
}

// resolveString returns a plain string as is and asks resolve for anything
// else (an intrinsic function).
func resolveString(v any, resolve Resolver) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	if resolve == nil {
		return "", fmt.Errorf("resolve %s: no resolver", describeValue(v))
	}
	s, err := resolve(v)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", describeValue(v), err)
	}
	return s, nil
}

// refTarget returns the logical id of {"Ref": id}.
func refTarget(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	id, ok := m["Ref"].(string)
	return id, ok
}

func describeValue(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
