package alarms

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
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

// number is a template number: CloudFormation accepts 60 and "60".
type number struct {
	set bool
	v   float64
}

func (n *number) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		return nil
	case float64:
		n.v, n.set = v, true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", v)
		}
		n.v, n.set = f, true
	default:
		return fmt.Errorf("not a number: %s", b)
	}
	return nil
}

// or returns the number, or def when the template leaves it out.
func (n number) or(def float64) float64 {
	if !n.set {
		return def
	}
	return n.v
}

// integer returns the number as an int, or def when left out.
func (n number) integer(what string, def int) (int, error) {
	if !n.set {
		return def, nil
	}
	if n.v != math.Trunc(n.v) || math.Abs(n.v) > 1e9 {
		return 0, fmt.Errorf("%s: %v is not an integer", what, n.v)
	}
	return int(n.v), nil
}

// boolean is a template boolean: true and "true".
type boolean struct {
	set bool
	v   bool
}

func (b *boolean) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		return nil
	case bool:
		b.v, b.set = v, true
	case string:
		p, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", v)
		}
		b.v, b.set = p, true
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

func (b boolean) or(def bool) bool {
	if !b.set {
		return def
	}
	return b.v
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
