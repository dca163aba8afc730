package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strings"
)

// SamplesKey is the key under which a calibration file keeps its
// measurements. LoadTimings skips every key that starts with "_".
const SamplesKey = "_samples"

// The measurements a calibration file keeps, and the parameters they make.
const (
	SampleTaskStart  = "taskStart"  // s, RunTask → RUNNING: taskStartP50, taskStartP90
	SampleEventDelay = "eventDelay" // s, upload → the rule's RunTask: eventDelay (median)
)

// Calibration is a timings file (LoadTimings reads it as is) that also
// keeps the measurements its figures come from, so that each run of a
// measuring tool (`edp smoke -timings FILE`) adds its samples and the
// figures are recomputed from all of them. Parameters set by hand in the
// file are kept unless a measurement makes them.
type Calibration struct {
	params  map[string]float64
	samples map[string][]float64
}

// ReadCalibration reads a calibration (or plain timings) file; an empty
// reader is an empty calibration.
func ReadCalibration(r io.Reader) (*Calibration, error) {
	c := &Calibration{params: map[string]float64{}, samples: map[string][]float64{}}
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(string(raw)) == "" {
		return c, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%w: want a JSON object: %v", ErrTimings, err)
	}
	for k, v := range doc {
		switch {
		case k == SamplesKey:
			if err := json.Unmarshal(v, &c.samples); err != nil {
				return nil, fmt.Errorf("%w: %s must map a measurement to a list of seconds: %v", ErrTimings, SamplesKey, err)
			}
		case strings.HasPrefix(k, "_"):
		default:
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				return nil, fmt.Errorf("%w: %s must be a number: %v", ErrTimings, k, err)
			}
			c.params[k] = f
		}
	}
	for k := range c.samples {
		if k != SampleTaskStart && k != SampleEventDelay {
			return nil, fmt.Errorf("%w: unknown measurement %q in %s (known: %s, %s)", ErrTimings, k, SamplesKey, SampleTaskStart, SampleEventDelay)
		}
	}
	return c, nil
}

// Add records one measurement (SampleTaskStart or SampleEventDelay), in
// seconds.
func (c *Calibration) Add(measurement string, seconds float64) {
	c.samples[measurement] = append(c.samples[measurement], seconds)
}

// Samples returns how many measurements of a kind the file holds.
func (c *Calibration) Samples(measurement string) int { return len(c.samples[measurement]) }

// Params returns the file's parameters, those its measurements make
// included: taskStartP50 and taskStartP90 as the nearest-rank percentiles
// of the task starts (taskStartMax raised to the P90 when it would be
// below), eventDelay as the median of the delays.
func (c *Calibration) Params() map[string]float64 {
	out := maps.Clone(c.params)
	if s := c.samples[SampleTaskStart]; len(s) > 0 {
		p := percentiles(s)
		out["taskStartP50"], out["taskStartP90"] = p.P50, p.P90
		maxStart := DefaultParams().TaskStartMax
		if v, ok := out["taskStartMax"]; ok {
			maxStart = v
		}
		if maxStart < p.P90 {
			out["taskStartMax"] = p.P90
		}
	}
	if s := c.samples[SampleEventDelay]; len(s) > 0 {
		out["eventDelay"] = percentiles(s).P50
	}
	return out
}

// Write writes the parameters and the samples as an indented JSON object,
// keys sorted.
func (c *Calibration) Write(w io.Writer) error {
	doc := map[string]any{}
	for k, v := range c.Params() {
		doc[k] = v
	}
	if len(c.samples) > 0 {
		doc[SamplesKey] = c.samples // encoding/json sorts map keys
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
