package ml

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Model types, named as in scikit-learn.
const (
	DecisionTree = "DecisionTreeClassifier"
	RandomForest = "RandomForestClassifier"
)

// Params configures Fit.
type Params struct {
	// Type is DecisionTree or RandomForest.
	Type string
	// Tree are the growth limits of every tree.
	Tree TreeParams
	// NEstimators is the number of trees of a RandomForest (ignored for a
	// DecisionTree, which has one).
	NEstimators int
	// Bootstrap fits each forest tree on a bootstrap sample (n draws with
	// replacement, as counts); otherwise on all rows.
	Bootstrap bool
	// Seed seeds every random choice of the fit.
	Seed uint64
	// Workers bounds the goroutines fitting forest trees; 0 means
	// GOMAXPROCS. It never changes the result.
	Workers int
}

// ModelParams records in the model file how it was fitted (resolved
// values: counts, not fractions or names).
type ModelParams struct {
	Criterion       string `json:"criterion"`
	MaxDepth        int    `json:"max_depth"` // 0: unlimited
	MinSamplesSplit int    `json:"min_samples_split"`
	MinSamplesLeaf  int    `json:"min_samples_leaf"`
	MaxFeatures     int    `json:"max_features"`
	NEstimators     int    `json:"n_estimators"`
	Bootstrap       bool   `json:"bootstrap"`
	Seed            uint64 `json:"seed"`
}

// Model is a fitted classifier: one tree (DecisionTree) or a forest whose
// trees vote by averaging their leaf class fractions (RandomForest).
type Model struct {
	// Type is DecisionTree or RandomForest.
	Type string
	// FeatureNames are the inputs Predict expects, in order.
	FeatureNames []string
	// ClassNames are the classes Predict returns indexes into.
	ClassNames []string
	// Params records the fit settings.
	Params ModelParams
	// Trees holds the fitted trees (one for a DecisionTree).
	Trees []*Tree
}

// Fit trains a model on train. The result depends only on train and p
// (including p.Seed), never on scheduling or p.Workers.
func Fit(train *Dataset, p Params) (*Model, error) {
	if train.Rows() == 0 || train.NumFeatures() == 0 || len(train.ClassNames) == 0 {
		return nil, errors.New("fit: empty training set")
	}
	if err := p.Check(); err != nil {
		return nil, err
	}
	tp, err := p.Tree.resolve(train.NumFeatures())
	if err != nil {
		return nil, fmt.Errorf("fit: %w", err)
	}
	m := &Model{
		Type:         p.Type,
		FeatureNames: train.FeatureNames,
		ClassNames:   train.ClassNames,
		Params: ModelParams{
			Criterion: tp.Criterion, MaxDepth: tp.MaxDepth,
			MinSamplesSplit: tp.MinSamplesSplit, MinSamplesLeaf: tp.MinSamplesLeaf,
			MaxFeatures: tp.MaxFeatures, NEstimators: 1, Seed: p.Seed,
		},
	}
	switch p.Type {
	case DecisionTree:
		w := make([]float64, train.Rows())
		for i := range w {
			w[i] = 1
		}
		m.Trees = []*Tree{newBuilder(train, tp, presort(train)).fit(w, NewRand(p.Seed))}
	default: // RandomForest, as Check made sure
		m.Params.NEstimators, m.Params.Bootstrap = p.NEstimators, p.Bootstrap
		m.Trees = fitForest(train, tp, p)
	}
	return m, nil
}

// Check reports the setting of p that Fit refuses, if any, without
// fitting: an unknown type or criterion, a negative depth, fewer than one
// tree in a forest.
func (p Params) Check() error {
	if _, err := p.Tree.resolve(0); err != nil {
		return fmt.Errorf("fit: %w", err)
	}
	switch p.Type {
	case DecisionTree:
	case RandomForest:
		if p.NEstimators < 1 {
			return fmt.Errorf("fit: n_estimators %d must be at least 1", p.NEstimators)
		}
	default:
		return fmt.Errorf("fit: unknown model type %q (want %s or %s)", p.Type, DecisionTree, RandomForest)
	}
	return nil
}

// fitForest fits p.NEstimators trees in parallel. Tree i's generator is
// seeded with the i-th draw of a generator seeded with p.Seed and each tree
// lands in slot i, so the forest is the same whichever worker fits which
// tree.
func fitForest(train *Dataset, tp TreeParams, p Params) []*Tree {
	seeds := make([]uint64, p.NEstimators)
	r := NewRand(p.Seed)
	for i := range seeds {
		seeds[i] = r.Uint64()
	}
	trees := make([]*Tree, p.NEstimators)
	workers := p.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, p.NEstimators)
	// Bootstrap only reweights rows, so one presort serves every tree.
	sorted := presort(train)
	var next atomic.Int64
	var wg sync.WaitGroup
	var panicked atomic.Pointer[PanicError]
	n := train.Rows()
	for range workers {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					panicked.CompareAndSwap(nil, &PanicError{Value: v, Stack: debug.Stack()})
					next.Store(int64(len(trees))) // the other workers stop after their tree
				}
			}()
			b := newBuilder(train, tp, sorted)
			w := make([]float64, n)
			for {
				i := int(next.Add(1)) - 1
				if i >= len(trees) {
					return
				}
				rng := NewRand(seeds[i])
				if p.Bootstrap {
					clear(w)
					for range n {
						w[rng.IntN(n)]++
					}
				} else {
					for j := range w {
						w[j] = 1
					}
				}
				trees[i] = b.fit(w, rng)
			}
		})
	}
	wg.Wait()
	if p := panicked.Load(); p != nil {
		// A panic on a goroutine of ours would end the process; on the
		// caller's goroutine, the caller can recover it.
		panic(p)
	}
	return trees
}

// PanicError is what Fit panics with when fitting a tree panicked on one of
// the goroutines it started: the panic is carried to the goroutine that
// called Fit, where it can be recovered.
type PanicError struct {
	// Value is the original panic value.
	Value any
	// Stack is the stack of the goroutine that panicked, at the panic.
	Stack []byte
}

// Error is the original panic value as text.
func (e *PanicError) Error() string { return fmt.Sprint(e.Value) }

// Unwrap returns the original panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// Proba writes the class probabilities for x into out (len(ClassNames)):
// the leaf class fractions of the tree, averaged over a forest's trees.
func (m *Model) Proba(x []float64, out []float64) {
	clear(out)
	for _, t := range m.Trees {
		for c, v := range t.proba(x) {
			out[c] += v
		}
	}
	if len(m.Trees) > 1 {
		inv := float64(len(m.Trees))
		for c := range out {
			out[c] /= inv
		}
	}
}

// Predict returns the index (into ClassNames) of the most probable class
// for x, which must have len(FeatureNames) values. Ties go to the lower
// index, as with numpy's argmax.
func (m *Model) Predict(x []float64) int {
	if len(m.Trees) == 1 {
		return argmax(m.Trees[0].proba(x))
	}
	var buf [16]float64
	var out []float64
	if len(m.ClassNames) <= len(buf) {
		out = buf[:len(m.ClassNames)]
	} else {
		out = make([]float64, len(m.ClassNames))
	}
	m.Proba(x, out)
	return argmax(out)
}

// PredictAll predicts every row of d.
func (m *Model) PredictAll(d *Dataset) []int {
	out := make([]int, d.Rows())
	for i := range out {
		out[i] = m.Predict(d.Row(i))
	}
	return out
}

func argmax(v []float64) int {
	best := 0
	for i := 1; i < len(v); i++ {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
