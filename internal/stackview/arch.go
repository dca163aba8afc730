package stackview

import (
	"regexp"
	"strconv"
	"time"
)

// Arch is the way a stack runs the consumer, told from its resources.
type Arch string

// The four architectures (docs/architectures/).
const (
	OneOff        Arch = "one-off"
	AlarmService  Arch = "alarm-service"
	AlarmDispatch Arch = "alarm-dispatch"
	Cron          Arch = "cron"
)

// DetectArch tells the architecture from the deployed resources: a
// Scheduler schedule makes a cron stack, an ECS service an alarm-service
// stack, a Lambda function an alarm-dispatch stack; otherwise each upload
// starts its own task (one-off).
func DetectArch(st *Stack) Arch {
	switch {
	case len(st.Resources("AWS::Scheduler::Schedule")) > 0:
		return Cron
	case len(st.Resources("AWS::ECS::Service")) > 0:
		return AlarmService
	case len(st.Resources("AWS::Lambda::Function")) > 0:
		return AlarmDispatch
	}
	return OneOff
}

// Backlog is the scale-out condition of a deployed backlog alarm, read
// from its metric math (stacks.BacklogExpression): "N or more visible, or
// the oldest has waited MaxWait".
type Backlog struct {
	// LogicalID is the alarm's logical id.
	LogicalID string
	// MaxWait is the expression's `age >= <seconds>`.
	MaxWait time.Duration
	// Threshold is N, the alarm's threshold.
	Threshold int
	// Period is the longest period of the alarm's metrics.
	Period time.Duration
}

var ageCondition = regexp.MustCompile(`\bage\s*>=\s*(\d+)`)

// BacklogAlarm finds the alarm whose metric math holds the max-wait
// condition; false when the stack has none (one-off, cron).
func BacklogAlarm(st *Stack) (Backlog, bool) {
	for _, id := range st.Resources("AWS::CloudWatch::Alarm") {
		p := st.Properties(id)
		metrics, _ := p["Metrics"].([]any)
		a := Backlog{LogicalID: id}
		for _, m := range metrics {
			mm, _ := m.(map[string]any)
			if expr, ok := mm["Expression"].(string); ok {
				if sub := ageCondition.FindStringSubmatch(expr); sub != nil {
					secs, _ := strconv.Atoi(sub[1])
					a.MaxWait = time.Duration(secs) * time.Second
				}
			}
			if ms, ok := mm["MetricStat"].(map[string]any); ok {
				if v, ok := ms["Period"].(float64); ok && time.Duration(v)*time.Second > a.Period {
					a.Period = time.Duration(v) * time.Second
				}
			}
		}
		if a.MaxWait == 0 {
			continue
		}
		if a.Period == 0 {
			a.Period = time.Minute
		}
		if v, ok := p["Threshold"].(float64); ok {
			a.Threshold = int(v)
		}
		return a, true
	}
	return Backlog{}, false
}
