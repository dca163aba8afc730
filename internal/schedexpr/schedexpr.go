// Package schedexpr is edp's one grammar of EventBridge Scheduler schedule
// expressions — cron(...), rate(...) and at(...) — and their fire times in an
// IANA time zone.
//
// Parse reads an expression once into an Expr. The same Expr serves both
// sides: internal/settings checks edp:schedule with Parse at synth time (an
// expression the Scheduler would refuse at deploy is refused with the field
// and the rule named), and the local cloud places the Expr in the deployed
// schedule's zone (Expr.In, ParseIn) and asks it for fire times (Schedule.Next).
// There is no second table of fields to drift from the first.
//
// The rules are those AWS documents in "Schedule types on EventBridge
// Scheduler" (EventBridge Scheduler User Guide), whose cron and rate syntax is
// the EventBridge User Guide's "Cron expressions" and "Rate expressions"
// reference: six fields with a year from 1970 to 2199, day-of-week 1-7 for
// SUN-SAT, "?" in exactly one of day-of-month and day-of-week, L, W and #,
// rate(N minute|minutes|hour|hours|day|days) and at(yyyy-mm-ddThh:mm:ss).
// The page's time rules are:
//
//   - cron and at name wall-clock times in the schedule's time zone. A wall
//     time that does not exist because the clocks spring forward is skipped;
//     a wall time that happens twice because they fall back fires once, at
//     its first occurrence.
//   - rate is a fixed duration on the real clock (a day is 24 hours, whatever
//     daylight saving time does), counted from the schedule's start date.
//
// Fire times are exact (minute boundaries for cron); the Scheduler itself
// invokes within the minute, and a flexible time window adds more jitter.
//
// # Why not a maintained cron parser
//
// Measured against github.com/hashicorp/cronexpr v1.1.3 (the maintained fork
// of gorhill/cronexpr) and github.com/robfig/cron/v3 v3.0.1, both served by
// the module proxy. robfig/cron has no year field and no L, W or # ("3#2":
// "failed to parse int"). cronexpr parses six fields with a year, but its
// dialect is not the Scheduler's, and an adapter would have to rewrite and
// re-check every field first — a grammar of its own again:
//
//   - years end at 2099: "0 0 1 1 ? 2150" is "syntax error in year field";
//   - day-of-week is 0-6 (7 = Sunday): "3#2" is the second Wednesday, not
//     Tuesday; "7" is Sunday, not Saturday; "6L" the last Saturday, not Friday;
//   - ranges do not wrap: "0/30 20-2 ? * MON-FRI *" (the documentation's own
//     example) and "FRI-MON" silently never fire (Next returns the zero time);
//   - "L" alone in day-of-week is a syntax error;
//   - it accepts what the Scheduler refuses ("0 2 * * * *", "0 2 ? * ? *",
//     "3#1,6#3", lower-case names, day-of-week 0), and its errors name neither
//     the field's rule nor the fix ("syntax error in minute field: '60'");
//   - at the fall-back hour it fires the repeated wall time twice (Berlin
//     02:30 on 2026-10-25 at 00:30Z and again at 01:30Z); the Scheduler fires
//     once.
package schedexpr

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Expr is a parsed schedule expression, before a time zone is given. The
// zero Expr is no expression: it never fires.
type Expr struct {
	text string
	cron *cron         // cron(...)
	rate time.Duration // rate(...)
	at   time.Time     // at(...): the wall time, with its fields in UTC
}

// String returns the expression as written.
func (e Expr) String() string { return e.text }

// Parse returns the Expr of a schedule expression the EventBridge Scheduler
// accepts — cron(...), rate(...) or at(...) — and otherwise an error saying
// which part is wrong and what is allowed there. It checks syntax and ranges
// only: whether a cron expression ever fires, or whether an at() time is
// still ahead, is Next's business.
func Parse(expr string) (Expr, error) {
	e := Expr{text: expr}
	var err error
	switch {
	case strings.HasPrefix(expr, "cron("):
		var inner string
		if inner, err = unwrap(expr, "cron", "minutes hours day-of-month month day-of-week year"); err == nil {
			e.cron, err = parseCron(inner)
		}
	case strings.HasPrefix(expr, "rate("):
		var inner string
		if inner, err = unwrap(expr, "rate", "value unit"); err == nil {
			e.rate, err = parseRate(inner)
		}
	case strings.HasPrefix(expr, "at("):
		var inner string
		if inner, err = unwrap(expr, "at", atLayoutDoc); err == nil {
			e.at, err = parseAt(inner)
		}
	default:
		err = errors.New(`the expression must start with "cron(", "rate(" or "at("`)
	}
	if err != nil {
		return Expr{}, err
	}
	return e, nil
}

// unwrap returns what is between "kind(" and the closing parenthesis, once
// it is laid out as the documentation writes every expression: nothing
// between a parenthesis and the text next to it, and the parts of a cron or
// rate expression apart by one space each. The Scheduler refuses
// "cron( 0 2 * * ? * )" at deploy time; the documentation shows no other
// spacing, so none is accepted here.
func unwrap(expr, kind, shape string) (string, error) {
	inner := strings.TrimPrefix(expr, kind+"(")
	if !strings.HasSuffix(inner, ")") {
		return "", fmt.Errorf("%s(%s) must end with a closing parenthesis", kind, shape)
	}
	inner = strings.TrimSuffix(inner, ")")
	if strings.ContainsAny(inner, "()") {
		return "", fmt.Errorf("%s(%s) takes no nested parentheses", kind, shape)
	}
	tidy := strings.Join(strings.Fields(inner), " ")
	switch {
	case inner != strings.TrimSpace(inner):
		return "", fmt.Errorf(`%s(%s) takes no space right after "(" or before ")": write %s(%s)`, kind, shape, kind, tidy)
	case strings.Contains(shape, " ") && inner != tidy:
		return "", fmt.Errorf("%s(%s) separates its parts by one space each (no doubled spaces or tabs): write %s(%s)", kind, shape, kind, tidy)
	}
	return inner, nil
}

// parseRate reads "value unit": a positive whole number and a unit that is
// singular for 1 and plural otherwise ("rate(1 hours) and rate(5 hour)
// aren't valid"). A rate beyond time.Duration (about 292 years, past the
// last cron year) is held at the largest duration.
func parseRate(inner string) (time.Duration, error) {
	value, unit, ok := strings.Cut(inner, " ")
	if !ok || value == "" || unit == "" || strings.Contains(unit, " ") {
		return 0, fmt.Errorf("rate(value unit) needs a number, one space and a unit, e.g. rate(5 minutes), got rate(%s)", inner)
	}
	n, err := strconv.Atoi(value)
	if err != nil || !isDigits(value) || n < 1 || value[0] == '0' {
		return 0, fmt.Errorf("the rate value must be a positive whole number, got %q", value)
	}
	per := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	singular := strings.TrimSuffix(unit, "s")
	d, known := per[singular]
	switch {
	case !known || (unit != singular && unit != singular+"s"):
		return 0, fmt.Errorf("the rate unit must be minute, minutes, hour, hours, day or days, got %q", unit)
	case n == 1 && unit != singular:
		return 0, fmt.Errorf("rate(1 %s): a value of 1 takes the singular unit %q", unit, singular)
	case n > 1 && unit == singular:
		return 0, fmt.Errorf("rate(%d %s): a value above 1 takes the plural unit %q", n, unit, unit+"s")
	}
	if n > math.MaxInt64/int(d) {
		return math.MaxInt64, nil
	}
	return time.Duration(n) * d, nil
}

const (
	atLayoutDoc = "yyyy-mm-ddThh:mm:ss"
	atLayout    = "2006-01-02T15:04:05"
)

// parseAt reads a one-time schedule's date and time. The time zone is not
// part of the expression: the schedule carries it apart.
func parseAt(inner string) (time.Time, error) {
	if !atShape(inner) {
		return time.Time{}, fmt.Errorf("at() takes exactly %s, e.g. at(2030-01-31T02:00:00), without a zone suffix (the schedule's time zone is set apart), got at(%s)",
			atLayoutDoc, inner)
	}
	t, err := time.ParseInLocation(atLayout, inner, time.UTC)
	if err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return time.Time{}, fmt.Errorf("at(%s) is not a valid date and time: %s", inner, strings.TrimPrefix(pe.Message, ": "))
		}
		return time.Time{}, fmt.Errorf("at(%s) is not a valid date and time: %v", inner, err)
	}
	return t, nil
}

// atShape reports whether s has the digits and separators of
// yyyy-mm-ddThh:mm:ss. time.Parse alone would also take a one-digit hour or
// trailing fractional seconds.
func atShape(s string) bool {
	if len(s) != len(atLayout) {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch l := atLayout[i]; l {
		case '-', 'T', ':':
			if s[i] != l {
				return false
			}
		default:
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
