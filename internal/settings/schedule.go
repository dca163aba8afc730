package settings

import (
	"fmt"
	"strings"

	"github.com/edp-pipelines/edp/internal/schedexpr"
)

// ValidateSchedule returns nil when expr is a schedule expression EventBridge
// Scheduler accepts — cron(...), rate(...) or at(...) — and otherwise an error
// saying which part is wrong and what is allowed there. The grammar is
// internal/schedexpr's, the one the local cloud evaluates fire times with, so
// an expression CloudFormation would reject at deploy time is rejected at
// synth time, with the field and the rule named. It checks syntax and ranges
// only: whether a cron expression ever fires, or whether an at() time is
// still in the future, is left to the Scheduler.
func ValidateSchedule(expr string) error {
	_, err := schedexpr.Parse(expr)
	if err != nil && strings.HasPrefix(expr, "at(") {
		// The zone of an at() time is a key of its own.
		return fmt.Errorf("%w; its time zone is %s", err, KeyScheduleTimeZone)
	}
	return err
}
