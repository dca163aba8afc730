package ml

import (
	"testing"
)

// The benchmarks use the shapes scikit-learn's figures were measured on:
// 120 training rows of Iris (an 80/20 split) and default parameters.
func benchTrain(b *testing.B) *Dataset {
	b.Helper()
	iris := Iris()
	train, _, err := TrainTestSplit(iris, SplitOptions{TestCount: 30, Shuffle: true, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return iris.Subset(train)
}

func BenchmarkFitDecisionTree(b *testing.B) {
	train := benchTrain(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := Fit(train, Params{Type: DecisionTree, Seed: uint64(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFitRandomForest100(b *testing.B) {
	train := benchTrain(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := Params{Type: RandomForest, NEstimators: 100, Bootstrap: true, Tree: TreeParams{MaxFeatures: 2}, Seed: uint64(i)}
		if _, err := Fit(train, p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFitRandomForest100Serial(b *testing.B) {
	train := benchTrain(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := Params{Type: RandomForest, NEstimators: 100, Bootstrap: true, Tree: TreeParams{MaxFeatures: 2}, Seed: uint64(i), Workers: 1}
		if _, err := Fit(train, p); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPredict(b *testing.B, p Params) {
	train := benchTrain(b)
	m, err := Fit(train, p)
	if err != nil {
		b.Fatal(err)
	}
	iris := Iris()
	b.ReportAllocs()
	for b.Loop() {
		for i := range iris.Rows() {
			m.Predict(iris.Row(i))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*iris.Rows()), "ns/row")
}

// Each iteration predicts all 150 Iris rows.
func BenchmarkPredictDecisionTree(b *testing.B) {
	benchPredict(b, Params{Type: DecisionTree, Seed: 1})
}

func BenchmarkPredictRandomForest100(b *testing.B) {
	benchPredict(b, Params{Type: RandomForest, NEstimators: 100, Bootstrap: true, Tree: TreeParams{MaxFeatures: 2}, Seed: 1})
}
