package ml

import (
	"math"
	"testing"
)

// meanAccuracy fits p on nSplits seeded, shuffled 70/30 splits of Iris (as
// scikit-learn's train_test_split(test_size=0.3, random_state=i) makes them)
// and returns the mean test accuracy.
func meanAccuracy(t *testing.T, p Params, nSplits int) float64 {
	t.Helper()
	iris := Iris()
	var sum float64
	for i := range nSplits {
		train, test, err := TrainTestSplit(iris, SplitOptions{TestCount: 45, Shuffle: true, Seed: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		p.Seed = uint64(1000 + i)
		m, err := Fit(iris.Subset(train), p)
		if err != nil {
			t.Fatal(err)
		}
		ts := iris.Subset(test)
		sum += Evaluate(ts.ClassNames, ts.Y, m.PredictAll(ts)).Accuracy
	}
	return sum / float64(nSplits)
}

// TestAccuracyParity checks quality against scikit-learn 1.2 on the same
// protocol: mean test accuracy over many random 70/30 Iris splits is 0.947
// for a default DecisionTreeClassifier and 0.951 for a default 100-tree
// RandomForestClassifier. 100 splits keep the standard error of the mean
// (about 0.003) far below the 0.015 tolerance.
func TestAccuracyParity(t *testing.T) {
	t.Parallel()
	const splits = 100
	tests := []struct {
		name string
		p    Params
		want float64
	}{
		{"decision tree", Params{Type: DecisionTree}, 0.947},
		{"random forest", Params{Type: RandomForest, NEstimators: 100, Bootstrap: true, Tree: TreeParams{MaxFeatures: 2}}, 0.951},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := meanAccuracy(t, tt.p, splits)
			t.Logf("mean test accuracy over %d splits: %.4f (scikit-learn: %.3f)", splits, got, tt.want)
			if math.Abs(got-tt.want) > 0.015 {
				t.Errorf("mean accuracy %.4f is not within 0.015 of scikit-learn's %.3f", got, tt.want)
			}
		})
	}
}
