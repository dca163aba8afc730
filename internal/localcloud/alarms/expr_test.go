package alarms

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// The expressions of stacks/alarms.go and stacks/alarmservice.go with the
// default settings (N = 10, max wait 15 minutes), as synthesized.
const (
	backlogExpr        = "MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)])"
	idleExpr           = "FILL(visible, 0) + FILL(inflight, 0)"
	wakeExpr           = "IF(FILL(desired, 0) > 0, 0, MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)]))"
	backlogPerTaskExpr = "visible / IF(running > 0, running, 1)"
	dispatchExpr       = "IF(FILL(invocations, 0) > 0, 0, MAX([visible, IF(age >= 900 AND visible > 0, 10, 0)]))"
)

func TestExprEval(t *testing.T) {
	t.Parallel()
	type vals = map[string]float64
	missing := -1.0 // want: no value
	tests := []struct {
		name   string
		expr   string
		values vals
		want   float64
	}{
		// Effective backlog: visible, raised to N once a message waited the max wait.
		{"backlog: visible over N", backlogExpr, vals{"visible": 25, "age": 30}, 25},
		{"backlog: small backlog, young", backlogExpr, vals{"visible": 3, "age": 899}, 3},
		{"backlog: small backlog at max wait", backlogExpr, vals{"visible": 3, "age": 900}, 10},
		{"backlog: old age but nothing visible", backlogExpr, vals{"visible": 0, "age": 2000}, 0},
		{"backlog: no age data point", backlogExpr, vals{"visible": 4}, 4},
		{"backlog: no data at all", backlogExpr, vals{}, missing},
		{"idle: empty", idleExpr, vals{"visible": 0, "inflight": 0}, 0},
		{"idle: busy", idleExpr, vals{"visible": 3, "inflight": 2}, 5},
		{"idle: nothing in flight, no in-flight data point", idleExpr, vals{"visible": 0}, 0},
		{"idle: waiting, no in-flight data point", idleExpr, vals{"visible": 5}, 5},
		{"idle: no data at all", idleExpr, vals{}, 0},
		// Wake: only while the service wants no task; no desired data means 0.
		{"wake: no desired data point", wakeExpr, vals{"visible": 25, "age": 10}, 25},
		{"wake: desired 0", wakeExpr, vals{"desired": 0, "visible": 3, "age": 901}, 10},
		{"wake: a task is wanted", wakeExpr, vals{"desired": 1, "visible": 25, "age": 10}, 0},
		// Dispatch: only in a period after one without an invocation of the
		// dispatch function, whatever is in flight.
		{"dispatch: not invoked (no data point)", dispatchExpr, vals{"visible": 25, "age": 10}, 25},
		{"dispatch: small old backlog, not invoked", dispatchExpr, vals{"visible": 3, "age": 901}, 10},
		{"dispatch: invoked last period", dispatchExpr, vals{"invocations": 1, "visible": 25, "age": 10}, 0},
		{"dispatch: tasks at work do not gate", dispatchExpr, vals{"inflight": 4, "visible": 250, "age": 10}, 250},
		{"backlog per task: 4 running", backlogPerTaskExpr, vals{"visible": 100, "running": 4}, 25},
		{"backlog per task: none running", backlogPerTaskExpr, vals{"visible": 100, "running": 0}, 100},
		{"backlog per task: running missing", backlogPerTaskExpr, vals{"visible": 100}, missing},
		{"backlog per task: visible missing", backlogPerTaskExpr, vals{"running": 2}, missing},

		{"precedence * over +", "1 + 2 * 3", nil, 7},
		{"parentheses", "(1 + 2) * 3", nil, 9},
		{"left-associative -", "10 - 4 - 3", nil, 3},
		{"left-associative /", "24 / 4 / 3", nil, 2},
		{"power is right-associative", "2 ^ 3 ^ 2", nil, 512},
		{"unary minus below power", "-2 ^ 2", nil, -4},
		{"unary minus", "-a + 5", vals{"a": 2}, 3},
		{"numbers", "1e3 + .5 + 2.25", nil, 1002.75},
		{"division by zero has no value", "a / b", vals{"a": 1, "b": 0}, missing},
		{"comparison true", "a >= 3", vals{"a": 3}, 1},
		{"comparison false", "a < 3", vals{"a": 3}, 0},
		{"equality", "a == 2 AND b != 2", vals{"a": 2, "b": 3}, 1},
		{"AND binds tighter than OR", "1 OR 0 AND 0", nil, 1},
		{"symbolic operators", "(a > 1 && b < 1) || 0", vals{"a": 2, "b": 0}, 1},
		{"NOT", "NOT a", vals{"a": 0}, 1},
		{"! of comparison", "!(a > 1)", vals{"a": 2}, 0},
		{"AND with missing operand", "a AND b", vals{"a": 1}, missing},
		{"IF true branch", "IF(a, 1, 2)", vals{"a": 5}, 1},
		{"IF false branch", "IF(a, 1, 2)", vals{"a": 0}, 2},
		{"IF missing condition", "IF(a, 1, 2)", vals{}, missing},
		{"IF without else, false", "IF(a > 1, a)", vals{"a": 0}, missing},
		{"IF missing chosen branch", "IF(1, b, 2)", vals{}, missing},
		{"IF unchosen branch missing", "IF(1, 2, b)", vals{}, 2},
		{"FILL missing", "FILL(a, 7)", vals{}, 7},
		{"FILL present", "FILL(a, 7)", vals{"a": 3}, 3},
		{"FILL with expression", "FILL(a, 2 * 3)", vals{}, 6},
		{"MAX skips missing", "MAX([a, b, c])", vals{"a": 1, "c": 4}, 4},
		{"MIN", "MIN([a, b, 2])", vals{"a": 3, "b": 5}, 2},
		{"SUM skips missing", "SUM([a, b, c])", vals{"a": 1, "c": 4}, 5},
		{"AVG of present", "AVG([a, b, c])", vals{"a": 1, "c": 4}, 2.5},
		{"MAX of all missing", "MAX([a, b])", vals{}, missing},
		{"MAX of one series", "MAX(a)", vals{"a": 3}, 3},
		{"ABS CEIL FLOOR", "ABS(-3) + CEIL(2.1) + FLOOR(2.9)", nil, 8},
		{"ids with digits and underscores", "m_1 + e2", vals{"m_1": 1, "e2": 2}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := ParseExpr(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := e.Eval(tt.values)
			switch {
			case tt.want == missing && ok:
				t.Errorf("%s = %v, want no value", tt.expr, got)
			case tt.want != missing && !ok:
				t.Errorf("%s has no value, want %v", tt.expr, tt.want)
			case tt.want != missing && got != tt.want:
				t.Errorf("%s = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestExprIDs(t *testing.T) {
	t.Parallel()
	e, err := ParseExpr(wakeExpr)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(e.IDs(), ",")
	if got != "desired,visible,age" {
		t.Errorf("IDs = %s, want desired,visible,age", got)
	}
	if e.String() != wakeExpr {
		t.Errorf("String = %q", e.String())
	}
}

func TestExprErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr string
		want string // part of the error after the quoted expression
	}{
		{"RATE(m1)", "unsupported function or keyword RATE at position 1"},
		{"FILL(m1, REPEAT)", "FILL with REPEAT is not supported (only a value) at position 10"},
		{"m1 +", "unexpected end of expression at position 5"},
		{"[a, b]", "an array is only allowed as the argument of MAX, MIN, SUM or AVG at position 1"},
		{"a + [b]", "an array is only allowed as the argument of MAX, MIN, SUM or AVG at position 5"},
		{"IF([a], 1, 2)", "an array is only allowed as the argument of MAX, MIN, SUM or AVG at position 4"},
		{"MAX(a, b)", "MAX takes 1 argument, got 2 at position 1"},
		{"IF(a)", "IF takes 2 or 3 arguments, got 1 at position 1"},
		{"a $ b", `unsupported character '$' at position 3`},
		{"max([a])", "unsupported function max (functions are upper case) at position 1"},
		{"(a + 1", `expected ")", found end of expression at position 7`},
		{"a b", `unexpected "b" at position 3`},
		{"METRICS()", "unsupported function or keyword METRICS at position 1"},
		{"", "unexpected end of expression at position 1"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			_, err := ParseExpr(tt.expr)
			if err == nil {
				t.Fatalf("ParseExpr(%q) succeeded", tt.expr)
			}
			prefix := `metric math "` + tt.expr + `": `
			if err.Error() != prefix+tt.want {
				t.Errorf("error = %q\nwant    %q", err, prefix+tt.want)
			}
		})
	}
}

// Every metric-math expression the stacks synthesize parses, and the
// test's copies of them are the synthesized ones.
func TestSynthesizedExpressionsParse(t *testing.T) {
	t.Parallel()
	want := map[string]bool{backlogExpr: false, idleExpr: false, wakeExpr: false, backlogPerTaskExpr: false, dispatchExpr: false}
	for _, name := range []string{"EdpAlarmService", "EdpAlarmService-backlog", "EdpAlarmDispatch"} {
		raw, err := os.ReadFile("testdata/" + name + ".template.json")
		if err != nil {
			t.Fatal(err)
		}
		var tpl map[string]any
		if err := json.Unmarshal(raw, &tpl); err != nil {
			t.Fatal(err)
		}
		walkExpressions(tpl, func(expr string) {
			if _, err := ParseExpr(expr); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if _, ok := want[expr]; ok {
				want[expr] = true
			} else {
				t.Errorf("%s: expression %q has no table test", name, expr)
			}
		})
	}
	for expr, seen := range want {
		if !seen {
			t.Errorf("expression %q is not in the synthesized templates", expr)
		}
	}
}

func walkExpressions(v any, f func(string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "Expression" {
				f(s)
				continue
			}
			walkExpressions(x, f)
		}
	case []any:
		for _, x := range v {
			walkExpressions(x, f)
		}
	}
}

// Template scalars: CloudFormation takes a number or a boolean as the JSON
// value or as a string of it; anything else is an error; null is "left out".
func TestTemplateScalars(t *testing.T) {
	t.Parallel()
	var p struct {
		A, B, C number
		D, E    boolean
	}
	if err := json.Unmarshal([]byte(`{"A":60,"B":"60","C":null,"D":true,"E":"false"}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.A.or(0) != 60 || p.B.or(0) != 60 || p.C.or(7) != 7 || !p.D.or(false) || p.E.or(true) {
		t.Errorf("scalars = %+v", p)
	}
	if n, err := p.B.integer("B", 0); err != nil || n != 60 {
		t.Errorf("integer(B) = %d, %v", n, err)
	}
	for _, bad := range []string{`{"A":"sixty"}`, `{"D":"yes"}`, `{"A":[1]}`} {
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := (number{set: true, v: 1.5}).integer("X", 0); err == nil {
		t.Error("1.5 read as an integer")
	}
}
