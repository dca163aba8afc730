package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Split criteria.
const (
	Gini    = "gini"
	Entropy = "entropy"
	// LogLoss is scikit-learn's alias of Entropy.
	LogLoss = "log_loss"
)

// featureThreshold is scikit-learn's FEATURE_THRESHOLD: values closer than
// this are treated as equal (no split between them; a feature whose node
// values span less is constant).
const featureThreshold = 1e-7

// epsilon is scikit-learn's EPSILON (the float64 machine epsilon): a node
// with impurity at or below it is pure and becomes a leaf.
const epsilon = 2.220446049250313e-16

// TreeParams are the CART growth limits, already resolved to counts.
type TreeParams struct {
	// Criterion is Gini (default when empty), Entropy or LogLoss.
	Criterion string
	// MaxDepth limits depth (the root is depth 0); 0 means unlimited.
	MaxDepth int
	// MinSamplesSplit is the fewest samples a node needs to be split;
	// values below 2 mean 2.
	MinSamplesSplit int
	// MinSamplesLeaf is the fewest samples each child must keep; values
	// below 1 mean 1.
	MinSamplesLeaf int
	// MaxFeatures is how many randomly drawn features each split
	// considers; 0 (or more than there are) means all.
	MaxFeatures int
}

func (p TreeParams) resolve(nFeatures int) (TreeParams, error) {
	switch p.Criterion {
	case "":
		p.Criterion = Gini
	case Gini, Entropy, LogLoss:
	default:
		return p, fmt.Errorf("unknown criterion %q (want gini, entropy or log_loss)", p.Criterion)
	}
	if p.MaxDepth < 0 {
		return p, fmt.Errorf("max depth %d is negative", p.MaxDepth)
	}
	p.MinSamplesSplit = max(p.MinSamplesSplit, 2)
	p.MinSamplesLeaf = max(p.MinSamplesLeaf, 1)
	if p.MaxFeatures <= 0 || p.MaxFeatures > nFeatures {
		p.MaxFeatures = nFeatures
	}
	return p, nil
}

// Tree is a fitted binary decision tree in scikit-learn's flat layout: node
// 0 is the root, nodes are numbered in depth-first pre-order (so children
// always have larger ids than their parent), and a sample goes left when
// its feature value is <= the node's threshold.
type Tree struct {
	nClasses  int
	left      []int32   // -1 for leaves
	right     []int32   // -1 for leaves
	feature   []int32   // -1 for leaves
	threshold []float64 // 0 for leaves
	impurity  []float64
	nSamples  []int32   // distinct training samples reaching the node
	wSamples  []float64 // weighted (bootstrap-counted) samples
	value     []float64 // nClasses class fractions per node, flattened
}

// clone returns a copy of t backed by exactly sized arrays.
func (t *Tree) clone() *Tree {
	return &Tree{
		nClasses: t.nClasses, left: slices.Clone(t.left), right: slices.Clone(t.right),
		feature: slices.Clone(t.feature), threshold: slices.Clone(t.threshold),
		impurity: slices.Clone(t.impurity), nSamples: slices.Clone(t.nSamples),
		wSamples: slices.Clone(t.wSamples), value: slices.Clone(t.value),
	}
}

// NodeCount returns the number of nodes.
func (t *Tree) NodeCount() int { return len(t.left) }

// Depth returns the length of the longest root-to-leaf path.
func (t *Tree) Depth() int {
	depth := make([]int, t.NodeCount())
	best := 0
	for i := range t.left {
		if t.left[i] >= 0 {
			depth[t.left[i]] = depth[i] + 1
			depth[t.right[i]] = depth[i] + 1
			best = max(best, depth[i]+1)
		}
	}
	return best
}

// leaf returns the id of the leaf x falls into.
func (t *Tree) leaf(x []float64) int {
	i := 0
	for t.left[i] >= 0 {
		if x[t.feature[i]] <= t.threshold[i] {
			i = int(t.left[i])
		} else {
			i = int(t.right[i])
		}
	}
	return i
}

// proba returns the class fractions of the leaf x falls into (a view; do
// not modify).
func (t *Tree) proba(x []float64) []float64 {
	l := t.leaf(x)
	return t.value[l*t.nClasses : (l+1)*t.nClasses]
}

// builder grows one tree. Instead of sorting at every node it keeps, per
// feature, the node's samples in ascending order of that feature (one
// contiguous segment per node) and stably partitions those segments when a
// node splits, so finding a split is a linear scan. Its scratch buffers are
// reused across the trees a forest worker fits.
type builder struct {
	x           []float64
	nf          int
	y           []int
	nc          int
	w           []float64
	p           TreeParams
	entropy     bool
	rng         *rand.Rand
	presorted   [][]int32 // per feature: all rows by (value, row)
	order       [][]int32 // per feature: current tree's samples, node segments sorted
	scratch     []int32
	goesLeft    []bool
	feats       []int
	counts      []float64 // left, right, total class counts: 3*nc
	tree        *Tree     // the tree being grown (scratchTree)
	scratchTree *Tree
}

// presort orders every row of d by each feature (ties by row index, so the
// order is total and the result deterministic).
func presort(d *Dataset) [][]int32 {
	nf := d.NumFeatures()
	out := make([][]int32, nf)
	for f := range out {
		idx := make([]int32, d.Rows())
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortFunc(idx, func(a, b int32) int {
			va, vb := d.X[int(a)*nf+f], d.X[int(b)*nf+f]
			switch {
			case va < vb:
				return -1
			case va > vb:
				return 1
			}
			return int(a - b)
		})
		out[f] = idx
	}
	return out
}

func newBuilder(d *Dataset, p TreeParams, presorted [][]int32) *builder {
	n, nf := d.Rows(), d.NumFeatures()
	b := &builder{
		x: d.X, nf: nf, y: d.Y, nc: len(d.ClassNames), p: p,
		entropy:   p.Criterion != Gini,
		presorted: presorted,
		order:     make([][]int32, nf),
		scratch:   make([]int32, n),
		goesLeft:  make([]bool, n),
		feats:     make([]int, nf),
		counts:    make([]float64, 3*len(d.ClassNames)),
	}
	for f := range b.order {
		b.order[f] = make([]int32, 0, n)
	}
	// A binary tree over n samples has at most 2n-1 nodes, so the scratch
	// arrays never grow.
	m := 2 * n
	b.scratchTree = &Tree{
		left: make([]int32, 0, m), right: make([]int32, 0, m), feature: make([]int32, 0, m),
		threshold: make([]float64, 0, m), impurity: make([]float64, 0, m),
		nSamples: make([]int32, 0, m), wSamples: make([]float64, 0, m),
		value: make([]float64, 0, m*b.nc),
	}
	return b
}

// fit grows a tree on the samples with positive weight w[i] using rng for
// feature sampling.
func (b *builder) fit(w []float64, rng *rand.Rand) *Tree {
	b.w, b.rng = w, rng
	for f := range b.order {
		o := b.order[f][:0]
		for _, s := range b.presorted[f] {
			if w[s] > 0 {
				o = append(o, s)
			}
		}
		b.order[f] = o
	}
	for i := range b.feats {
		b.feats[i] = i
	}
	// Grow into reusable scratch arrays, then copy out exactly sized ones:
	// the node count is unknown up front and typically far below its bound.
	st := b.scratchTree
	*st = Tree{
		nClasses: b.nc, left: st.left[:0], right: st.right[:0], feature: st.feature[:0],
		threshold: st.threshold[:0], impurity: st.impurity[:0], nSamples: st.nSamples[:0],
		wSamples: st.wSamples[:0], value: st.value[:0],
	}
	b.tree = st
	b.grow(0, len(b.order[0]), 0)
	t := st.clone()
	b.tree, b.w, b.rng = nil, nil, nil
	return t
}

// childCost is the weighted impurity wsum*impurity(counts): the quantity a
// split minimises over its two children.
func (b *builder) childCost(counts []float64, wsum float64) float64 {
	if wsum <= 0 {
		return 0
	}
	if b.entropy {
		var c float64
		for _, k := range counts {
			if k > 0 {
				c -= k * math.Log2(k/wsum)
			}
		}
		return c
	}
	var sq float64
	for _, k := range counts {
		sq += k * k
	}
	return wsum - sq/wsum
}

// grow builds the subtree over the node segment [start, end) and returns
// its node id.
func (b *builder) grow(start, end, depth int) int32 {
	t := b.tree
	nc := b.nc
	total := b.counts[2*nc : 3*nc]
	clear(total)
	var wsum float64
	for _, s := range b.order[0][start:end] {
		total[b.y[s]] += b.w[s]
		wsum += b.w[s]
	}
	imp := max(0, b.childCost(total, wsum)/wsum)
	id := int32(len(t.left))
	t.left = append(t.left, -1)
	t.right = append(t.right, -1)
	t.feature = append(t.feature, -1)
	t.threshold = append(t.threshold, 0)
	t.impurity = append(t.impurity, imp)
	t.nSamples = append(t.nSamples, int32(end-start))
	t.wSamples = append(t.wSamples, wsum)
	for _, k := range total {
		t.value = append(t.value, k/wsum)
	}
	n := end - start
	if (b.p.MaxDepth > 0 && depth >= b.p.MaxDepth) || n < b.p.MinSamplesSplit || n < 2*b.p.MinSamplesLeaf || imp <= epsilon {
		return id
	}
	f, thr, pos, ok := b.findSplit(start, end, wsum)
	if !ok {
		return id
	}
	b.partition(start, end, f, pos)
	l := b.grow(start, start+pos, depth+1)
	r := b.grow(start+pos, end, depth+1)
	t = b.tree
	t.left[id], t.right[id] = l, r
	t.feature[id], t.threshold[id] = int32(f), thr
	return id
}

// findSplit finds the best split of the node segment [start, end): the
// feature and the position in that feature's order where the right child
// begins.
//
// Like scikit-learn's BestSplitter it draws features in random order
// without replacement and stops after MaxFeatures draws once at least one
// non-constant feature was seen; the first strictly best split wins, so ties
// are broken by the random draw order.
func (b *builder) findSplit(start, end int, wsum float64) (feature int, threshold float64, pos int, ok bool) {
	nc, nf := b.nc, b.nf
	left, right, total := b.counts[:nc], b.counts[nc:2*nc], b.counts[2*nc:3*nc]
	n := end - start
	minLeaf := b.p.MinSamplesLeaf
	bestCost := math.Inf(1)
	feature = -1
	nonConstant := 0
	for i := 0; i < nf; i++ {
		if i >= b.p.MaxFeatures && nonConstant > 0 {
			break
		}
		j := i + b.rng.IntN(nf-i)
		b.feats[i], b.feats[j] = b.feats[j], b.feats[i]
		f := b.feats[i]
		seg := b.order[f][start:end]
		if b.x[int(seg[n-1])*nf+f] <= b.x[int(seg[0])*nf+f]+featureThreshold {
			continue
		}
		nonConstant++
		clear(left)
		copy(right, total)
		wl, wr := 0.0, wsum
		prev := b.x[int(seg[0])*nf+f]
		for p := 1; p < n; p++ {
			s := seg[p-1]
			ws := b.w[s]
			c := b.y[s]
			left[c] += ws
			right[c] -= ws
			wl += ws
			wr -= ws
			v := b.x[int(seg[p])*nf+f]
			lo := prev
			prev = v
			if v <= lo+featureThreshold || p < minLeaf || n-p < minLeaf {
				continue
			}
			cost := b.childCost(left, wl) + b.childCost(right, wr)
			if cost < bestCost {
				bestCost, feature, pos = cost, f, p
				// scikit-learn's midpoint, guarded against rounding up
				// to the right value.
				threshold = lo/2 + v/2
				if threshold == v || math.IsInf(threshold, 0) || math.IsNaN(threshold) {
					threshold = lo
				}
			}
		}
	}
	if feature < 0 {
		return 0, 0, 0, false
	}
	return feature, threshold, pos, true
}

// partition reorders every feature's node segment so the left child's
// samples (the first pos of feature f's order) come first, keeping each
// side sorted.
func (b *builder) partition(start, end, f, pos int) {
	seg := b.order[f][start:end]
	for _, s := range seg[:pos] {
		b.goesLeft[s] = true
	}
	for _, s := range seg[pos:] {
		b.goesLeft[s] = false
	}
	for g := range b.order {
		if g == f {
			continue
		}
		o := b.order[g][start:end]
		l, r := 0, 0
		tmp := b.scratch[:end-start-pos]
		for _, s := range o {
			if b.goesLeft[s] {
				o[l] = s
				l++
			} else {
				tmp[r] = s
				r++
			}
		}
		copy(o[l:], tmp[:r])
	}
}
