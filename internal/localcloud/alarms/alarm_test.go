package alarms

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// testAlarm is a metric-math alarm on one metric "m" with threshold 1 and
// GreaterThanOrEqualToThreshold: a data point of 2 breaches, 0 does not.
func testAlarm(t *testing.T, n, m int, treat TreatMissingData) *Alarm {
	t.Helper()
	props := map[string]any{
		"ComparisonOperator": "GreaterThanOrEqualToThreshold",
		"Threshold":          1,
		"EvaluationPeriods":  n,
		"DatapointsToAlarm":  m,
		"TreatMissingData":   string(treat),
		"AlarmName":          "test-alarm",
		"Metrics": []any{
			map[string]any{"Id": "e", "Expression": "m", "ReturnData": true},
			map[string]any{"Id": "m", "ReturnData": false, "MetricStat": map[string]any{
				"Metric": map[string]any{"Namespace": "Test", "MetricName": "M"}, "Period": 60, "Stat": "Maximum",
			}},
		},
	}
	raw, err := json.Marshal(props)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := parseAlarm("TestAlarm", raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewAlarm(spec)
}

var t0 = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

// record feeds a row of data points written like CloudWatch's docs: 0 does
// not breach, X breaches, - is missing; oldest first.
func record(a *Alarm, row string) []Evaluation {
	var evs []Evaluation
	for i, c := range strings.Fields(row) {
		dp := Datapoint{Time: t0.Add(time.Duration(i) * time.Minute)}
		switch c {
		case "0":
			dp.OK = true
		case "X":
			dp.Value, dp.OK = 2, true
		}
		evs = append(evs, a.Record(dp))
	}
	return evs
}

// The tables of "How alarm state is evaluated when data is missing" in
// CloudWatch's user guide: the evaluation range is 5 data points for 3
// evaluation periods. "retain" is "Retain current state": the state the
// previous evaluation left.
func TestAlarmMissingDataAsDocumented(t *testing.T) {
	t.Parallel()
	treats := []TreatMissingData{TreatMissing, TreatIgnore, TreatBreaching, TreatNotBreaching}
	tests := []struct {
		m    int // DatapointsToAlarm of 3
		row  string
		want [4]string // missing, ignore, breaching, notBreaching
	}{
		{3, "0 - X - X", [4]string{"OK", "OK", "OK", "OK"}},
		{3, "0 - - - -", [4]string{"OK", "OK", "OK", "OK"}},
		{3, "- - - - -", [4]string{"INSUFFICIENT_DATA", "retain", "ALARM", "OK"}},
		{3, "0 X X - X", [4]string{"ALARM", "ALARM", "ALARM", "ALARM"}},
		{3, "- - - - X", [4]string{"INSUFFICIENT_DATA", "retain", "ALARM", "OK"}},
		{3, "X - - - -", [4]string{"ALARM", "retain", "ALARM", "OK"}},
		{2, "0 - X - X", [4]string{"ALARM", "ALARM", "ALARM", "ALARM"}},
		{2, "0 0 X 0 X", [4]string{"ALARM", "ALARM", "ALARM", "ALARM"}},
		{2, "0 - X - -", [4]string{"OK", "OK", "ALARM", "OK"}},
		{2, "- - - - 0", [4]string{"OK", "OK", "ALARM", "OK"}},
		{2, "- - - - X", [4]string{"INSUFFICIENT_DATA", "retain", "ALARM", "OK"}},
	}
	for _, tt := range tests {
		for i, treat := range treats {
			name := tt.row + " " + string(treat)
			if tt.m == 2 {
				name += " (2 of 3)"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				a := testAlarm(t, 3, tt.m, treat)
				evs := record(a, tt.row)
				last := evs[len(evs)-1]
				want := State(tt.want[i])
				if tt.want[i] == "retain" {
					want = last.Old
					if last.Changed() {
						t.Errorf("state changed %s -> %s, want it retained", last.Old, last.New)
					}
				}
				if a.State() != want {
					t.Errorf("state %s, want %s (reason %q)", a.State(), want, a.Reason())
				}
			})
		}
	}
}

func TestAlarmMOfN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		n, m   int
		treat  TreatMissingData
		row    string
		states string // state after each data point
	}{
		{"1 of 1 follows every data point", 1, 1, TreatNotBreaching, "0 X X 0 X",
			"OK ALARM ALARM OK ALARM"},
		{"waits for N data points", 5, 5, TreatBreaching, "0 0 0 0 0",
			"INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA OK"},
		{"5 of 5 needs 5 breaching in a row", 5, 5, TreatBreaching, "X X X X X 0 X X X X X",
			"INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA ALARM OK OK OK OK OK ALARM"},
		{"breaching missing data counts toward 5 of 5", 5, 5, TreatBreaching, "X X X X - - - - -",
			// From the 5th on, fewer than 5 real points: the gap is filled as breaching.
			"INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA INSUFFICIENT_DATA ALARM ALARM ALARM ALARM ALARM"},
		{"2 of 3 need not be consecutive", 3, 2, TreatMissing, "X 0 X X 0 0",
			"INSUFFICIENT_DATA INSUFFICIENT_DATA ALARM ALARM ALARM OK"},
		{"notBreaching missing data ends an alarm", 1, 1, TreatNotBreaching, "X - - - -",
			// The range still holds the X for 2 more periods (re-evaluated, as
			// CloudWatch's note on stopped metrics warns), then it is filled.
			"ALARM ALARM ALARM OK OK"},
		{"missing data points go to INSUFFICIENT_DATA", 1, 1, TreatMissing, "X - - - -",
			"ALARM ALARM ALARM INSUFFICIENT_DATA INSUFFICIENT_DATA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := testAlarm(t, tt.n, tt.m, tt.treat)
			var got []string
			for _, ev := range record(a, tt.row) {
				got = append(got, string(ev.New))
			}
			if strings.Join(got, " ") != tt.states {
				t.Errorf("states\n got %s\nwant %s", strings.Join(got, " "), tt.states)
			}
		})
	}
}

func TestAlarmReasons(t *testing.T) {
	t.Parallel()
	a := testAlarm(t, 2, 2, TreatNotBreaching)
	evs := record(a, "X X 0")
	want := []string{
		"",
		"Threshold Crossed: 2 out of the last 2 datapoints [2.0 (23/11/26 17:01:00), 2.0 (23/11/26 17:00:00)] were greater than or equal to the threshold (1.0) (minimum 2 datapoints for INSUFFICIENT_DATA -> ALARM transition).",
		"Threshold Crossed: 1 out of the last 2 datapoints [0.0 (23/11/26 17:02:00), 2.0 (23/11/26 17:01:00)] was not greater than or equal to the threshold (1.0) (minimum 1 datapoint for ALARM -> OK transition).",
	}
	for i, ev := range evs {
		if ev.Reason != want[i] {
			t.Errorf("reason %d\n got %q\nwant %q", i, ev.Reason, want[i])
		}
	}
	if got := evs[1].Values; len(got) != 2 || got[0] != 2 {
		t.Errorf("evaluated values %v, want [2 2]", got)
	}

	b := testAlarm(t, 3, 3, TreatBreaching)
	ev := record(b, "- - -")[2]
	if want := "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [Breaching]."; ev.Reason != want {
		t.Errorf("reason\n got %q\nwant %q", ev.Reason, want)
	}
	c := testAlarm(t, 1, 1, TreatMissing)
	ev = record(c, "-")[0]
	if want := "Insufficient Data: 1 datapoint was unknown."; ev.Reason != want || ev.Changed() {
		t.Errorf("reason %q (changed %v), want %q and no change", ev.Reason, ev.Changed(), want)
	}
}

func TestParseAlarmErrors(t *testing.T) {
	t.Parallel()
	base := func() map[string]any {
		return map[string]any{
			"AlarmName": "a", "ComparisonOperator": "GreaterThanThreshold", "Threshold": 1, "EvaluationPeriods": 1,
			"MetricName": "M", "Namespace": "N", "Statistic": "Maximum", "Period": 60,
		}
	}
	tests := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"anomaly band", func(p map[string]any) { p["ComparisonOperator"] = "LessThanLowerOrGreaterThanUpperThreshold" },
			`ComparisonOperator "LessThanLowerOrGreaterThanUpperThreshold" is not supported`},
		{"M above N", func(p map[string]any) { p["DatapointsToAlarm"] = 2 }, "needs 1 <= DatapointsToAlarm (2) <= EvaluationPeriods (1)"},
		{"percentile", func(p map[string]any) { delete(p, "Statistic"); p["ExtendedStatistic"] = "p99" }, "ExtendedStatistic is not supported"},
		{"sub-minute period", func(p map[string]any) { p["Period"] = 10 }, "period 10s is not a positive multiple of 60 seconds"},
		{"bad expression", func(p map[string]any) {
			delete(p, "MetricName")
			p["Metrics"] = []any{map[string]any{"Id": "e", "Expression": "RATE(m)", "ReturnData": true}}
		}, `metric math "RATE(m)": unsupported function or keyword RATE at position 1`},
		{"unknown id", func(p map[string]any) {
			delete(p, "MetricName")
			p["Metrics"] = []any{map[string]any{"Id": "e", "Expression": "m + 1", "ReturnData": true}}
		}, `expression "m + 1" uses unknown id "m"`},
		{"two results", func(p map[string]any) {
			delete(p, "MetricName")
			p["Metrics"] = []any{
				map[string]any{"Id": "e", "Expression": "1"},
				map[string]any{"Id": "f", "Expression": "2"},
			}
		}, `both "e" and "f" have ReturnData`},
		{"cycle", func(p map[string]any) {
			delete(p, "MetricName")
			p["Metrics"] = []any{
				map[string]any{"Id": "e", "Expression": "f", "ReturnData": true},
				map[string]any{"Id": "f", "Expression": "e", "ReturnData": false},
			}
		}, "refers to itself"},
		{"unresolvable dimension", func(p map[string]any) {
			p["Dimensions"] = []any{map[string]any{"Name": "QueueName", "Value": map[string]any{"Ref": "Q"}}}
		}, `dimension QueueName: resolve {"Ref":"Q"}: no resolver`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := base()
			tt.change(p)
			raw, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parseAlarm("A", raw, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "alarm A: ") {
				t.Errorf("error = %v, want alarm A: ... %s", err, tt.want)
			}
		})
	}
}
