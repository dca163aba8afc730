package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/edp-pipelines/edp/internal/textlimit"
)

// Problem is one thing wrong with a config.
type Problem struct {
	// Path is the dotted key path ("model.params.max_depth"); empty for
	// problems with the document as a whole.
	Path string
	// Msg says what is wrong and what is allowed.
	Msg string
}

// String renders the problem as "path: message".
func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Error is returned by Parse for an invalid config. It lists every problem
// found, in document order.
type Error struct {
	Problems []Problem
}

// Error joins all problems into one line.
func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid config: " + strings.Join(parts, "; ")
}

// versionRE is the charset a version may use: it becomes a folder name, so
// no separators, no leading dot and nothing a shell or URL would mangle.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)

// Parse decodes and validates a YAML or JSON config, returning it with all
// defaults filled in. Any problem yields an *Error.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxBytes {
		return nil, &Error{[]Problem{{Msg: fmt.Sprintf("config is %d bytes, limit is %d (%d KiB)", len(data), MaxBytes, MaxBytes>>10)}}}
	}
	if !utf8.Valid(data) {
		return nil, &Error{[]Problem{{Msg: "config is not valid UTF-8 text"}}}
	}
	// Decoding builds the whole node tree of a document before any limit
	// can be checked on it, so the node limit is enforced first on a count
	// that can only be too high.
	if nodeBound(data, MaxNodes) > MaxNodes {
		return nil, &Error{[]Problem{{Msg: fmt.Sprintf("config has too many YAML nodes: its ':', ',', '?', '- ', '[' and '{' allow more than %d, the limit", MaxNodes)}}}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{[]Problem{{Msg: "config is empty"}}}
		}
		return nil, &Error{[]Problem{{Msg: "not valid YAML or JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")}}}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &Error{[]Problem{{Msg: "config must be a single YAML document (found a '---' separator followed by more content)"}}}
	}
	nodes := 0
	if p := checkShape(&doc, 0, &nodes); p != nil {
		return nil, &Error{[]Problem{*p}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &Error{[]Problem{{Msg: "config is empty"}}}
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, &Error{[]Problem{{Msg: "config is empty"}}}
	}
	p := &parser{}
	cfg := p.config(root)
	if len(p.problems) > 0 {
		return nil, &Error{p.problems}
	}
	return cfg, nil
}

// checkShape enforces the structural limits before any value is looked at.
// Its node count is exact; after nodeBound it cannot exceed MaxNodes, but
// it keeps checkShape whole on its own.
func checkShape(n *yaml.Node, depth int, count *int) *Problem {
	*count++
	if *count > MaxNodes {
		return &Problem{Msg: fmt.Sprintf("config has more than %d YAML nodes", MaxNodes)}
	}
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return &Problem{Msg: fmt.Sprintf("line %d: YAML anchors and aliases (&name, *name) are not allowed", n.Line)}
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		if depth >= MaxDepth {
			return &Problem{Msg: fmt.Sprintf("line %d: config nests deeper than %d levels", n.Line, MaxDepth)}
		}
		depth++
	}
	for _, c := range n.Content {
		if p := checkShape(c, depth, count); p != nil {
			return p
		}
	}
	return nil
}

type parser struct {
	problems []Problem
}

func (p *parser) fail(path, format string, args ...any) {
	p.problems = append(p.problems, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// field is one key of a mapping.
type field struct {
	key   string
	value *yaml.Node
}

// mapping returns n's keys in document order, reporting non-string and
// duplicate keys. ok is false if n is not a mapping (or null, which
// callers treat as an empty section when allowNull is set).
func (p *parser) mapping(path string, n *yaml.Node, allowNull bool) ([]field, bool) {
	if allowNull && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		p.fail(path, "must be a mapping of keys to values, got %s", describe(n))
		return nil, false
	}
	var fields []field
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			p.fail(path, "keys must be strings, got %s", describe(k))
			continue
		}
		if seen[k.Value] {
			p.fail(join(path, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		fields = append(fields, field{k.Value, v})
	}
	return fields, true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe renders a node for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		// Cut at a character, not a byte: this text reaches failure
		// records and DLQ reasons.
		v := textlimit.Clip(n.Value, 40)
		switch n.ShortTag() {
		case "!!str":
			return strconv.Quote(v)
		case "!!null":
			return "null"
		case "!!int", "!!float", "!!bool":
			return v
		default:
			return fmt.Sprintf("%s (tagged %s)", strconv.Quote(v), n.Tag)
		}
	}
	return "an unsupported YAML node"
}

func unknownKey(p *parser, path string, allowed []string) {
	p.fail(path, "unknown key (allowed: %s)", strings.Join(allowed, ", "))
}

func (p *parser) config(root *yaml.Node) *Config {
	cfg := &Config{
		Run:   Run{Version: DefaultVersion},
		Split: Split{TestSize: Size{Frac: 0.25}, Shuffle: true},
	}
	fields, ok := p.mapping("", root, false)
	if !ok {
		p.problems[len(p.problems)-1].Msg = "config must be a mapping with keys run_config, train_test_split and model, got " + describe(root)
		return nil
	}
	var model *yaml.Node
	for _, f := range fields {
		switch f.key {
		case "run_config":
			p.run(f.key, f.value, &cfg.Run)
		case "train_test_split":
			p.split(f.key, f.value, &cfg.Split)
		case "model":
			model = f.value
		default:
			unknownKey(p, f.key, []string{"run_config", "train_test_split", "model"})
		}
	}
	if model == nil {
		p.fail("model", "required: a mapping with type (%s or %s) and optional params", DecisionTree, RandomForest)
	} else {
		p.model("model", model, &cfg.Model)
	}
	return cfg
}

func (p *parser) run(path string, n *yaml.Node, r *Run) {
	fields, _ := p.mapping(path, n, true)
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "version":
			if f.value.Kind == yaml.ScalarNode && f.value.ShortTag() == "!!null" {
				continue
			}
			v, ok := str(f.value)
			if !ok || !versionRE.MatchString(v) || strings.Contains(v, "..") {
				p.fail(fp, "must be 1-100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit (it names the artifact folder), got %s", describe(f.value))
				continue
			}
			r.Version = v
		default:
			unknownKey(p, fp, []string{"version"})
		}
	}
}

func (p *parser) split(path string, n *yaml.Node, s *Split) {
	fields, _ := p.mapping(path, n, true)
	for _, f := range fields {
		fp := join(path, f.key)
		v := f.value
		switch f.key {
		case "test_size":
			if isNull(v) {
				continue
			}
			if i, ok := integer(v); ok {
				if i < 1 {
					p.fail(fp, "must be a float in (0.0, 1.0) or a positive integer row count, got %s", describe(v))
					continue
				}
				s.TestSize = Size{N: clampInt(i)}
				continue
			}
			if x, ok := float(v); ok && x > 0 && x < 1 {
				s.TestSize = Size{Frac: x}
				continue
			}
			p.fail(fp, "must be a float in (0.0, 1.0) or a positive integer row count, got %s", describe(v))
		case "train_size":
			if !isNull(v) {
				p.fail(fp, "not implemented by edp (only null, the scikit-learn default, is accepted); set test_size instead")
			}
		case "random_state":
			s.RandomState = p.randomState(fp, v)
		case "shuffle":
			if b, ok := boolean(v); ok {
				s.Shuffle = b
			} else {
				p.fail(fp, "must be true or false, got %s", describe(v))
			}
		case "stratify":
			if b, ok := boolean(v); ok {
				s.Stratify = b
			} else if isNull(v) {
				s.Stratify = false
			} else {
				p.fail(fp, "must be true (stratify by class label), false or null, got %s", describe(v))
			}
		default:
			unknownKey(p, fp, []string{"test_size", "train_size", "random_state", "shuffle", "stratify"})
		}
	}
	if s.Stratify && !s.Shuffle {
		p.fail(join(path, "stratify"), "cannot be true when shuffle is false (scikit-learn does not support it either)")
	}
}

func (p *parser) randomState(path string, v *yaml.Node) *int64 {
	if isNull(v) {
		return nil
	}
	if i, ok := integer(v); ok && i >= 0 && i <= MaxRandomState {
		return &i
	}
	p.fail(path, "must be an integer in [0, %d] or null, got %s", int64(MaxRandomState), describe(v))
	return nil
}

func (p *parser) model(path string, n *yaml.Node, m *Model) {
	fields, ok := p.mapping(path, n, false)
	if !ok {
		return
	}
	var params *yaml.Node
	for _, f := range fields {
		fp := join(path, f.key)
		switch f.key {
		case "type":
			t, ok := str(f.value)
			if !ok || (t != DecisionTree && t != RandomForest) {
				p.fail(fp, "must be %s or %s, got %s", DecisionTree, RandomForest, describe(f.value))
				continue
			}
			m.Type = t
		case "params":
			params = f.value
		default:
			unknownKey(p, fp, []string{"type", "params"})
		}
	}
	if m.Type == "" {
		if !slices.ContainsFunc(fields, func(f field) bool { return f.key == "type" }) {
			p.fail(join(path, "type"), "required: %s or %s", DecisionTree, RandomForest)
		}
		return
	}
	m.Params = defaultParams(m.Type)
	if params != nil {
		p.params(join(path, "params"), params, m.Type, &m.Params)
	}
}

func defaultParams(modelType string) Params {
	ps := Params{
		Criterion:       Gini,
		MinSamplesSplit: Size{N: 2},
		MinSamplesLeaf:  Size{N: 1},
	}
	if modelType == RandomForest {
		ps.NEstimators = 100
		ps.MaxFeatures = MaxFeatures{Name: "sqrt"}
		ps.Bootstrap = true
	}
	return ps
}

// Parameter names by role, for messages.
var (
	commonParams = []string{"criterion", "max_depth", "min_samples_split", "min_samples_leaf", "max_features", "random_state"}
	forestParams = []string{"n_estimators", "bootstrap"}
	// defaultOnly are scikit-learn parameters edp does not implement; they
	// are accepted only with the scikit-learn default, which is a no-op.
	defaultOnly = map[string]string{
		"splitter":                 `"best"`,
		"min_weight_fraction_leaf": "0.0",
		"max_leaf_nodes":           "null",
		"min_impurity_decrease":    "0.0",
		"class_weight":             "null",
		"ccp_alpha":                "0.0",
		"monotonic_cst":            "null",
		"oob_score":                "false",
		"warm_start":               "false",
		"max_samples":              "null",
	}
	// forestOnly are RandomForestClassifier parameters that
	// DecisionTreeClassifier does not have.
	forestOnly = []string{"n_estimators", "bootstrap", "oob_score", "n_jobs", "verbose", "warm_start", "max_samples"}
)

func (p *parser) params(path string, n *yaml.Node, modelType string, ps *Params) {
	fields, _ := p.mapping(path, n, true)
	allowed := slices.Clone(commonParams)
	if modelType == RandomForest {
		allowed = append(allowed, forestParams...)
	}
	for _, f := range fields {
		fp := join(path, f.key)
		v := f.value
		if modelType == DecisionTree && slices.Contains(forestOnly, f.key) {
			p.fail(fp, "not a %s parameter (it belongs to %s)", DecisionTree, RandomForest)
			continue
		}
		if modelType == RandomForest && f.key == "splitter" {
			p.fail(fp, "not a %s parameter (it belongs to %s)", RandomForest, DecisionTree)
			continue
		}
		switch f.key {
		case "n_estimators":
			if i, ok := integer(v); ok && i >= 1 && i <= MaxEstimators {
				ps.NEstimators = int(i)
			} else {
				p.fail(fp, "must be an integer in [1, %d], got %s", MaxEstimators, describe(v))
			}
		case "criterion":
			if s, ok := str(v); ok && (s == Gini || s == Entropy || s == LogLoss) {
				ps.Criterion = s
			} else {
				p.fail(fp, "must be one of gini, entropy, log_loss, got %s", describe(v))
			}
		case "max_depth":
			if isNull(v) {
				ps.MaxDepth = 0
			} else if i, ok := integer(v); ok && i >= 1 {
				ps.MaxDepth = clampInt(i)
			} else {
				p.fail(fp, "must be a positive integer or null, got %s", describe(v))
			}
		case "min_samples_split":
			if i, ok := integer(v); ok && i >= 2 {
				ps.MinSamplesSplit = Size{N: clampInt(i)}
			} else if x, ok := float(v); ok && !isInt(v) && x > 0 && x <= 1 {
				ps.MinSamplesSplit = Size{Frac: x}
			} else {
				p.fail(fp, "must be an integer >= 2 or a float in (0.0, 1.0], got %s", describe(v))
			}
		case "min_samples_leaf":
			if i, ok := integer(v); ok && i >= 1 {
				ps.MinSamplesLeaf = Size{N: clampInt(i)}
			} else if x, ok := float(v); ok && !isInt(v) && x > 0 && x < 1 {
				ps.MinSamplesLeaf = Size{Frac: x}
			} else {
				p.fail(fp, "must be an integer >= 1 or a float in (0.0, 1.0), got %s", describe(v))
			}
		case "max_features":
			p.maxFeatures(fp, v, &ps.MaxFeatures)
		case "bootstrap":
			if b, ok := boolean(v); ok {
				ps.Bootstrap = b
			} else {
				p.fail(fp, "must be true or false, got %s", describe(v))
			}
		case "random_state":
			ps.RandomState = p.randomState(fp, v)
		case "n_jobs":
			// Accepted for compatibility and ignored: trees are always
			// fitted in parallel, and results do not depend on it.
			if _, ok := integer(v); !ok && !isNull(v) {
				p.fail(fp, "must be an integer or null (edp ignores it), got %s", describe(v))
			}
		case "verbose":
			if _, ok := integer(v); !ok {
				p.fail(fp, "must be an integer (edp ignores it), got %s", describe(v))
			}
		default:
			if def, ok := defaultOnly[f.key]; ok {
				if !isDefault(v, def) {
					p.fail(fp, "scikit-learn parameter not implemented by edp; only its default %s is accepted, got %s", def, describe(v))
				}
				continue
			}
			hint := ""
			if modelType == RandomForest {
				hint = ", n_jobs, verbose"
			}
			p.fail(fp, "unknown %s parameter (allowed: %s%s)", modelType, strings.Join(allowed, ", "), hint)
		}
	}
}

func (p *parser) maxFeatures(path string, v *yaml.Node, m *MaxFeatures) {
	const allowed = `"sqrt", "log2", a positive integer, a float in (0.0, 1.0] or null`
	switch {
	case isNull(v):
		*m = MaxFeatures{}
	case isInt(v):
		if i, ok := integer(v); ok && i >= 1 {
			*m = MaxFeatures{N: clampInt(i)}
			return
		}
		p.fail(path, "must be %s, got %s", allowed, describe(v))
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float":
		if x, ok := float(v); ok && x > 0 && x <= 1 {
			*m = MaxFeatures{Frac: x}
			return
		}
		p.fail(path, "must be %s, got %s", allowed, describe(v))
	default:
		s, ok := str(v)
		switch {
		case ok && (s == "sqrt" || s == "log2"):
			*m = MaxFeatures{Name: s}
		case ok && s == "auto":
			p.fail(path, `"auto" was removed in scikit-learn 1.3; use "sqrt" (what it meant for classifiers)`)
		default:
			p.fail(path, "must be %s, got %s", allowed, describe(v))
		}
	}
}

// isDefault reports whether v spells the scikit-learn default def.
func isDefault(v *yaml.Node, def string) bool {
	switch def {
	case "null":
		return isNull(v)
	case "false":
		b, ok := boolean(v)
		return ok && !b
	case "0.0":
		x, ok := float(v)
		return ok && x == 0
	default:
		s, ok := str(v)
		return ok && strconv.Quote(s) == def
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func isInt(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" }

func str(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", false
	}
	return n.Value, true
}

func boolean(n *yaml.Node) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		return false, false
	}
	return b, true
}

func integer(n *yaml.Node) (int64, bool) {
	if !isInt(n) {
		return 0, false
	}
	var i int64
	if err := n.Decode(&i); err != nil {
		return 0, false
	}
	return i, true
}

// float accepts ints and floats, but not NaN or infinities.
func float(n *yaml.Node) (float64, bool) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
		return 0, false
	}
	var x float64
	if err := n.Decode(&x); err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}

// clampInt keeps huge YAML integers from overflowing int on 32-bit builds;
// every limit that matters is checked elsewhere against real sizes.
func clampInt(i int64) int {
	if i > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(i)
}
