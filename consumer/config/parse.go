package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
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

// IsVersion reports whether s may name a version folder: 1 to 100 of
// letters, digits, '.', '_' and '-', starting with a letter or digit, and
// no "..".
func IsVersion(s string) bool { return versionRE.MatchString(s) && !strings.Contains(s, "..") }

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

// config parses the document's root mapping, defaults first.
func (p *parser) config(root *yaml.Node) *Config {
	if root.Kind != yaml.MappingNode {
		p.fail("", "config must be a mapping with keys %s, got %s", listAnd(configSection.allowed("")), describe(root))
		return nil
	}
	cfg := &Config{}
	configSection.defaults(cfg, "")
	parseSection(p, "", root, configSection, "", cfg)
	return cfg
}

// listAnd joins names as "a, b and c".
func listAnd(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// The tables, one per section of a config (docs/config.md documents each
// key). A key's row says what it accepts, where it goes and its default.

// configSection is the document's root. The model is parsed last, after
// the check that it is there.
var configSection = section[Config]{keys: []key[Config]{
	subsection("run_config", runSection, func(c *Config) *Run { return &c.Run }),
	subsection("train_test_split", splitSection, func(c *Config) *Split { return &c.Split }),
	subsection("model", modelSection, func(c *Config) *Model { return &c.Model }).
		requiredAs(fmt.Sprintf("a mapping with type (%s or %s) and optional params", DecisionTree, RandomForest)).parsedLast(),
}}

// runSection is run_config.
var runSection = section[Run]{nullable: true, keys: []key[Run]{
	value("version", func(r *Run) *string { return &r.Version }, DefaultVersion, versionName,
		"1-100 characters of letters, digits, '.', '_' or '-', starting with a letter or digit (it names the artifact folder)").nullIsDefault(),
}}

// randomStateWant says what a random_state may be.
var randomStateWant = fmt.Sprintf("an integer in [0, %d] or null", int64(MaxRandomState))

// splitSection is train_test_split, with scikit-learn's semantics.
var splitSection = section[Split]{nullable: true, after: checkStratify, keys: []key[Split]{
	value("test_size", func(s *Split) *Size { return &s.TestSize }, Size{Frac: 0.25}, testSize,
		"a float in (0.0, 1.0) or a positive integer row count").nullIsDefault(),
	{name: "train_size", parse: func(p *parser, path string, _ *Split, v *yaml.Node) {
		if !isNull(v) {
			p.fail(path, "not implemented by edp (only null, the scikit-learn default, is accepted); set test_size instead")
		}
	}},
	value("random_state", func(s *Split) **int64 { return &s.RandomState }, nil, randomState, randomStateWant).nullIsDefault(),
	value("shuffle", func(s *Split) *bool { return &s.Shuffle }, true, boolean, "true or false"),
	value("stratify", func(s *Split) *bool { return &s.Stratify }, false, boolean,
		"true (stratify by class label), false or null").nullIsDefault(),
}}

// checkStratify refuses what scikit-learn refuses: stratifying unshuffled rows.
func checkStratify(p *parser, path string, s *Split) {
	if s.Stratify && !s.Shuffle {
		p.fail(join(path, "stratify"), "cannot be true when shuffle is false (scikit-learn does not support it either)")
	}
}

// modelSection is model. Its params are parsed last: the parameters a
// model has, and their defaults, depend on its type.
var modelSection = section[Model]{keys: []key[Model]{
	value("type", func(m *Model) *string { return &m.Type }, "", oneOf(DecisionTree, RandomForest), DecisionTree+" or "+RandomForest).
		requiredAs(DecisionTree + " or " + RandomForest),
	{name: "params", last: true, parse: parseParams},
}}

// parseParams sets the defaults of the model's type, then parses params
// (v, nil when absent) over them. Without a valid type there is nothing
// to check params against; the type's problem is reported already.
func parseParams(p *parser, path string, m *Model, v *yaml.Node) {
	if m.Type == "" {
		return
	}
	m.Params = Params{}
	paramsSection.defaults(&m.Params, m.Type)
	if v != nil {
		parseSection(p, path, v, paramsSection, m.Type, &m.Params)
	}
}

// paramsSection is model.params: scikit-learn's parameter names and
// semantics. Rows limited to one model belong to that model only; the
// hidden rows are scikit-learn parameters edp does not implement, accepted
// only with scikit-learn's default (which is what edp does anyway).
var paramsSection = section[Params]{nullable: true, params: true, keys: []key[Params]{
	value("criterion", func(ps *Params) *string { return &ps.Criterion }, Gini, oneOf(Gini, Entropy, LogLoss),
		"one of gini, entropy, log_loss"),
	value("max_depth", func(ps *Params) *int { return &ps.MaxDepth }, 0, intIn(1, math.MaxInt64),
		"a positive integer or null").nullIsDefault(),
	value("min_samples_split", func(ps *Params) *Size { return &ps.MinSamplesSplit }, Size{N: 2},
		sizeOf(2, func(x float64) bool { return x > 0 && x <= 1 }), "an integer >= 2 or a float in (0.0, 1.0]"),
	value("min_samples_leaf", func(ps *Params) *Size { return &ps.MinSamplesLeaf }, Size{N: 1},
		sizeOf(1, func(x float64) bool { return x > 0 && x < 1 }), "an integer >= 1 or a float in (0.0, 1.0)"),
	maxFeaturesKey(MaxFeatures{}).only(DecisionTree),
	maxFeaturesKey(MaxFeatures{Name: "sqrt"}).only(RandomForest),
	value("random_state", func(ps *Params) **int64 { return &ps.RandomState }, nil, randomState, randomStateWant).nullIsDefault(),
	value("n_estimators", func(ps *Params) *int { return &ps.NEstimators }, 100, intIn(1, MaxEstimators),
		fmt.Sprintf("an integer in [1, %d]", MaxEstimators)).only(RandomForest),
	value("bootstrap", func(ps *Params) *bool { return &ps.Bootstrap }, true, boolean, "true or false").only(RandomForest),
	// Accepted for compatibility and ignored: trees are always fitted in
	// parallel, and results do not depend on it.
	ignored[Params]("n_jobs", isIntOrNull, "an integer or null (edp ignores it)").only(RandomForest),
	ignored[Params]("verbose", isInteger, "an integer (edp ignores it)").only(RandomForest),
	sklearnDefault("splitter", `"best"`).only(DecisionTree),
	sklearnDefault("min_weight_fraction_leaf", "0.0"),
	sklearnDefault("max_leaf_nodes", "null"),
	sklearnDefault("min_impurity_decrease", "0.0"),
	sklearnDefault("class_weight", "null"),
	sklearnDefault("ccp_alpha", "0.0"),
	sklearnDefault("monotonic_cst", "null"),
	sklearnDefault("oob_score", "false").only(RandomForest),
	sklearnDefault("warm_start", "false").only(RandomForest),
	sklearnDefault("max_samples", "null").only(RandomForest),
}}

// sklearnDefault is a scikit-learn parameter edp does not implement: only
// its default def (as isDefault spells it) is accepted.
func sklearnDefault(name, def string) key[Params] {
	return key[Params]{name: name, hidden: true, parse: func(p *parser, path string, _ *Params, v *yaml.Node) {
		if !isDefault(v, def) {
			p.fail(path, "scikit-learn parameter not implemented by edp; only its default %s is accepted, got %s", def, describe(v))
		}
	}}
}

// maxFeaturesKey is max_features with the default def.
func maxFeaturesKey(def MaxFeatures) key[Params] {
	return key[Params]{
		name:  "max_features",
		def:   func(ps *Params) { ps.MaxFeatures = def },
		parse: parseMaxFeatures,
	}
}

func parseMaxFeatures(p *parser, path string, ps *Params, v *yaml.Node) {
	const allowed = `"sqrt", "log2", a positive integer, a float in (0.0, 1.0] or null`
	switch {
	case isNull(v):
		ps.MaxFeatures = MaxFeatures{}
	case isInt(v):
		if i, ok := integer(v); ok && i >= 1 {
			ps.MaxFeatures = MaxFeatures{N: clampInt(i)}
			return
		}
		p.fail(path, "must be %s, got %s", allowed, describe(v))
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!float":
		if x, ok := float(v); ok && x > 0 && x <= 1 {
			ps.MaxFeatures = MaxFeatures{Frac: x}
			return
		}
		p.fail(path, "must be %s, got %s", allowed, describe(v))
	default:
		s, ok := str(v)
		switch {
		case ok && (s == "sqrt" || s == "log2"):
			ps.MaxFeatures = MaxFeatures{Name: s}
		case ok && s == "auto":
			p.fail(path, `"auto" was removed in scikit-learn 1.3; use "sqrt" (what it meant for classifiers)`)
		default:
			p.fail(path, "must be %s, got %s", allowed, describe(v))
		}
	}
}
