package config

import (
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Conversions of YAML values, by YAML's own types (never guessed from the
// text): each returns the value and whether it is one the key allows.

// versionName accepts a safe artifact folder name (versionRE, no "..").
func versionName(v *yaml.Node) (string, bool) {
	s, ok := str(v)
	return s, ok && versionRE.MatchString(s) && !strings.Contains(s, "..")
}

// testSize accepts a row count >= 1 or a fraction in (0, 1).
func testSize(v *yaml.Node) (Size, bool) {
	if i, ok := integer(v); ok {
		return Size{N: clampInt(i)}, i >= 1
	}
	x, ok := float(v)
	return Size{Frac: x}, ok && x > 0 && x < 1
}

// randomState accepts an integer in [0, MaxRandomState].
func randomState(v *yaml.Node) (*int64, bool) {
	i, ok := integer(v)
	return &i, ok && i >= 0 && i <= MaxRandomState
}

// oneOf accepts the strings given.
func oneOf(allowed ...string) func(*yaml.Node) (string, bool) {
	return func(v *yaml.Node) (string, bool) {
		s, ok := str(v)
		for _, a := range allowed {
			if ok && s == a {
				return s, true
			}
		}
		return "", false
	}
}

// intIn accepts an integer in [lo, hi].
func intIn(lo, hi int64) func(*yaml.Node) (int, bool) {
	return func(v *yaml.Node) (int, bool) {
		i, ok := integer(v)
		return clampInt(i), ok && i >= lo && i <= hi
	}
}

// sizeOf accepts a count of at least minN, or a float (written as one)
// that fracOK accepts.
func sizeOf(minN int64, fracOK func(float64) bool) func(*yaml.Node) (Size, bool) {
	return func(v *yaml.Node) (Size, bool) {
		if i, ok := integer(v); ok && i >= minN {
			return Size{N: clampInt(i)}, true
		}
		x, ok := float(v)
		return Size{Frac: x}, ok && !isInt(v) && fracOK(x)
	}
}

// isIntOrNull accepts any integer, or null.
func isIntOrNull(v *yaml.Node) bool {
	_, ok := integer(v)
	return ok || isNull(v)
}

// isInteger accepts any integer.
func isInteger(v *yaml.Node) bool {
	_, ok := integer(v)
	return ok
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
