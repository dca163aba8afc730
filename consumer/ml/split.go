package ml

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// SplitOptions configures TrainTestSplit (scikit-learn's train_test_split).
type SplitOptions struct {
	// TestCount is the number of test rows; it must leave at least one row
	// on each side.
	TestCount int
	// Shuffle permutes rows before splitting. Without it the last TestCount
	// rows are the test set, as in scikit-learn.
	Shuffle bool
	// Stratify keeps each class's share (rounded) in both sets. It requires
	// Shuffle.
	Stratify bool
	// Seed seeds the permutation.
	Seed uint64
}

// NewRand returns the generator edp uses everywhere for seed: PCG with a
// fixed stream, so a seed fully determines every draw.
func NewRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Check reports why TrainTestSplit would refuse to split d with o, if it
// would. The answer does not depend on o.Seed.
func (o SplitOptions) Check(d *Dataset) error {
	n := d.Rows()
	if o.TestCount < 1 || o.TestCount >= n {
		return fmt.Errorf("split %d rows: test size %d must leave at least one row in each set", n, o.TestCount)
	}
	if o.Stratify && !o.Shuffle {
		return fmt.Errorf("split: stratify requires shuffle")
	}
	if o.Stratify && (o.TestCount < len(d.ClassNames) || n-o.TestCount < len(d.ClassNames)) {
		// scikit-learn refuses these too: a stratified set must be able to
		// hold every class.
		return fmt.Errorf("split %d rows: a stratified split needs at least %d (the number of classes) rows in each set, got %d test rows", n, len(d.ClassNames), o.TestCount)
	}
	return nil
}

// TrainTestSplit returns the row indexes of the train and test sets of d.
func TrainTestSplit(d *Dataset, o SplitOptions) (train, test []int, err error) {
	if err := o.Check(d); err != nil {
		return nil, nil, err
	}
	n := d.Rows()
	if !o.Shuffle {
		nTrain := n - o.TestCount
		train, test = make([]int, nTrain), make([]int, o.TestCount)
		for i := range train {
			train[i] = i
		}
		for i := range test {
			test[i] = nTrain + i
		}
		return train, test, nil
	}
	r := NewRand(o.Seed)
	if !o.Stratify {
		perm := r.Perm(n)
		return perm[o.TestCount:], perm[:o.TestCount], nil
	}
	byClass := make([][]int, len(d.ClassNames))
	for i, c := range d.Y {
		byClass[c] = append(byClass[c], i)
	}
	counts := make([]int, len(byClass))
	for c, rows := range byClass {
		counts[c] = len(rows)
	}
	perClass := apportion(counts, o.TestCount)
	for c, rows := range byClass {
		r.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
		test = append(test, rows[:perClass[c]]...)
		train = append(train, rows[perClass[c]:]...)
	}
	r.Shuffle(len(test), func(i, j int) { test[i], test[j] = test[j], test[i] })
	r.Shuffle(len(train), func(i, j int) { train[i], train[j] = train[j], train[i] })
	return train, test, nil
}

// apportion splits total across classes in proportion to counts: floors
// first, then the remaining units to the largest remainders (ties to the
// larger class, then the lower class index), never exceeding a class count.
func apportion(counts []int, total int) []int {
	n := 0
	for _, c := range counts {
		n += c
	}
	out := make([]int, len(counts))
	type rem struct {
		class int
		frac  int // remainder numerator over n
	}
	rems := make([]rem, len(counts))
	given := 0
	for c, k := range counts {
		out[c] = total * k / n
		given += out[c]
		rems[c] = rem{c, total * k % n}
	}
	slices.SortStableFunc(rems, func(a, b rem) int {
		if a.frac != b.frac {
			return b.frac - a.frac
		}
		return counts[b.class] - counts[a.class]
	})
	for i := 0; given < total; i = (i + 1) % len(rems) {
		c := rems[i].class
		if out[c] < counts[c] {
			out[c]++
			given++
		}
	}
	return out
}
