package config

import (
	"fmt"
	"math"
)

// TestCount returns the number of test rows out of n, as scikit-learn's
// train_test_split computes it: ceil(Frac*n) for a fraction, N for a count.
// It fails when either set would be empty.
func (s Split) TestCount(n int) (int, error) {
	var nTest int
	if s.TestSize.N > 0 {
		nTest = s.TestSize.N
		if nTest >= n {
			return 0, fmt.Errorf("train_test_split.test_size: %d rows leaves no training rows out of %d", nTest, n)
		}
	} else {
		nTest = int(math.Ceil(s.TestSize.Frac * float64(n)))
	}
	if nTest <= 0 || n-nTest <= 0 {
		return 0, fmt.Errorf("train_test_split.test_size: %v of %d rows leaves an empty train or test set", s.TestSize.Frac, n)
	}
	return nTest, nil
}

// MinSplit resolves min_samples_split for n training rows (scikit-learn:
// a fraction means max(2, ceil(Frac*n))).
func (p Params) MinSplit(n int) int {
	if p.MinSamplesSplit.N > 0 {
		return p.MinSamplesSplit.N
	}
	return max(2, int(math.Ceil(p.MinSamplesSplit.Frac*float64(n))))
}

// MinLeaf resolves min_samples_leaf for n training rows (scikit-learn: a
// fraction means max(1, ceil(Frac*n))).
func (p Params) MinLeaf(n int) int {
	if p.MinSamplesLeaf.N > 0 {
		return p.MinSamplesLeaf.N
	}
	return max(1, int(math.Ceil(p.MinSamplesLeaf.Frac*float64(n))))
}

// Resolve returns the number of features to consider per split out of
// nFeatures, as scikit-learn does: sqrt and log2 round down (at least 1), a
// fraction is max(1, int(Frac*nFeatures)), null means all. A count larger
// than nFeatures is an error.
func (m MaxFeatures) Resolve(nFeatures int) (int, error) {
	switch {
	case m.Name == "sqrt":
		return max(1, int(math.Sqrt(float64(nFeatures)))), nil
	case m.Name == "log2":
		return max(1, int(math.Log2(float64(nFeatures)))), nil
	case m.N > 0:
		if m.N > nFeatures {
			return 0, fmt.Errorf("model.params.max_features: %d is more than the %d features of the dataset", m.N, nFeatures)
		}
		return m.N, nil
	case m.Frac > 0:
		return max(1, int(m.Frac*float64(nFeatures))), nil
	default:
		return nFeatures, nil
	}
}
