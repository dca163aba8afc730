package config

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// decodedNodes decodes every document of data with the decoder Parse uses
// and counts the nodes built (an alias is one node; its target is counted
// where it is defined). ok is false if a document does not decode.
func decodedNodes(data []byte) (n int, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return n, true
		}
		if err != nil {
			return n, false
		}
		n += countNodes(&doc)
	}
}

func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// checkBound fails t if nodeBound counts fewer nodes than decoding data
// builds.
func checkBound(t *testing.T, data []byte) {
	t.Helper()
	n, ok := decodedNodes(data)
	if !ok {
		return
	}
	if b := nodeBound(data, math.MaxInt); b < n {
		t.Errorf("nodeBound(%q) = %d, but decoding builds %d nodes", data, b, n)
	}
}

// The shapes in which the parser makes nodes without a character of their
// own (empty keys, values and items, implicit documents, single-pair
// mappings in lists) are where an undercount would hide.
func TestNodeBoundIsAnUpperBound(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"", "a", "~", "---", "--- \n", "---\n---\n---\n", "...\n---\n...\n", "%YAML 1.2\n---\na\n",
		"\ufeff---\n---\na\n", "a: b\r---\r\nc\r\n",
		"-", "- ", "-\n-\n-\n", "- - - -\n", "- -\n  -\n", "[]", "[a]", "[a, b, c,]", "[[[[]]]]",
		"{}", "{a}", "{a, b, c}", "{a: 1, b: 2}", "{a:}", "{? }", "{? a, ? b: c}",
		"[a: b]", "[a: b, c: d, e]", "[? a]", "[? a : b, ? : c, :]", "[:, :]", `{"a":1,"b":[1,2,{"c":null}]}`,
		"a:", "a:\nb:\nc:\n", ": b\n", "? a\n? b\n", "? a\n: b\n? \n: \n",
		"a:\n- 1\n- 2\nb:\n  - 3\n", "- a: 1\n  b: 2\n- c: 3\n", "&a a: *a\n", "!!str\n", "- !!null\n- &x\n- *x\n",
		"a: |\n  - x\n  - y\n", "a: >\n  b: c\n", "'a: b, c': \"d, [e]\"\n", "a: b # c: d, e\n",
		"-\u0085-\u0085-", "- a\u2028- b\u2029- c", "a\u0085---\u0085b", "a: 1\u2028---\u2028b", "a\u2029---\u2029b",
		"run_config: {version: v1}\nmodel:\n  type: RandomForestClassifier\n  params: {n_estimators: 10}\n",
	} {
		checkBound(t, []byte(in))
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		checkBound(t, readFixture(t, filepath.Base(name)))
	}
}

// The bound stays close to the real count for configs as people write them
// (comments included; full.yaml sets every key edp knows), so it never
// refuses one: far under MaxNodes.
func TestNodeBoundOfRealConfigs(t *testing.T) {
	t.Parallel()
	examples, err := filepath.Glob(filepath.Join("..", "..", "examples", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	paths := examples
	for _, name := range []string{"random-forest.yaml", "decision-tree.json", "minimal.yaml", "full.yaml"} {
		paths = append(paths, filepath.Join("testdata", name))
	}
	if len(examples) == 0 {
		t.Fatal("no example configs found")
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n, ok := decodedNodes(data)
		if !ok {
			t.Fatalf("%s does not decode", p)
		}
		if b := nodeBound(data, math.MaxInt); b > 3*n || b > MaxNodes/5 {
			t.Errorf("%s: nodeBound = %d for %d nodes; want at most 3 times as many and under %d", p, b, n, MaxNodes/5)
		}
	}
}

// The scan stops once the bound passes the limit, so a long hostile config
// is refused after reading a small part of it.
func TestNodeBoundStopsAtTheLimit(t *testing.T) {
	t.Parallel()
	data := []byte("[" + strings.Repeat("1,", 1<<20) + "1]")
	if b := nodeBound(data, 100); b <= 100 || b > 102 {
		t.Errorf("nodeBound(1 MiB of list items, limit 100) = %d, want 101 or 102", b)
	}
}
