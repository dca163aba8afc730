package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func ptr(i int64) *int64 { return &i }

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	return readFixtureB(t, name)
}

func readFixtureB(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want *Config
	}{
		{"random-forest.yaml", &Config{
			Run:   Run{Version: "rf-v2"},
			Split: Split{TestSize: Size{Frac: 0.3}, RandomState: ptr(42), Shuffle: true},
			Model: Model{Type: RandomForest, Params: Params{
				NEstimators: 100, Criterion: Gini, MaxDepth: 4,
				MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{N: 1},
				MaxFeatures: MaxFeatures{Name: "sqrt"}, Bootstrap: true, RandomState: ptr(42),
			}},
		}},
		{"decision-tree.json", &Config{
			Run:   Run{Version: "dt-json.1"},
			Split: Split{TestSize: Size{N: 45}, Shuffle: true, Stratify: true},
			Model: Model{Type: DecisionTree, Params: Params{
				Criterion: Entropy, MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{Frac: 0.05},
				MaxFeatures: MaxFeatures{Frac: 0.5},
			}},
		}},
		{"minimal.yaml", &Config{
			Run:   Run{Version: DefaultVersion},
			Split: Split{TestSize: Size{Frac: 0.25}, Shuffle: true},
			Model: Model{Type: DecisionTree, Params: Params{
				Criterion: Gini, MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{N: 1},
			}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(readFixture(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
			// The canonical rendering parses back to the same config.
			again, err := Parse(got.JSON())
			if err != nil {
				t.Fatalf("Parse(JSON()): %v\n%s", err, got.JSON())
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDefaultOnlyParams(t *testing.T) {
	t.Parallel()
	in := `
model:
  type: RandomForestClassifier
  params: {oob_score: false, warm_start: false, max_samples: null, n_jobs: -1, verbose: 0,
           class_weight: null, min_impurity_decrease: 0, max_leaf_nodes: ~, monotonic_cst: null,
           min_weight_fraction_leaf: 0.0, ccp_alpha: 0.0}
`
	if _, err := Parse([]byte(in)); err != nil {
		t.Errorf("Parse: %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	const rf = "model:\n  type: RandomForestClassifier\n  params:\n"
	const dt = "model:\n  type: DecisionTreeClassifier\n  params:\n"
	tests := []struct {
		name string
		in   string
		want []string // substrings the error must contain
	}{
		{"empty", "", []string{"config is empty"}},
		{"only a comment", "# nothing\n", []string{"config is empty"}},
		{"null document", "null\n", []string{"config is empty"}},
		{"not a mapping", "- a\n- b\n", []string{"config must be a mapping", "got a list"}},
		{"scalar document", "hello\n", []string{"config must be a mapping", `got "hello"`}},
		{"syntax error", "model: [unclosed\n", []string{"not valid YAML or JSON"}},
		{"bad JSON", `{"model": {"type": "DecisionTreeClassifier",}`, []string{"not valid YAML or JSON"}},
		{"two documents", "model: {type: DecisionTreeClassifier}\n---\nmodel: {}\n", []string{"single YAML document"}},
		{"unknown top-level key", "modle: {}\nmodel: {type: DecisionTreeClassifier}\n", []string{"modle: unknown key (allowed: run_config, train_test_split, model)"}},
		{"missing model", "run_config: {version: a}\n", []string{"model: required"}},
		{"missing type", "model: {params: {}}\n", []string{"model.type: required"}},
		{"unknown model type", "model: {type: SVC}\n", []string{`model.type: must be DecisionTreeClassifier or RandomForestClassifier, got "SVC"`}},
		{"model is a list", "model: [1]\n", []string{"model: must be a mapping", "got a list"}},
		{"max_depth word", rf + "    max_depth: deep\n", []string{`model.params.max_depth: must be a positive integer or null, got "deep"`}},
		{"max_depth zero", rf + "    max_depth: 0\n", []string{"model.params.max_depth: must be a positive integer or null, got 0"}},
		{"max_depth float", rf + "    max_depth: 4.5\n", []string{"model.params.max_depth: must be a positive integer or null, got 4.5"}},
		{"criterion", rf + "    criterion: mse\n", []string{`model.params.criterion: must be one of gini, entropy, log_loss, got "mse"`}},
		{"n_estimators zero", rf + "    n_estimators: 0\n", []string{"model.params.n_estimators: must be an integer in [1, 5000], got 0"}},
		{"n_estimators huge", rf + "    n_estimators: 1000000000\n", []string{"model.params.n_estimators: must be an integer in [1, 5000]"}},
		{"n_estimators string", rf + "    n_estimators: \"100\"\n", []string{`model.params.n_estimators: must be an integer in [1, 5000], got "100"`}},
		{"min_samples_split one", rf + "    min_samples_split: 1\n", []string{"model.params.min_samples_split: must be an integer >= 2 or a float in (0.0, 1.0], got 1"}},
		{"min_samples_split float too big", rf + "    min_samples_split: 1.5\n", []string{"model.params.min_samples_split: must be"}},
		{"min_samples_leaf zero", rf + "    min_samples_leaf: 0\n", []string{"model.params.min_samples_leaf: must be an integer >= 1 or a float in (0.0, 1.0), got 0"}},
		{"min_samples_leaf 1.0", rf + "    min_samples_leaf: 1.0\n", []string{"model.params.min_samples_leaf: must be"}},
		{"max_features auto", rf + "    max_features: auto\n", []string{`model.params.max_features: "auto" was removed in scikit-learn 1.3`}},
		{"max_features zero", rf + "    max_features: 0\n", []string{"model.params.max_features: must be"}},
		{"max_features fraction > 1", rf + "    max_features: 1.5\n", []string{"model.params.max_features: must be"}},
		{"bootstrap yes", rf + "    bootstrap: yes\n", []string{`model.params.bootstrap: must be true or false, got "yes"`}},
		{"random_state negative", rf + "    random_state: -1\n", []string{"model.params.random_state: must be an integer in [0, 4294967295] or null, got -1"}},
		{"random_state too big", rf + "    random_state: 4294967296\n", []string{"model.params.random_state: must be an integer in [0, 4294967295]"}},
		{"unimplemented ccp_alpha", rf + "    ccp_alpha: 0.01\n", []string{"model.params.ccp_alpha: scikit-learn parameter not implemented by edp; only its default 0.0 is accepted, got 0.01"}},
		{"unimplemented class_weight", rf + "    class_weight: balanced\n", []string{"model.params.class_weight: scikit-learn parameter not implemented"}},
		{"unimplemented oob_score", rf + "    oob_score: true\n", []string{"model.params.oob_score: scikit-learn parameter not implemented"}},
		{"unimplemented splitter", dt + "    splitter: random\n", []string{`model.params.splitter: scikit-learn parameter not implemented by edp; only its default "best" is accepted, got "random"`}},
		{"forest param on a tree", dt + "    n_estimators: 10\n", []string{"model.params.n_estimators: not a DecisionTreeClassifier parameter (it belongs to RandomForestClassifier)"}},
		{"tree param on a forest", rf + "    splitter: best\n", []string{"model.params.splitter: not a RandomForestClassifier parameter"}},
		{"unknown param", rf + "    learning_rate: 0.1\n", []string{"model.params.learning_rate: unknown RandomForestClassifier parameter (allowed: criterion"}},
		{"duplicate key", rf + "    max_depth: 3\n    max_depth: 4\n", []string{"model.params.max_depth: duplicate key"}},
		{"test_size one", "train_test_split: {test_size: 1.0}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.test_size: must be a float in (0.0, 1.0) or a positive integer row count, got 1.0"}},
		{"test_size zero", "train_test_split: {test_size: 0}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.test_size: must be"}},
		{"test_size nan", "train_test_split: {test_size: .nan}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.test_size: must be"}},
		{"train_size", "train_test_split: {train_size: 0.7}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.train_size: not implemented"}},
		{"stratify without shuffle", "train_test_split: {shuffle: false, stratify: true}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.stratify: cannot be true when shuffle is false"}},
		{"stratify column name", "train_test_split: {stratify: species}\nmodel: {type: DecisionTreeClassifier}\n", []string{`train_test_split.stratify: must be true (stratify by class label), false or null, got "species"`}},
		{"version traversal", "run_config: {version: ../../etc}\nmodel: {type: DecisionTreeClassifier}\n", []string{`run_config.version: must be 1-100 characters`, `got "../../etc"`}},
		{"version absolute", "run_config: {version: /tmp/x}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"version dot dot inside", "run_config: {version: a..b}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"version slash", "run_config: {version: a/b}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"version hidden", "run_config: {version: .hidden}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"version odd characters", "run_config: {version: \"v 1;rm\"}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"version number", "run_config: {version: 2}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be", "got 2"}},
		{"version too long", "run_config: {version: " + strings.Repeat("a", 101) + "}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.version: must be"}},
		{"anchor", "model: &m {type: DecisionTreeClassifier}\n", []string{"anchors and aliases"}},
		{"deep nesting", strings.Repeat("[", 50) + strings.Repeat("]", 50), []string{"nests deeper than 8 levels"}},
		{"very deep nesting", strings.Repeat("[", 20000) + strings.Repeat("]", 20000), []string{"too many YAML nodes", "more than 1000"}},
		{"too large", "# " + strings.Repeat("x", MaxBytes) + "\n", []string{"config is 65539 bytes, limit is 65536 (64 KiB)"}},
		{"invalid utf-8", "model: {type: \xff}\n", []string{"not valid UTF-8"}},
		{"custom tag", "model: {type: !python/object DecisionTreeClassifier}\n", []string{"model.type: must be", "tagged !python/object"}},
		{"several problems at once", rf + "    max_depth: deep\n    criterion: mse\n", []string{"model.params.max_depth: must be", "; model.params.criterion: must be"}},
		// The allowed keys each message lists come from the section tables.
		{"root not a mapping, in full", "- a\n", []string{"invalid config: config must be a mapping with keys run_config, train_test_split and model, got a list"}},
		{"unknown run_config key", "run_config: {versoin: a}\nmodel: {type: DecisionTreeClassifier}\n", []string{"run_config.versoin: unknown key (allowed: version)"}},
		{"unknown split key", "train_test_split: {seed: 1}\nmodel: {type: DecisionTreeClassifier}\n", []string{"train_test_split.seed: unknown key (allowed: test_size, train_size, random_state, shuffle, stratify)"}},
		{"unknown model key", "model: {type: DecisionTreeClassifier, parms: {}}\n", []string{"model.parms: unknown key (allowed: type, params)"}},
		{"unknown tree param, every allowed one", dt + "    learning_rate: 0.1\n", []string{"model.params.learning_rate: unknown DecisionTreeClassifier parameter (allowed: criterion, max_depth, min_samples_split, min_samples_leaf, max_features, random_state)"}},
		{"unknown forest param, every allowed one", rf + "    learning_rate: 0.1\n", []string{"model.params.learning_rate: unknown RandomForestClassifier parameter (allowed: criterion, max_depth, min_samples_split, min_samples_leaf, max_features, random_state, n_estimators, bootstrap, n_jobs, verbose)"}},
		{"forest-only ignored param on a tree", dt + "    n_jobs: 2\n", []string{"model.params.n_jobs: not a DecisionTreeClassifier parameter (it belongs to RandomForestClassifier)"}},
		{"problems in document order, the model's last", "model: {type: SVC}\nrun_config: {version: ../x}\n", []string{"invalid config: run_config.version: must be", `; model.type: must be DecisionTreeClassifier or RandomForestClassifier, got "SVC"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want an error containing %q", cfg, tt.want)
			}
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Errorf("error %v is not a *Error with problems", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// Each model's defaults come from the params table: a forest's differ from
// a tree's, and max_features: null means all features for both.
func TestParseParamDefaultsByModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Params
	}{
		{"model: {type: DecisionTreeClassifier, params: {splitter: best}}\n", Params{
			Criterion: Gini, MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{N: 1},
		}},
		{"model: {type: RandomForestClassifier}\n", Params{
			NEstimators: 100, Criterion: Gini, MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{N: 1},
			MaxFeatures: MaxFeatures{Name: "sqrt"}, Bootstrap: true,
		}},
		{"model: {type: RandomForestClassifier, params: {max_features: null, n_jobs: null}}\n", Params{
			NEstimators: 100, Criterion: Gini, MinSamplesSplit: Size{N: 2}, MinSamplesLeaf: Size{N: 1}, Bootstrap: true,
		}},
	}
	for _, tt := range tests {
		cfg, err := Parse([]byte(tt.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if diff := cmp.Diff(tt.want, cfg.Model.Params); diff != "" {
			t.Errorf("Parse(%q) params (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	_, err := Parse(readFixture(t, "alias-bomb.yaml"))
	if err == nil || !strings.Contains(err.Error(), "anchors and aliases") {
		t.Fatalf("Parse(alias bomb) error = %v, want anchors and aliases rejected", err)
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	mf := []struct {
		m    MaxFeatures
		want int
	}{
		{MaxFeatures{}, 4}, {MaxFeatures{Name: "sqrt"}, 2}, {MaxFeatures{Name: "log2"}, 2},
		{MaxFeatures{N: 3}, 3}, {MaxFeatures{Frac: 0.5}, 2}, {MaxFeatures{Frac: 0.1}, 1},
	}
	for _, tt := range mf {
		if got, err := tt.m.Resolve(4); err != nil || got != tt.want {
			t.Errorf("%+v.Resolve(4) = %d, %v; want %d", tt.m, got, err, tt.want)
		}
	}
	if _, err := (MaxFeatures{N: 5}).Resolve(4); err == nil {
		t.Error("MaxFeatures{N: 5}.Resolve(4) succeeded, want error")
	}
	splits := []struct {
		s       Size
		want    int
		wantErr bool
	}{
		{Size{Frac: 0.3}, 45, false}, {Size{Frac: 0.25}, 38, false}, {Size{N: 30}, 30, false},
		{Size{N: 150}, 0, true}, {Size{Frac: 0.001}, 1, false}, {Size{Frac: 0.999}, 0, true},
	}
	for _, tt := range splits {
		got, err := Split{TestSize: tt.s}.TestCount(150)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("TestCount(150) with %+v = %d, %v; want %d (error %v)", tt.s, got, err, tt.want, tt.wantErr)
		}
	}
	p := Params{MinSamplesSplit: Size{Frac: 0.1}, MinSamplesLeaf: Size{Frac: 0.001}}
	if got := p.MinSplit(105); got != 11 {
		t.Errorf("MinSplit(105) = %d, want 11", got)
	}
	if got := p.MinLeaf(105); got != 1 {
		t.Errorf("MinLeaf(105) = %d, want 1", got)
	}
}

// A long value quoted in a problem is cut at a character, never inside one:
// the text reaches failure records and DLQ reasons.
func TestProblemQuotesAreCutAtACharacter(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 30) // 60 bytes: byte 40 falls inside a character at a cut of 39 or 41
	body := "run_config:\n  version: v1\nmodel:\n  type: RandomForestClassifier\n  params:\n    n_estimators: \"" + long + "\"\n"
	_, err := Parse([]byte(body))
	if err == nil {
		t.Fatal("want an error for a string n_estimators")
	}
	msg := err.Error()
	if !utf8.ValidString(msg) || strings.Contains(msg, `\x`) {
		t.Errorf("problem quotes a value cut inside a character: %q", msg)
	}
	if !strings.Contains(msg, "é…") {
		t.Errorf("problem %q should show the cut value ending in …", msg)
	}
}
