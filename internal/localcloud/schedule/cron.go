package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The year range Scheduler's cron accepts.
const (
	firstYear = 1970
	lastYear  = 2199
)

// cronExpr is a parsed cron(...) expression. Each plain field is a set of
// the values it matches; the day is matched by either the day-of-month or
// the day-of-week rule (the other one is "?").
type cronExpr struct {
	minutes bitset // 0-59
	hours   bitset // 0-23
	months  bitset // 1-12
	years   bitset // firstYear-lastYear, stored as year-firstYear
	dom     domRule
	dow     dowRule
}

// domRule is the day-of-month field.
type domRule struct {
	any         bool   // "?": the day-of-week field decides
	days        bitset // plain values, ranges, steps, "*"
	last        bool   // "L": the last day of the month
	lastWeekday bool   // "LW": the last weekday (Monday-Friday) of the month
	nearest     int    // "nW": the weekday nearest day n, within the month
}

// dowRule is the day-of-week field, with 1 = Sunday … 7 = Saturday.
type dowRule struct {
	any    bool   // "?": the day-of-month field decides
	days   bitset // plain values, ranges, steps, "*", and "L" alone (Saturday)
	lastOf int    // "dL": the last day d of the month
	nthDay int    // "d#k": day d …
	nth    int    // … the k-th of the month
}

// bitset holds small non-negative integers (up to 255).
type bitset [4]uint64

func (b *bitset) set(i int)     { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i int) bool { return i >= 0 && i < 256 && b[i/64]&(1<<(i%64)) != 0 }

// field describes the numeric range and names of a cron field.
type field struct {
	name   string
	lo, hi int
	names  []string // names[i] stands for lo+i
}

var (
	minuteField = field{name: "minutes", lo: 0, hi: 59}
	hourField   = field{name: "hours", lo: 0, hi: 23}
	domField    = field{name: "day-of-month", lo: 1, hi: 31}
	monthField  = field{name: "month", lo: 1, hi: 12,
		names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}}
	dowField  = field{name: "day-of-week", lo: 1, hi: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}}
	yearField = field{name: "year", lo: firstYear, hi: lastYear}
)

// parseCron parses the six fields of a cron expression that
// settings.ValidateSchedule has accepted; errors here mean the two disagree.
func parseCron(inner string) (*cronExpr, error) {
	f := strings.Fields(inner)
	if len(f) != 6 {
		return nil, fmt.Errorf("cron needs 6 fields, got %d", len(f))
	}
	c := &cronExpr{}
	var err error
	if c.minutes, err = minuteField.set(f[0], 0); err != nil {
		return nil, err
	}
	if c.hours, err = hourField.set(f[1], 0); err != nil {
		return nil, err
	}
	if c.dom, err = parseDOM(f[2]); err != nil {
		return nil, err
	}
	if c.months, err = monthField.set(f[3], 0); err != nil {
		return nil, err
	}
	if c.dow, err = parseDOW(f[4]); err != nil {
		return nil, err
	}
	if c.years, err = yearField.set(f[5], firstYear); err != nil {
		return nil, err
	}
	return c, nil
}

func parseDOM(s string) (domRule, error) {
	switch {
	case s == "?":
		return domRule{any: true}, nil
	case s == "L":
		return domRule{last: true}, nil
	case s == "LW":
		return domRule{lastWeekday: true}, nil
	case strings.HasSuffix(s, "W"):
		n, err := domField.value(strings.TrimSuffix(s, "W"))
		return domRule{nearest: n}, err
	}
	days, err := domField.set(s, 0)
	return domRule{days: days}, err
}

func parseDOW(s string) (dowRule, error) {
	switch {
	case s == "?":
		return dowRule{any: true}, nil
	case s == "L": // the last day of the week
		var days bitset
		days.set(7)
		return dowRule{days: days}, nil
	case strings.Contains(s, "#"):
		day, k, _ := strings.Cut(s, "#")
		d, err := dowField.value(day)
		if err != nil {
			return dowRule{}, err
		}
		n, err := strconv.Atoi(k)
		if err != nil || n < 1 || n > 5 {
			return dowRule{}, fmt.Errorf("day-of-week %q: want 1 to 5 after #", s)
		}
		return dowRule{nthDay: d, nth: n}, nil
	case strings.HasSuffix(s, "L"):
		d, err := dowField.value(strings.TrimSuffix(s, "L"))
		return dowRule{lastOf: d}, err
	}
	days, err := dowField.set(s, 0)
	return dowRule{days: days}, err
}

// set parses a comma-separated list of "*", values and ranges, each with an
// optional "/step", into the set of matching values minus base.
func (f field) set(s string, base int) (bitset, error) {
	var b bitset
	for _, item := range strings.Split(s, ",") {
		vals, err := f.item(item)
		if err != nil {
			return b, fmt.Errorf("%s %q: %w", f.name, s, err)
		}
		for _, v := range vals {
			b.set(v - base)
		}
	}
	return b, nil
}

// item expands one list item. A range whose end is below its start wraps
// around the field (hours 22-2 are 22, 23, 0, 1, 2), and a step counts along
// the range as written, wrap included.
func (f field) item(item string) ([]int, error) {
	rng, stepText, hasStep := strings.Cut(item, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("step %q", stepText)
		}
		step = n
	}
	from, to := f.lo, f.hi
	switch {
	case rng == "*":
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if from, err = f.value(a); err != nil {
			return nil, err
		}
		if to, err = f.value(b); err != nil {
			return nil, err
		}
	default:
		v, err := f.value(rng)
		if err != nil {
			return nil, err
		}
		from, to = v, v
		if hasStep { // "a/s": from a to the end of the field
			to = f.hi
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

// value parses a number or a name of the field.
func (f field) value(tok string) (int, error) {
	for i, name := range f.names {
		if tok == name {
			return f.lo + i, nil
		}
	}
	n, err := strconv.Atoi(tok)
	if err != nil || n < f.lo || n > f.hi {
		return 0, fmt.Errorf("%s value %q is outside %d-%d", f.name, tok, f.lo, f.hi)
	}
	return n, nil
}

// next returns the first wall time at or after from (fields in UTC, whole
// minutes) that the expression matches, and false when no year left in its
// range has one.
func (c *cronExpr) next(from time.Time) (time.Time, bool) {
	y, mo, d, h, mi := from.Year(), int(from.Month()), from.Day(), from.Hour(), from.Minute()
	if y < firstYear {
		y, mo, d, h, mi = firstYear, 1, 1, 0, 0
	}
	for y <= lastYear {
		switch {
		case !c.years.has(y-firstYear) || mo > 12:
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
func (c *cronExpr) day(y, mo, d int) bool {
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
	last := daysIn(y, mo)
	switch time.Date(y, time.Month(mo), n, 0, 0, 0, 0, time.UTC).Weekday() {
	case time.Saturday:
		if n == 1 {
			return 3
		}
		return n - 1
	case time.Sunday:
		if n == last {
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
