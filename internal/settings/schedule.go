package settings

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file checks edp:schedule by the rules AWS documents for EventBridge
// Scheduler expressions ("Schedule types on EventBridge Scheduler" in the
// EventBridge Scheduler User Guide, whose cron and rate syntax is the one in
// the EventBridge User Guide's "Cron expressions" and "Rate expressions"
// references), so an expression CloudFormation would reject at deploy time is
// rejected at synth time, with the field and the rule named.

// ValidateSchedule returns nil when expr is a schedule expression EventBridge
// Scheduler accepts — cron(...), rate(...) or at(...) — and otherwise an error
// saying which part is wrong and what is allowed there. It checks syntax and
// ranges only: whether a cron expression ever fires, or whether an at() time
// is still in the future, is left to the Scheduler.
func ValidateSchedule(expr string) error {
	switch {
	case strings.HasPrefix(expr, "cron("):
		inner, err := unwrap(expr, "cron", "minutes hours day-of-month month day-of-week year")
		if err != nil {
			return err
		}
		return validateCron(inner)
	case strings.HasPrefix(expr, "rate("):
		inner, err := unwrap(expr, "rate", "value unit")
		if err != nil {
			return err
		}
		return validateRate(inner)
	case strings.HasPrefix(expr, "at("):
		inner, err := unwrap(expr, "at", atLayoutDoc)
		if err != nil {
			return err
		}
		return validateAt(inner)
	default:
		return errors.New(`the expression must start with "cron(", "rate(" or "at("`)
	}
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

// cronField describes one of the six fields as the cron reference's table
// lists it: its values and the wildcards it accepts.
type cronField struct {
	pos     int      // 1-based position, used in messages
	name    string   // as the documentation names it
	lo, hi  int      // allowed numeric values
	names   []string // names[i] stands for lo+i (month and day-of-week only)
	wild    string   // the documented wildcards, letters included
	maxStep int      // largest increment after "/"
}

var cronFields = [6]cronField{
	{pos: 1, name: "minutes", lo: 0, hi: 59, wild: ",-*/", maxStep: 59},
	{pos: 2, name: "hours", lo: 0, hi: 23, wild: ",-*/", maxStep: 23},
	{pos: 3, name: "day-of-month", lo: 1, hi: 31, wild: ",-*?/LW", maxStep: 31},
	{pos: 4, name: "month", lo: 1, hi: 12, wild: ",-*/", maxStep: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{pos: 5, name: "day-of-week", lo: 1, hi: 7, wild: ",-*?L#",
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
	{pos: 6, name: "year", lo: 1970, hi: 2199, wild: ",-*/", maxStep: 2199 - 1970},
}

// Positions of the fields with rules of their own.
const (
	posDayOfMonth = 3
	posDayOfWeek  = 5
	posYear       = 6
)

func validateCron(inner string) error {
	parts := strings.Fields(inner)
	if len(parts) != len(cronFields) {
		return fmt.Errorf("cron needs exactly 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(parts))
	}
	for i, f := range cronFields {
		if err := f.check(parts[i]); err != nil {
			return fmt.Errorf("cron field %d (%s) %q: %w", f.pos, f.name, parts[i], err)
		}
	}
	// "You can't specify the Day-of-month and Day-of-week fields in the same
	// cron expression": one of the two must be "?", and only one can be.
	dom, dow := parts[posDayOfMonth-1] == "?", parts[posDayOfWeek-1] == "?"
	switch {
	case !dom && !dow:
		return errors.New(`cron field 3 (day-of-month) and field 5 (day-of-week): one of them must be "?"`)
	case dom && dow:
		return errors.New(`cron field 3 (day-of-month) and field 5 (day-of-week): only one of them can be "?"`)
	}
	return nil
}

// check validates one field's text.
func (f cronField) check(s string) error {
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z':
			return fmt.Errorf("%q: names and the L and W wildcards are upper case", string(c))
		case c >= 'A' && c <= 'Z':
			if f.names == nil && !strings.ContainsRune(f.wild, c) {
				return fmt.Errorf("%q is not allowed here; allowed: %s", string(c), f.allowed())
			}
		default:
			if !strings.ContainsRune(f.wild, c) {
				return fmt.Errorf("%q is not allowed here; allowed: %s", string(c), f.allowed())
			}
		}
	}
	if s == "?" {
		return nil
	}
	if strings.Contains(s, "?") {
		return errors.New(`"?" must be the whole field`)
	}
	switch f.pos {
	case posDayOfMonth:
		if strings.ContainsAny(s, "LW") {
			return f.checkLastOrWeekday(s)
		}
	case posDayOfWeek:
		if strings.ContainsAny(s, "#") || s == "L" || (strings.HasSuffix(s, "L") && !strings.Contains(s, ",")) {
			return f.checkNth(s)
		}
		for _, item := range strings.Split(s, ",") {
			if strings.HasSuffix(item, "L") {
				return errors.New("with L, the day-of-week field holds a single expression (no list)")
			}
			if day, ok := strings.CutSuffix(item, "W"); ok && isDigits(day) {
				return errors.New("W (nearest weekday) belongs in the day-of-month field")
			}
		}
	}
	for _, item := range strings.Split(s, ",") {
		if err := f.checkItem(item); err != nil {
			return err
		}
	}
	return nil
}

// allowed lists the field's values and wildcards for error messages.
func (f cronField) allowed() string {
	values := fmt.Sprintf("%d-%d", f.lo, f.hi)
	if f.names != nil {
		values += fmt.Sprintf(" or %s-%s", f.names[0], f.names[len(f.names)-1])
	}
	return values + " and the wildcards " + strings.Join(strings.Split(f.wild, ""), " ")
}

// checkLastOrWeekday validates the day-of-month forms with L or W: "L" (last
// day of the month), "nW" (weekday nearest day n) and "LW" (last weekday).
// Like "#" in the day-of-week field, they stand alone in the field.
func (f cronField) checkLastOrWeekday(s string) error {
	if strings.ContainsAny(s, ",-/*") {
		return errors.New("L and W stand alone in the day-of-month field: use L, LW or nW (n from 1 to 31)")
	}
	switch {
	case s == "L", s == "LW":
		return nil
	case strings.HasSuffix(s, "W") && strings.Count(s, "W") == 1 && !strings.Contains(s, "L"):
		_, err := f.value(strings.TrimSuffix(s, "W"))
		return err
	}
	return errors.New("use L, LW or nW (n from 1 to 31) in the day-of-month field")
}

// checkNth validates the day-of-week forms "L" (last day of the week), "dL"
// (last d of the month) and "d#k" (k-th d of the month). The documentation
// says a "#" expression must be the only one in the field ("3#1,6#3" is not
// valid); the same holds for L.
func (f cronField) checkNth(s string) error {
	const forms = "use L, dL or d#k (d from 1 to 7 or SUN-SAT, k from 1 to 5)"
	if strings.ContainsAny(s, ",-/*") {
		return errors.New("with # or L, the day-of-week field holds a single expression (no list, range or step); " + forms)
	}
	if s == "L" {
		return nil
	}
	if day, ok := strings.CutSuffix(s, "L"); ok && !strings.ContainsAny(day, "#L") {
		_, err := f.value(day)
		return err
	}
	day, nth, ok := strings.Cut(s, "#")
	if !ok || strings.Contains(nth, "#") || strings.Contains(s, "L") {
		return errors.New(forms)
	}
	if _, err := f.value(day); err != nil {
		return err
	}
	if k, err := strconv.Atoi(nth); err != nil || k < 1 || k > 5 || !isDigits(nth) {
		return fmt.Errorf("the number after # must be from 1 to 5 (the k-th such day of the month), got %q", nth)
	}
	return nil
}

// checkItem validates one comma-separated item: "*", a value, a range
// "a-b", each optionally followed by "/step".
func (f cronField) checkItem(item string) error {
	if item == "" {
		return errors.New("empty item in a comma-separated list")
	}
	base, step, hasStep := strings.Cut(item, "/")
	if hasStep {
		if n, err := strconv.Atoi(step); err != nil || !isDigits(step) || n < 1 || n > f.maxStep {
			return fmt.Errorf("the increment after / must be a whole number from 1 to %d, got %q", f.maxStep, step)
		}
	}
	if base == "*" {
		return nil
	}
	if base == "" {
		return errors.New(`a "/" increment needs a start value or "*" before it, e.g. 0/15`)
	}
	from, to, isRange := strings.Cut(base, "-")
	a, err := f.value(from)
	if err != nil {
		return err
	}
	if !isRange {
		return nil
	}
	b, err := f.value(to)
	if err != nil {
		return err
	}
	// Ranges in the cyclic fields may wrap (the documentation's own example
	// runs hours 20-2); years do not repeat, so a backwards year range is a
	// mistake.
	if f.pos == posYear && a > b {
		return fmt.Errorf("the year range %d-%d runs backwards", a, b)
	}
	return nil
}

// value parses a number or a name and checks it is in the field's range.
func (f cronField) value(tok string) (int, error) {
	if isDigits(tok) {
		n, err := strconv.Atoi(tok)
		if err != nil || n < f.lo || n > f.hi {
			return 0, fmt.Errorf("%s is outside %d-%d", tok, f.lo, f.hi)
		}
		return n, nil
	}
	for i, name := range f.names {
		if tok == name {
			return f.lo + i, nil
		}
	}
	if f.names != nil {
		return 0, fmt.Errorf("%q is neither a number from %d to %d nor one of %s", tok, f.lo, f.hi, strings.Join(f.names, ","))
	}
	return 0, fmt.Errorf("%q is not a number from %d to %d", tok, f.lo, f.hi)
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

// validateRate checks "value unit": a positive whole number and a unit that
// is singular for 1 and plural otherwise ("rate(1 hours) and rate(5 hour)
// aren't valid").
func validateRate(inner string) error {
	value, unit, ok := strings.Cut(inner, " ")
	if !ok || value == "" || unit == "" || strings.Contains(unit, " ") {
		return fmt.Errorf("rate(value unit) needs a number, one space and a unit, e.g. rate(5 minutes), got rate(%s)", inner)
	}
	n, err := strconv.Atoi(value)
	if err != nil || !isDigits(value) || n < 1 || value[0] == '0' {
		return fmt.Errorf("the rate value must be a positive whole number, got %q", value)
	}
	var singular bool
	switch unit {
	case "minute", "hour", "day":
		singular = true
	case "minutes", "hours", "days":
	default:
		return fmt.Errorf("the rate unit must be minute, minutes, hour, hours, day or days, got %q", unit)
	}
	switch {
	case n == 1 && !singular:
		return fmt.Errorf("rate(1 %s): a value of 1 takes the singular unit %q", unit, strings.TrimSuffix(unit, "s"))
	case n > 1 && singular:
		return fmt.Errorf("rate(%d %s): a value above 1 takes the plural unit %q", n, unit, unit+"s")
	}
	return nil
}

const (
	atLayoutDoc = "yyyy-mm-ddThh:mm:ss"
	atLayout    = "2006-01-02T15:04:05"
)

// validateAt checks a one-time schedule's date and time. The time zone is
// not part of the expression: it comes from edp:scheduleTimeZone.
func validateAt(inner string) error {
	if !atShape(inner) {
		return fmt.Errorf("at() takes exactly %s, e.g. at(2030-01-31T02:00:00), without a zone suffix (the zone is %s), got at(%s)",
			atLayoutDoc, KeyScheduleTimeZone, inner)
	}
	if _, err := time.Parse(atLayout, inner); err != nil {
		var pe *time.ParseError
		if errors.As(err, &pe) && pe.Message != "" {
			return fmt.Errorf("at(%s) is not a valid date and time: %s", inner, strings.TrimPrefix(pe.Message, ": "))
		}
		return fmt.Errorf("at(%s) is not a valid date and time: %v", inner, err)
	}
	return nil
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
