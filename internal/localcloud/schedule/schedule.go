// Package schedule computes when an EventBridge Scheduler schedule fires, so
// the local cloud can run what a deployed AWS::Scheduler::Schedule would
// start, and a sped-up Clock that waits for those fire times in a fraction of
// the real time.
//
// Parse accepts the three expression kinds Scheduler accepts — cron(...),
// rate(...) and at(...) — with the syntax rules of settings.ValidateSchedule
// (the check synth applies), evaluated in an IANA time zone the way the
// "Schedule types on EventBridge Scheduler" page of the Scheduler User Guide
// describes:
//
//   - cron and at name wall-clock times in the schedule's time zone. A wall
//     time that does not exist because the clocks spring forward is skipped;
//     a wall time that happens twice because they fall back fires once, at
//     its first occurrence.
//   - rate is a fixed duration on the real clock (a day is 24 hours, whatever
//     daylight saving time does), counted from the schedule's start date.
//
// Fire times are exact (minute boundaries for cron); Scheduler itself invokes
// within the minute, and a flexible time window would add more jitter.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/settings"
)

// kind is the form of a schedule expression.
type kind int

const (
	kindNone kind = iota // the zero Schedule: never fires
	kindCron
	kindRate
	kindAt
)

// Schedule is a parsed schedule expression in its time zone, optionally
// bounded by a start and an end date like the StartDate and EndDate of an
// AWS::Scheduler::Schedule. The zero Schedule never fires. Schedules are
// values: the With methods return modified copies.
type Schedule struct {
	expr  string
	loc   *time.Location
	kind  kind
	cron  *cronExpr
	rate  time.Duration
	at    time.Time // kindAt: the wall time, with its fields in UTC
	start time.Time
	end   time.Time
}

// Parse parses a Scheduler expression — cron(min hour day-of-month month
// day-of-week year), rate(N minute[s]|hour[s]|day[s]) or
// at(yyyy-mm-ddThh:mm:ss) — to be evaluated in the IANA time zone tz
// ("UTC" when tz is empty, as Scheduler's default). An error names what is
// wrong with the expression or the zone.
func Parse(expr, tz string) (Schedule, error) {
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return Schedule{}, fmt.Errorf("parse schedule %q: time zone %q: %w", expr, tz, err)
	}
	if err := settings.ValidateSchedule(expr); err != nil {
		return Schedule{}, fmt.Errorf("parse schedule %q: %w", expr, err)
	}
	s := Schedule{expr: expr, loc: loc}
	inner := expr[strings.IndexByte(expr, '(')+1 : len(expr)-1]
	switch {
	case strings.HasPrefix(expr, "cron("):
		s.kind = kindCron
		s.cron, err = parseCron(inner)
	case strings.HasPrefix(expr, "rate("):
		s.kind = kindRate
		s.rate, err = parseRate(inner)
	case strings.HasPrefix(expr, "at("):
		s.kind = kindAt
		s.at, err = time.ParseInLocation("2006-01-02T15:04:05", inner, time.UTC)
	}
	if err != nil {
		return Schedule{}, fmt.Errorf("parse schedule %q: %w", expr, err)
	}
	return s, nil
}

// String returns the expression the schedule was parsed from.
func (s Schedule) String() string { return s.expr }

// Location returns the time zone the schedule is evaluated in (nil for the
// zero Schedule).
func (s Schedule) Location() *time.Location { return s.loc }

// WithStart returns s with a start date: no fire before start, and a rate
// schedule fires at start, start+rate, start+2·rate, … (Scheduler's
// StartDate). Without one, a rate schedule fires one rate after the time
// Next is given, so chained calls fire at a steady rate from the first. The
// zero time removes the start date.
func (s Schedule) WithStart(start time.Time) Schedule {
	s.start = start
	return s
}

// WithEnd returns s with an end date: it fires only before end (Scheduler's
// EndDate). The zero time removes the end date.
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
	switch s.kind {
	case kindCron:
		t, ok = s.nextCron(after)
	case kindRate:
		t, ok = s.nextRate(after), true
	case kindAt:
		t, ok = resolveWall(s.at, s.loc)
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
	if s.start.IsZero() {
		return after.Add(s.rate)
	}
	if after.Before(s.start) {
		return s.start
	}
	n := after.Sub(s.start) / s.rate // whole rates up to after
	return s.start.Add((n + 1) * s.rate)
}

// nextCron walks the wall clock of the schedule's zone minute by matching
// minute and returns the first wall time that exists and, at its first
// occurrence, lies after after.
func (s Schedule) nextCron(after time.Time) (time.Time, bool) {
	l := after.In(s.loc)
	wall := time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), 0, 0, time.UTC).Add(time.Minute)
	for {
		w, ok := s.cron.next(wall)
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

// parseRate turns "N unit" (already validated) into a duration.
func parseRate(inner string) (time.Duration, error) {
	value, unit, _ := strings.Cut(inner, " ")
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, fmt.Errorf("rate value %q: %w", value, err)
	}
	var d time.Duration
	switch strings.TrimSuffix(unit, "s") {
	case "minute":
		d = time.Minute
	case "hour":
		d = time.Hour
	case "day":
		d = 24 * time.Hour
	default:
		return 0, fmt.Errorf("rate unit %q", unit)
	}
	if time.Duration(n) > (1<<63-1)/d {
		return 0, errors.New("rate too large")
	}
	return time.Duration(n) * d, nil
}
