package schedexpr

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// field is one of the six cron fields as the reference's table lists it:
// its values and the wildcards it accepts.
type field struct {
	pos     int      // 1-based position, used in messages
	name    string   // as the documentation names it
	lo, hi  int      // allowed numeric values
	names   []string // names[i] stands for lo+i (month and day-of-week only)
	wild    string   // the documented wildcards, letters included
	maxStep int      // largest increment after "/"
}

var fields = [6]field{
	{pos: 1, name: "minutes", lo: 0, hi: 59, wild: ",-*/", maxStep: 59},
	{pos: 2, name: "hours", lo: 0, hi: 23, wild: ",-*/", maxStep: 23},
	{pos: 3, name: "day-of-month", lo: 1, hi: 31, wild: ",-*?/LW", maxStep: 31},
	{pos: 4, name: "month", lo: 1, hi: 12, wild: ",-*/", maxStep: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	{pos: 5, name: "day-of-week", lo: 1, hi: 7, wild: ",-*?L#",
		names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
	{pos: 6, name: "year", lo: firstYear, hi: lastYear, wild: ",-*/", maxStep: lastYear - firstYear},
}

// The year range of the Scheduler's cron, and the positions of the fields
// with rules of their own.
const (
	firstYear = 1970
	lastYear  = 2199

	posDayOfMonth = 3
	posDayOfWeek  = 5
	posYear       = 6
)

// cron is a parsed cron(...) expression. Each plain field is the set of
// values it matches; the day is matched by either the day-of-month or the
// day-of-week rule (the other one is "?").
type cron struct {
	minutes, hours, months, years set
	dom                           domRule
	dow                           dowRule
}

// domRule is the day-of-month field.
type domRule struct {
	any         bool // "?": the day-of-week field decides
	days        set  // plain values, ranges, steps, "*"
	last        bool // "L": the last day of the month
	lastWeekday bool // "LW": the last weekday (Monday-Friday) of the month
	nearest     int  // "nW": the weekday nearest day n, within the month
}

// dowRule is the day-of-week field, with 1 = Sunday … 7 = Saturday.
type dowRule struct {
	any    bool // "?": the day-of-month field decides
	days   set  // plain values, ranges, steps, "*", and "L" alone (Saturday)
	lastOf int  // "dL": the last day d of the month
	nthDay int  // "d#k": day d …
	nth    int  // … the k-th of the month
}

// set holds values from lo to lo+255.
type set struct {
	lo   int
	bits [4]uint64
}

func (s *set) add(v int) { i := v - s.lo; s.bits[i/64] |= 1 << (i % 64) }
func (s set) has(v int) bool {
	i := v - s.lo
	return i >= 0 && i < 256 && s.bits[i/64]&(1<<(i%64)) != 0
}

func parseCron(inner string) (*cron, error) {
	parts := strings.Fields(inner)
	if len(parts) != len(fields) {
		return nil, fmt.Errorf("cron needs exactly 6 fields (minutes hours day-of-month month day-of-week year), got %d", len(parts))
	}
	c := &cron{}
	plain := [6]*set{&c.minutes, &c.hours, nil, &c.months, nil, &c.years}
	for i, f := range fields {
		err := f.chars(parts[i])
		if err == nil {
			switch f.pos {
			case posDayOfMonth:
				c.dom, err = f.dayOfMonth(parts[i])
			case posDayOfWeek:
				c.dow, err = f.dayOfWeek(parts[i])
			default:
				*plain[i], err = f.set(parts[i])
			}
		}
		if err != nil {
			return nil, fmt.Errorf("cron field %d (%s) %q: %w", f.pos, f.name, parts[i], err)
		}
	}
	// "You can't specify the Day-of-month and Day-of-week fields in the same
	// cron expression": one of the two must be "?", and only one can be.
	switch {
	case !c.dom.any && !c.dow.any:
		return nil, errors.New(`cron field 3 (day-of-month) and field 5 (day-of-week): one of them must be "?"`)
	case c.dom.any && c.dow.any:
		return nil, errors.New(`cron field 3 (day-of-month) and field 5 (day-of-week): only one of them can be "?"`)
	}
	return c, nil
}

// chars checks that s holds only the field's digits, names and wildcards,
// and "?" only as the whole field.
func (f field) chars(s string) error {
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c >= 'a' && c <= 'z':
			return fmt.Errorf("%q: names and the L and W wildcards are upper case", string(c))
		case c >= 'A' && c <= 'Z' && f.names != nil:
		case !strings.ContainsRune(f.wild, c):
			return fmt.Errorf("%q is not allowed here; allowed: %s", string(c), f.allowed())
		}
	}
	if s != "?" && strings.Contains(s, "?") {
		return errors.New(`"?" must be the whole field`)
	}
	return nil
}

// allowed lists the field's values and wildcards for error messages.
func (f field) allowed() string {
	values := fmt.Sprintf("%d-%d", f.lo, f.hi)
	if f.names != nil {
		values += fmt.Sprintf(" or %s-%s", f.names[0], f.names[len(f.names)-1])
	}
	return values + " and the wildcards " + strings.Join(strings.Split(f.wild, ""), " ")
}

// dayOfMonth reads the day-of-month field: "?", a list, or one of the forms
// with L or W — "L" (last day of the month), "nW" (weekday nearest day n)
// and "LW" (last weekday), which like "#" stand alone in the field.
func (f field) dayOfMonth(s string) (domRule, error) {
	switch {
	case s == "?":
		return domRule{any: true}, nil
	case !strings.ContainsAny(s, "LW"):
		days, err := f.set(s)
		return domRule{days: days}, err
	case strings.ContainsAny(s, ",-/*"):
		return domRule{}, errors.New("L and W stand alone in the day-of-month field: use L, LW or nW (n from 1 to 31)")
	case s == "L":
		return domRule{last: true}, nil
	case s == "LW":
		return domRule{lastWeekday: true}, nil
	case strings.HasSuffix(s, "W") && strings.Count(s, "W") == 1 && !strings.Contains(s, "L"):
		n, err := f.value(strings.TrimSuffix(s, "W"))
		return domRule{nearest: n}, err
	}
	return domRule{}, errors.New("use L, LW or nW (n from 1 to 31) in the day-of-month field")
}

// dayOfWeek reads the day-of-week field: "?", a list, or one of the forms
// "L" (last day of the week), "dL" (last d of the month) and "d#k" (k-th d
// of the month). The documentation says a "#" expression must be the only
// one in the field ("3#1,6#3" is not valid); the same holds for L.
func (f field) dayOfWeek(s string) (dowRule, error) {
	if s == "?" {
		return dowRule{any: true}, nil
	}
	if strings.Contains(s, "#") || s == "L" || (strings.HasSuffix(s, "L") && !strings.Contains(s, ",")) {
		return f.nthOrLast(s)
	}
	for _, item := range strings.Split(s, ",") {
		if strings.HasSuffix(item, "L") {
			return dowRule{}, errors.New("with L, the day-of-week field holds a single expression (no list)")
		}
		if day, ok := strings.CutSuffix(item, "W"); ok && isDigits(day) {
			return dowRule{}, errors.New("W (nearest weekday) belongs in the day-of-month field")
		}
	}
	days, err := f.set(s)
	return dowRule{days: days}, err
}

func (f field) nthOrLast(s string) (dowRule, error) {
	const forms = "use L, dL or d#k (d from 1 to 7 or SUN-SAT, k from 1 to 5)"
	if strings.ContainsAny(s, ",-/*") {
		return dowRule{}, errors.New("with # or L, the day-of-week field holds a single expression (no list, range or step); " + forms)
	}
	if s == "L" {
		r := dowRule{days: set{lo: f.lo}}
		r.days.add(f.hi)
		return r, nil
	}
	if day, ok := strings.CutSuffix(s, "L"); ok && !strings.ContainsAny(day, "#L") {
		d, err := f.value(day)
		return dowRule{lastOf: d}, err
	}
	day, nth, ok := strings.Cut(s, "#")
	if !ok || strings.Contains(nth, "#") || strings.Contains(s, "L") {
		return dowRule{}, errors.New(forms)
	}
	d, err := f.value(day)
	if err != nil {
		return dowRule{}, err
	}
	k, err := strconv.Atoi(nth)
	if err != nil || k < 1 || k > 5 || !isDigits(nth) {
		return dowRule{}, fmt.Errorf("the number after # must be from 1 to 5 (the k-th such day of the month), got %q", nth)
	}
	return dowRule{nthDay: d, nth: k}, nil
}

// set reads a comma-separated list of items into the set of values it
// matches.
func (f field) set(s string) (set, error) {
	out := set{lo: f.lo}
	for _, item := range strings.Split(s, ",") {
		vals, err := f.item(item)
		if err != nil {
			return out, err
		}
		for _, v := range vals {
			out.add(v)
		}
	}
	return out, nil
}

// item expands one list item: "*", a value or a range "a-b", each
// optionally followed by "/step" ("a/step" runs from a to the end of the
// field). A range whose end is below its start wraps around the field
// (hours 22-2 are 22, 23, 0, 1, 2; the documentation's own example runs
// hours 20-2), and a step counts along the range as written, wrap included.
// Years do not repeat, so a backwards year range is a mistake.
func (f field) item(item string) ([]int, error) {
	if item == "" {
		return nil, errors.New("empty item in a comma-separated list")
	}
	base, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || !isDigits(stepText) || n < 1 || n > f.maxStep {
			return nil, fmt.Errorf("the increment after / must be a whole number from 1 to %d, got %q", f.maxStep, stepText)
		}
		step = n
	}
	from, to := f.lo, f.hi
	if base == "" {
		return nil, errors.New(`a "/" increment needs a start value or "*" before it, e.g. 0/15`)
	}
	if base != "*" {
		a, b, isRange := strings.Cut(base, "-")
		var err error
		if from, err = f.value(a); err != nil {
			return nil, err
		}
		switch {
		case isRange:
			if to, err = f.value(b); err != nil {
				return nil, err
			}
			if f.pos == posYear && from > to {
				return nil, fmt.Errorf("the year range %d-%d runs backwards", from, to)
			}
		case !hasStep:
			to = from
		}
	}
	length := to - from + 1
	if to < from {
		length += f.hi - f.lo + 1
	}
	var out []int
	for i := 0; i < length; i += step {
		v := from + i
		if v > f.hi {
			v -= f.hi - f.lo + 1
		}
		out = append(out, v)
	}
	return out, nil
}

// value parses a number or a name and checks it is in the field's range.
func (f field) value(tok string) (int, error) {
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

// next returns the first wall time at or after from (fields in UTC, whole
// minutes) that the expression matches, and false when no year left in its
// range has one.
func (c *cron) next(from time.Time) (time.Time, bool) {
	y, mo, d, h, mi := from.Year(), int(from.Month()), from.Day(), from.Hour(), from.Minute()
	if y < firstYear {
		y, mo, d, h, mi = firstYear, 1, 1, 0, 0
	}
	for y <= lastYear {
		switch {
		case !c.years.has(y) || mo > 12:
			y, mo, d, h, mi = y+1, 1, 1, 0, 0
		case !c.months.has(mo) || d > daysIn(y, mo):
			mo, d, h, mi = mo+1, 1, 0, 0
		case !c.day(y, mo, d) || h > 23:
			d, h, mi = d+1, 0, 0
		case !c.hours.has(h) || mi > 59:
			h, mi = h+1, 0
		case !c.minutes.has(mi):
			mi++
		default:
			return time.Date(y, time.Month(mo), d, h, mi, 0, 0, time.UTC), true
		}
	}
	return time.Time{}, false
}

// day reports whether the day-of-month or day-of-week rule matches the date.
func (c *cron) day(y, mo, d int) bool {
	last := daysIn(y, mo)
	if c.dom.any {
		r := c.dow
		wd := int(time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC).Weekday()) + 1 // 1 = Sunday
		switch {
		case r.lastOf != 0:
			return wd == r.lastOf && d+7 > last
		case r.nth != 0:
			return wd == r.nthDay && (d-1)/7+1 == r.nth
		default:
			return r.days.has(wd)
		}
	}
	r := c.dom
	switch {
	case r.last:
		return d == last
	case r.lastWeekday:
		return d == nearestWeekday(y, mo, last)
	case r.nearest != 0:
		return r.nearest <= last && d == nearestWeekday(y, mo, r.nearest)
	default:
		return r.days.has(d)
	}
}

// nearestWeekday returns the Monday-to-Friday day of the month nearest day
// n without leaving the month: a Saturday moves to the Friday before (or,
// on the 1st, to Monday the 3rd), a Sunday to the Monday after (or, on the
// last day, to Friday two days before).
func nearestWeekday(y, mo, n int) int {
	switch time.Date(y, time.Month(mo), n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == daysIn(y, mo) {
			return n - 2
		}
		return n + 1
	}
	return n
}

// daysIn returns the number of days of a month.
func daysIn(y, mo int) int {
	return time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
