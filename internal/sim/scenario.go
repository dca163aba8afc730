package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is an arrival pattern over a horizon. Times are seconds from the
// start of the simulation, which is midnight UTC of Start (a schedule's
// fire times are read from that clock).
type Scenario struct {
	Name        string
	Description string
	Horizon     float64 // s; costs are scaled from it to a 30-day month
	// arrivals draws the upload times (seconds from the start, any order).
	arrivals func(r *rand.Rand) []float64
	fixed    []Upload // a CSV's uploads (job durations may be given)
}

// Upload is one config upload: when it lands, how long its job runs and,
// for EdpOneOff, how long after its message its rule's RunTask comes.
type Upload struct {
	At  float64 // s from the start
	Job float64 // s; 0 draws from the JobModel
	// TaskDelay is the time from the message to the rule's RunTask (s,
	// EdpOneOff); 0 takes Params.RuleTaskDelay.
	TaskDelay float64
}

// Start is the simulated clock's origin for the built-in scenarios: a
// Monday, midnight UTC, so a weekday schedule fires as it would.
var Start = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

const (
	minute = 60.0
	hour   = 3600.0
	day    = 86400.0
	month  = 30 * day
)

// Scenarios returns the built-in scenario set, in documentation order:
//
//   - steady: Poisson arrivals at 1 upload a minute for 2 days (≈2,880);
//   - burst: 100 uploads within one minute every 6 hours (00:00, 06:00, …)
//     for 2 days (800);
//   - nightly: a batch of 300 uploads spread over 22:00–22:10 each night for
//     2 days (600);
//   - trickle: Poisson arrivals at 6 a day for 2 days (≈12), always below
//     the default N of 10.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "steady", Description: "Poisson arrivals, 1 upload a minute, 2 days", Horizon: 2 * day,
			arrivals: func(r *rand.Rand) []float64 { return poisson(r, 1/minute, 2*day) }},
		{Name: "burst", Description: "100 uploads within a minute every 6 hours, 2 days", Horizon: 2 * day,
			arrivals: func(r *rand.Rand) []float64 { return batches(r, 100, 6*hour, 0, minute, 2*day) }},
		{Name: "nightly", Description: "300 uploads over 22:00–22:10 each night, 2 days", Horizon: 2 * day,
			arrivals: func(r *rand.Rand) []float64 { return batches(r, 300, day, 22*hour, 10*minute, 2*day) }},
		{Name: "trickle", Description: "Poisson arrivals, 6 uploads a day (below N), 2 days", Horizon: 2 * day,
			arrivals: func(r *rand.Rand) []float64 { return poisson(r, 6/day, 2*day) }},
	}
}

// ScenarioNames lists the built-in scenarios' names.
func ScenarioNames() []string {
	var out []string
	for _, s := range Scenarios() {
		out = append(out, s.Name)
	}
	return out
}

func poisson(r *rand.Rand, rate, horizon float64) []float64 {
	var out []float64
	for t := r.ExpFloat64() / rate; t < horizon; t += r.ExpFloat64() / rate {
		out = append(out, t)
	}
	return out
}

// batches puts n uploads uniformly within width after offset, every period.
func batches(r *rand.Rand, n int, period, offset, width, horizon float64) []float64 {
	var out []float64
	for t0 := offset; t0 < horizon; t0 += period {
		for range n {
			out = append(out, t0+r.Float64()*width)
		}
	}
	return out
}

// ParseArrivals reads a CSV of uploads, one a line: the upload time — RFC
// 3339 (2026-01-05T22:00:00Z) or seconds from the start — optionally the
// job's duration in seconds and, for EdpOneOff, the seconds from the
// upload's message to its rule's RunTask (Upload.TaskDelay). A header line and blank lines are skipped.
// RFC 3339 times start the clock at midnight UTC of the earliest upload's
// day (the returned start); the horizon is the whole days the uploads span.
func ParseArrivals(name string, r io.Reader) (Scenario, time.Time, error) {
	type row struct {
		at  time.Time
		sec float64
		job float64
		tsk float64
		abs bool
	}
	var rows []row
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		cols := strings.Split(text, ",")
		first := strings.TrimSpace(cols[0])
		var rw row
		if t, err := time.Parse(time.RFC3339, first); err == nil {
			rw.at, rw.abs = t.UTC(), true
		} else if v, err := strconv.ParseFloat(first, 64); err == nil && v >= 0 && !math.IsInf(v, 0) {
			rw.sec = v
		} else if line == 1 {
			continue // a header
		} else {
			return Scenario{}, time.Time{}, fmt.Errorf("arrivals %s:%d: %q is neither an RFC 3339 time nor seconds ≥ 0", name, line, first)
		}
		if len(cols) > 1 && strings.TrimSpace(cols[1]) != "" {
			v, err := strconv.ParseFloat(strings.TrimSpace(cols[1]), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) {
				return Scenario{}, time.Time{}, fmt.Errorf("arrivals %s:%d: job seconds %q must be a number > 0", name, line, cols[1])
			}
			rw.job = v
		}
		if len(cols) > 2 && strings.TrimSpace(cols[2]) != "" {
			v, err := strconv.ParseFloat(strings.TrimSpace(cols[2]), 64)
			if err != nil || v < 0 || math.IsInf(v, 0) {
				return Scenario{}, time.Time{}, fmt.Errorf("arrivals %s:%d: task delay seconds %q must be a number ≥ 0", name, line, cols[2])
			}
			rw.tsk = v
		}
		if len(rows) > 0 && rows[0].abs != rw.abs {
			return Scenario{}, time.Time{}, fmt.Errorf("arrivals %s:%d: mixes RFC 3339 times and seconds", name, line)
		}
		rows = append(rows, rw)
	}
	if err := sc.Err(); err != nil {
		return Scenario{}, time.Time{}, fmt.Errorf("read arrivals %s: %w", name, err)
	}
	if len(rows) == 0 {
		return Scenario{}, time.Time{}, errors.New("arrivals " + name + ": no uploads")
	}
	start := Start
	if rows[0].abs {
		first := slices.MinFunc(rows, func(a, b row) int { return a.at.Compare(b.at) }).at
		start = time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, time.UTC)
	}
	s := Scenario{Name: "csv", Description: "uploads from " + name}
	last := 0.0
	for _, rw := range rows {
		at := rw.sec
		if rw.abs {
			at = rw.at.Sub(start).Seconds()
		}
		last = max(last, at)
		s.fixed = append(s.fixed, Upload{At: at, Job: rw.job, TaskDelay: rw.tsk})
	}
	s.Horizon = math.Max(1, math.Ceil(last/day)) * day
	if last >= s.Horizon {
		s.Horizon += day
	}
	return s, start, nil
}

// JobModel is the job-duration distribution: lognormal around Median with
// log-standard deviation Sigma (0: every job takes Median).
//
// The default, 1 s median, is the built-in Iris job: docs/consumer.md's
// performance table measures 12.1 jobs/s for a 200-config drain against the
// local emulator (≈0.08 s a job), and on AWS each job's ~11 S3 and SQS
// requests take tens of milliseconds each, so a second is a round,
// pessimistic figure. Measure your own job (a run record's duration) and
// pass it with `edp simulate -job-seconds`.
//
// Failures is the share of attempts that fail transiently (0 to 1; default
// 0): the attempt takes its full time, the consumer hides the message for
// the retry delay (Params.RetryDelay, doubled per earlier receive, capped
// at edp:visibilityTimeoutSeconds), and after edp:maxReceiveCount failed
// receives the queue's redrive moves it to the DLQ.
type JobModel struct {
	Median   float64 // s
	Sigma    float64
	Failures float64
}

// DefaultJob is the built-in Iris job.
var DefaultJob = JobModel{Median: 1, Sigma: 0.3}

func (j JobModel) draw(r *rand.Rand) float64 {
	if j.Sigma == 0 {
		return j.Median
	}
	return j.Median * math.Exp(j.Sigma*r.NormFloat64())
}

// uploads draws the scenario's uploads (sorted) and their job durations.
func (s Scenario) uploads(r *rand.Rand, job JobModel) []Upload {
	var out []Upload
	if s.fixed != nil {
		out = slices.Clone(s.fixed)
	} else {
		for _, at := range s.arrivals(r) {
			out = append(out, Upload{At: at})
		}
	}
	slices.SortStableFunc(out, func(a, b Upload) int { return cmpFloat(a.At, b.At) })
	for i := range out {
		if out[i].Job == 0 {
			out[i].Job = job.draw(r)
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
