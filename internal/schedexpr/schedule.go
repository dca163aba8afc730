package schedexpr

import (
	"fmt"
	"time"
)

// Schedule is an Expr in its time zone, optionally bounded by a start and
// an end date like the StartDate and EndDate of an AWS::Scheduler::Schedule.
// The zero Schedule never fires. Schedules are values: the With methods
// return modified copies.
type Schedule struct {
	expr  Expr
	loc   *time.Location
	start time.Time
	end   time.Time
}

// In returns the schedule that evaluates e in the time zone loc (UTC when
// loc is nil, as the Scheduler's default).
func (e Expr) In(loc *time.Location) Schedule {
	if loc == nil {
		loc = time.UTC
	}
	return Schedule{expr: e, loc: loc}
}

// ParseIn parses a schedule expression (see Parse) to be evaluated in the
// IANA time zone tz ("UTC" when tz is empty, as the Scheduler's default).
// An error names the expression and what is wrong with it or the zone.
func ParseIn(expr, tz string) (Schedule, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Schedule{}, fmt.Errorf("parse schedule %q: time zone %q: %w", expr, tz, err)
	}
	e, err := Parse(expr)
	if err != nil {
		return Schedule{}, fmt.Errorf("parse schedule %q: %w", expr, err)
	}
	return e.In(loc), nil
}

// String returns the expression the schedule was parsed from.
func (s Schedule) String() string { return s.expr.String() }

// Location returns the time zone the schedule is evaluated in (nil for the
// zero Schedule).
func (s Schedule) Location() *time.Location { return s.loc }

// WithStart returns s with a start date: no fire before start, and a rate
// schedule fires at start, start+rate, start+2·rate, … (the Scheduler's
// StartDate). Without one, a rate schedule fires one rate after the time
// Next is given, so chained calls fire at a steady rate from the first. The
// zero time removes the start date.
func (s Schedule) WithStart(start time.Time) Schedule {
	s.start = start
	return s
}

// WithEnd returns s with an end date: it fires only before end (the
// Scheduler's EndDate). The zero time removes the end date.
func (s Schedule) WithEnd(end time.Time) Schedule {
	s.end = end
	return s
}

// Next returns the first fire time strictly after after, in the schedule's
// time zone, and false when there is none: a one-time schedule already
// past, a cron expression whose years are over (or that can never match,
// such as the 30th of February), a time at or beyond the end date.
func (s Schedule) Next(after time.Time) (time.Time, bool) {
	if !s.start.IsZero() && s.start.After(after) {
		after = s.start.Add(-time.Nanosecond) // the start itself may fire
	}
	var (
		t  time.Time
		ok bool
	)
	switch e := s.expr; {
	case e.cron != nil:
		t, ok = s.nextCron(after)
	case e.rate > 0:
		t, ok = s.nextRate(after), true
	case !e.at.IsZero():
		t, ok = resolveWall(e.at, s.loc)
		ok = ok && t.After(after)
	}
	if !ok || (!s.end.IsZero() && !t.Before(s.end)) {
		return time.Time{}, false
	}
	return t.In(s.loc), true
}

// nextRate counts whole rates from the start date, or one rate from after
// when there is none.
func (s Schedule) nextRate(after time.Time) time.Time {
	rate := s.expr.rate
	if s.start.IsZero() {
		return after.Add(rate)
	}
	if after.Before(s.start) {
		return s.start
	}
	n := after.Sub(s.start) / rate // whole rates up to after
	return s.start.Add((n + 1) * rate)
}

// nextCron walks the wall clock of the schedule's zone minute by matching
// minute and returns the first wall time that exists and, at its first
// occurrence, lies after after.
func (s Schedule) nextCron(after time.Time) (time.Time, bool) {
	l := after.In(s.loc)
	wall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC).Add(time.Minute)
	for {
		w, ok := s.expr.cron.next(wall)
		if !ok {
			return time.Time{}, false
		}
		// A wall time in the gap of a spring-forward transition does not
		// exist (skipped); one that repeats in the fall may already have
		// fired at its first occurrence (not repeated).
		if t, ok := resolveWall(w, s.loc); ok && t.After(after) {
			return t, true
		}
		wall = w.Add(time.Minute)
	}
}

// resolveWall returns the earliest instant at which the clocks of loc show
// the wall time w (whose fields are given in UTC), and false when they
// never do because w falls into a gap.
func resolveWall(w time.Time, loc *time.Location) (time.Time, bool) {
	guess := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	// The offsets that can apply near w: the one at the guess and those of
	// the zone periods just before and after it.
	offsets := []time.Time{guess}
	start, end := guess.ZoneBounds()
	if !start.IsZero() {
		offsets = append(offsets, start.Add(-time.Nanosecond))
	}
	if !end.IsZero() {
		offsets = append(offsets, end)
	}
	var (
		best  time.Time
		found bool
	)
	for _, at := range offsets {
		_, off := at.Zone()
		t := w.Add(-time.Duration(off) * time.Second)
		l := t.In(loc)
		same := l.Year() == w.Year() && l.Month() == w.Month() && l.Day() == w.Day() &&
			l.Hour() == w.Hour() && l.Minute() == w.Minute() && l.Second() == w.Second()
		if same && (!found || t.Before(best)) {
			best, found = t, true
		}
	}
	return best, found
}
