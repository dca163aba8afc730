// Package config parses and validates pipeline configs: the scikit-learn
// shaped YAML (or JSON) documents users upload to trigger a training run.
//
// Parse is strict. An unknown key, a wrong type or an out-of-range value is
// an error naming the key path and what is allowed; scikit-learn parameters
// edp does not implement are rejected by name unless they carry their
// scikit-learn default (which changes nothing). Hostile input is bounded: at
// most MaxBytes and MaxNodes (checked by an allocation-free scan before
// anything is decoded, so a refused config costs no memory), at most MaxDepth
// levels of nesting, a single document, and no anchors or aliases at all (so
// alias "billion laughs" bombs cannot expand). The parser is pure: no I/O,
// no globals, no randomness.
//
// Each section of a config is one table in parse.go listing its keys, each
// with its check and its default: the keys allowed, the messages naming
// them, the parsing and the defaults all come from the tables, so a new key
// is one row.
//
// A parsed Config holds every value with its default filled in; JSON renders
// it back into an equivalent config document that Parse accepts.
package config

// Limits on what Parse accepts.
const (
	// MaxBytes is the largest config accepted (64 KiB). A complete config,
	// every parameter spelled out and commented, is under 2 KiB; readers
	// (store.GetConfig) stop reading at MaxBytes+1.
	MaxBytes = 64 << 10
	// MaxDepth is the deepest nesting of mappings and lists accepted. A
	// valid config nests three levels (model.params.max_depth); the margin
	// only makes error messages for slightly-off documents friendlier.
	MaxDepth = 8
	// MaxNodes bounds the number of YAML nodes (a complete config has under
	// 100), so neither decoding nor validation can be made slow or large.
	// It is checked on an upper bound counted before decoding.
	MaxNodes = 1000
	// MaxEstimators bounds n_estimators: scikit-learn has no limit, but a
	// shared worker must not be tied up by one config asking for a
	// billion trees.
	MaxEstimators = 5000
	// MaxRandomState is the largest random_state scikit-learn accepts.
	MaxRandomState = 1<<32 - 1
)

// Model types (model.type).
const (
	DecisionTree = "DecisionTreeClassifier"
	RandomForest = "RandomForestClassifier"
)

// Split criteria (model.params.criterion). LogLoss is scikit-learn's alias
// of Entropy and builds the same trees.
const (
	Gini    = "gini"
	Entropy = "entropy"
	LogLoss = "log_loss"
)

// DefaultVersion names the output folder when run_config.version is absent.
const DefaultVersion = "default"

// Config is one validated pipeline config.
type Config struct {
	// Run is run_config.
	Run Run
	// Split is train_test_split.
	Split Split
	// Model is model.
	Model Model
}

// Run is the run_config section.
type Run struct {
	// Version names the artifact folder (artifacts/<Version>/). It is
	// DefaultVersion when absent and always matches the safe charset
	// described in docs/config.md.
	Version string
}

// Split is the train_test_split section, with scikit-learn's semantics.
type Split struct {
	// TestSize is the test set size: a fraction or a row count. Default
	// 0.25.
	TestSize Size
	// RandomState seeds the shuffle; nil means "absent" (the caller picks a
	// seed and records it).
	RandomState *int64
	// Shuffle shuffles rows before splitting. Default true.
	Shuffle bool
	// Stratify keeps class proportions in both sets. Default false.
	Stratify bool
}

// Size is an amount given either as a fraction of the rows (Frac > 0) or as
// a count of rows (N > 0); exactly one is set in a validated Config.
type Size struct {
	Frac float64
	N    int
}

// Model is the model section.
type Model struct {
	// Type is DecisionTree or RandomForest.
	Type string
	// Params are the estimator parameters, defaults filled in.
	Params Params
}

// Params are the estimator parameters that edp implements, under
// scikit-learn's names and semantics.
type Params struct {
	// NEstimators is the number of trees (RandomForest only). Default 100.
	NEstimators int
	// Criterion is Gini, Entropy or LogLoss. Default Gini.
	Criterion string
	// MaxDepth limits tree depth; 0 means no limit (null). Default 0.
	MaxDepth int
	// MinSamplesSplit is the fewest samples a node needs to be split: a
	// count >= 2 or a fraction in (0, 1]. Default 2.
	MinSamplesSplit Size
	// MinSamplesLeaf is the fewest samples each child must keep: a count
	// >= 1 or a fraction in (0, 1). Default 1.
	MinSamplesLeaf Size
	// MaxFeatures is the number of features considered per split. Default
	// all features for DecisionTree, "sqrt" for RandomForest.
	MaxFeatures MaxFeatures
	// Bootstrap draws a bootstrap sample per tree (RandomForest only).
	// Default true for RandomForest, false for DecisionTree.
	Bootstrap bool
	// RandomState seeds the estimator; nil means "absent".
	RandomState *int64
}

// MaxFeatures is max_features: a name ("sqrt", "log2"), a count (N > 0), a
// fraction (Frac > 0), or all features (the zero value, YAML null).
type MaxFeatures struct {
	Name string
	N    int
	Frac float64
}
