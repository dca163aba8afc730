package alarms

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
)

// AlarmStateChange is the message CloudWatch publishes to an SNS topic when
// an alarm changes state: json.Marshal of it is the notification's body (the
// SNS Message), with CloudWatch's field names and formats.
type AlarmStateChange struct {
	AlarmName        string `json:"AlarmName"`
	AlarmDescription string `json:"AlarmDescription"`
	AWSAccountID     string `json:"AWSAccountId"`
	// AlarmConfigurationUpdatedTimestamp and StateChangeTime are formatted
	// like "2026-11-23T17:06:02.118+0000".
	AlarmConfigurationUpdatedTimestamp string `json:"AlarmConfigurationUpdatedTimestamp"`
	NewStateValue                      State  `json:"NewStateValue"`
	NewStateReason                     string `json:"NewStateReason"`
	StateChangeTime                    string `json:"StateChangeTime"`
	// Region is the region's name, e.g. "US East (N. Virginia)".
	Region                  string   `json:"Region"`
	AlarmARN                string   `json:"AlarmArn"`
	OldStateValue           State    `json:"OldStateValue"`
	OKActions               []string `json:"OKActions"`
	AlarmActions            []string `json:"AlarmActions"`
	InsufficientDataActions []string `json:"InsufficientDataActions"`
	Trigger                 Trigger  `json:"Trigger"`
}

// Trigger describes the alarm's condition: for a single-metric alarm the
// metric fields, for a metric-math alarm the Metrics list.
type Trigger struct {
	MetricName    string `json:"MetricName,omitempty"`
	Namespace     string `json:"Namespace,omitempty"`
	StatisticType string `json:"StatisticType,omitempty"`
	Statistic     string `json:"Statistic,omitempty"`
	// Unit is null in a single-metric trigger (no unit), absent otherwise.
	Unit                             json.RawMessage    `json:"Unit,omitempty"`
	Dimensions                       []TriggerDimension `json:"Dimensions,omitempty"`
	Period                           int64              `json:"Period"`
	EvaluationPeriods                int64              `json:"EvaluationPeriods"`
	DatapointsToAlarm                int64              `json:"DatapointsToAlarm"`
	ComparisonOperator               Comparison         `json:"ComparisonOperator"`
	Threshold                        float64            `json:"Threshold"`
	TreatMissingData                 TreatMissingData   `json:"TreatMissingData"`
	EvaluateLowSampleCountPercentile string             `json:"EvaluateLowSampleCountPercentile"`
	Metrics                          []TriggerMetric    `json:"Metrics,omitempty"`
}

// TriggerDimension is a dimension as CloudWatch writes it in a trigger
// (lower-case keys).
type TriggerDimension struct {
	Value string `json:"value"`
	Name  string `json:"name"`
}

// TriggerMetric is one entry of a metric-math trigger.
type TriggerMetric struct {
	Expression string             `json:"Expression,omitempty"`
	ID         string             `json:"Id"`
	Label      string             `json:"Label,omitempty"`
	MetricStat *TriggerMetricStat `json:"MetricStat,omitempty"`
	ReturnData bool               `json:"ReturnData"`
}

// TriggerMetricStat is the MetricStat of a trigger entry.
type TriggerMetricStat struct {
	Metric struct {
		Dimensions []TriggerDimension `json:"Dimensions"`
		MetricName string             `json:"MetricName"`
		Namespace  string             `json:"Namespace"`
	} `json:"Metric"`
	Period int64  `json:"Period"`
	Stat   string `json:"Stat"`
}

// Message returns the notification body: the JSON CloudWatch publishes.
func (c AlarmStateChange) Message() ([]byte, error) { return json.Marshal(c) }

// cloudWatchTime is CloudWatch's timestamp layout in notifications.
const cloudWatchTime = "2006-01-02T15:04:05.000-0700"

func formatCloudWatchTime(t time.Time) string { return t.UTC().Format(cloudWatchTime) }

func triggerDims(dims map[string]string) []TriggerDimension {
	out := []TriggerDimension{}
	for _, k := range slices.Sorted(maps.Keys(dims)) {
		out = append(out, TriggerDimension{Name: k, Value: dims[k]})
	}
	return out
}

// trigger describes the alarm as CloudWatch's notification does.
func (s *AlarmSpec) trigger() Trigger {
	t := Trigger{
		Period:             int64(s.Period / time.Second),
		EvaluationPeriods:  int64(s.EvaluationPeriods),
		DatapointsToAlarm:  int64(s.DatapointsToAlarm),
		ComparisonOperator: s.Comparison,
		Threshold:          s.Threshold,
		TreatMissingData:   s.TreatMissingData,
	}
	if s.Single {
		m := s.Metrics.Queries[0].Metric
		t.MetricName, t.Namespace = m.Name, m.Namespace
		t.StatisticType, t.Statistic = "Statistic", strings.ToUpper(m.Stat)
		t.Unit = json.RawMessage("null")
		t.Dimensions = triggerDims(m.Dims)
		return t
	}
	for _, q := range s.Metrics.Queries {
		tm := TriggerMetric{ID: q.ID, Label: q.Label, ReturnData: q.ReturnData}
		if q.Expression != nil {
			tm.Expression = q.Expression.String()
		} else {
			ms := &TriggerMetricStat{Period: int64(q.Metric.Period / time.Second), Stat: q.Metric.Stat}
			ms.Metric.Dimensions = triggerDims(q.Metric.Dims)
			ms.Metric.MetricName, ms.Metric.Namespace = q.Metric.Name, q.Metric.Namespace
			tm.MetricStat = ms
		}
		t.Metrics = append(t.Metrics, tm)
	}
	return t
}

func actionValues(actions []Action) []string {
	out := []string{}
	for _, a := range actions {
		out = append(out, a.Value)
	}
	return out
}

// regionNames are the names CloudWatch writes in a notification's Region.
var regionNames = map[string]string{
	"us-east-1":      "US East (N. Virginia)",
	"us-east-2":      "US East (Ohio)",
	"us-west-1":      "US West (N. California)",
	"us-west-2":      "US West (Oregon)",
	"eu-west-1":      "EU (Ireland)",
	"eu-west-2":      "EU (London)",
	"eu-west-3":      "EU (Paris)",
	"eu-central-1":   "EU (Frankfurt)",
	"eu-north-1":     "EU (Stockholm)",
	"ap-northeast-1": "Asia Pacific (Tokyo)",
	"ap-southeast-1": "Asia Pacific (Singapore)",
	"ap-southeast-2": "Asia Pacific (Sydney)",
}

// regionName returns a region's display name, or the code when unknown.
func regionName(code string) string {
	if n, ok := regionNames[code]; ok {
		return n
	}
	return code
}
