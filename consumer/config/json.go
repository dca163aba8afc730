package config

import (
	"encoding/json"
	"strconv"
	"strings"
)

// JSON renders c as a config document in the upload format (JSON is valid
// YAML), with every default spelled out. Parse(c.JSON()) yields a Config
// equal to c, so the rendering is a complete, reproducible record of a run's
// settings once the random states are filled in. Keys are sorted, so the
// output is byte-stable.
func (c *Config) JSON() []byte {
	split := map[string]any{
		"test_size":    size(c.Split.TestSize),
		"random_state": c.Split.RandomState,
		"shuffle":      c.Split.Shuffle,
		"stratify":     c.Split.Stratify,
	}
	p := c.Model.Params
	params := map[string]any{
		"criterion":         p.Criterion,
		"max_depth":         nil,
		"min_samples_split": size(p.MinSamplesSplit),
		"min_samples_leaf":  size(p.MinSamplesLeaf),
		"max_features":      maxFeatures(p.MaxFeatures),
		"random_state":      p.RandomState,
	}
	if p.MaxDepth > 0 {
		params["max_depth"] = p.MaxDepth
	}
	if c.Model.Type == RandomForest {
		params["n_estimators"] = p.NEstimators
		params["bootstrap"] = p.Bootstrap
	}
	doc := map[string]any{
		"run_config":       map[string]any{"version": c.Run.Version},
		"train_test_split": split,
		"model":            map[string]any{"type": c.Model.Type, "params": params},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		// Only maps, strings, bools, ints and finite floats are marshalled.
		panic("config: marshal JSON: " + err.Error())
	}
	return append(b, '\n')
}

// floatJSON always renders with a decimal point or exponent, so 1.0 stays a
// float when parsed again (as an int it would mean a row count).
type floatJSON float64

// MarshalJSON implements json.Marshaler.
func (f floatJSON) MarshalJSON() ([]byte, error) {
	s := strconv.FormatFloat(float64(f), 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return []byte(s), nil
}

func size(s Size) any {
	if s.N > 0 {
		return s.N
	}
	return floatJSON(s.Frac)
}

func maxFeatures(m MaxFeatures) any {
	switch {
	case m.Name != "":
		return m.Name
	case m.N > 0:
		return m.N
	case m.Frac > 0:
		return floatJSON(m.Frac)
	}
	return nil
}
