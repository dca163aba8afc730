package ml

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIris(t *testing.T) {
	t.Parallel()
	d := Iris()
	if d.Rows() != 150 || d.NumFeatures() != 4 {
		t.Fatalf("Iris has %d rows, %d features; want 150, 4", d.Rows(), d.NumFeatures())
	}
	if diff := cmp.Diff([]string{"setosa", "versicolor", "virginica"}, d.ClassNames); diff != "" {
		t.Errorf("classes (-want +got):\n%s", diff)
	}
	// Column means of the scikit-learn copy (it fixes two rows of the UCI
	// file, which would change sepal width's mean to 3.054).
	wantMeans := []float64{5.843333, 3.057333, 3.758, 1.199333}
	for f, want := range wantMeans {
		var sum float64
		for i := range d.Rows() {
			sum += d.Row(i)[f]
		}
		if got := sum / 150; got < want-1e-6 || got > want+1e-6 {
			t.Errorf("mean of %s = %.6f, want %.6f", d.FeatureNames[f], got, want)
		}
	}
	for c := range 3 {
		if n := strings.Count(string(IrisCSV()), ","+d.ClassNames[c]+"\n"); n != 50 {
			t.Errorf("class %s has %d rows, want 50", d.ClassNames[c], n)
		}
	}
}

func TestCSVRoundTrip(t *testing.T) {
	t.Parallel()
	d := Iris()
	var buf bytes.Buffer
	if err := d.WriteCSV(&buf, nil); err != nil {
		t.Fatal(err)
	}
	again, err := ParseCSV(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d.X, again.X); diff != "" {
		t.Errorf("X changed (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(d.Y, again.Y); diff != "" {
		t.Errorf("Y changed (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"", "a\n", "a,b\n", "a,b\nx,c\n", "a,b\nNaN,c\n", "a,b\n1,c,3\n"} {
		if _, err := ParseCSV([]byte(bad)); err == nil {
			t.Errorf("ParseCSV(%q) succeeded, want error", bad)
		}
	}
}

func TestTrainTestSplit(t *testing.T) {
	t.Parallel()
	d := Iris()
	check := func(name string, train, test []int, wantTest int) {
		t.Helper()
		if len(test) != wantTest || len(train) != 150-wantTest {
			t.Errorf("%s: sizes %d/%d, want %d/%d", name, len(train), len(test), 150-wantTest, wantTest)
		}
		all := slices.Concat(train, test)
		slices.Sort(all)
		for i, v := range all {
			if v != i {
				t.Fatalf("%s: train+test is not a partition of the rows", name)
			}
		}
	}
	train, test, err := TrainTestSplit(d, SplitOptions{TestCount: 45, Shuffle: true, Seed: 42})
	if err != nil {
		t.Fatal(err)
	}
	check("shuffled", train, test, 45)
	train2, test2, _ := TrainTestSplit(d, SplitOptions{TestCount: 45, Shuffle: true, Seed: 42})
	if !slices.Equal(test, test2) || !slices.Equal(train, train2) {
		t.Error("same seed gave different splits")
	}
	_, test3, _ := TrainTestSplit(d, SplitOptions{TestCount: 45, Shuffle: true, Seed: 43})
	if slices.Equal(test, test3) {
		t.Error("different seeds gave the same split")
	}

	train, test, _ = TrainTestSplit(d, SplitOptions{TestCount: 30})
	check("unshuffled", train, test, 30)
	if test[0] != 120 || train[0] != 0 {
		t.Errorf("unshuffled split must take the last rows as test: train[0]=%d test[0]=%d", train[0], test[0])
	}

	for _, n := range []int{45, 38, 3, 147} {
		train, test, err = TrainTestSplit(d, SplitOptions{TestCount: n, Shuffle: true, Stratify: true, Seed: 7})
		if err != nil {
			t.Fatal(err)
		}
		check("stratified", train, test, n)
		perClass := make([]int, 3)
		for _, i := range test {
			perClass[d.Y[i]]++
		}
		for c, k := range perClass {
			if k < n/3 || k > (n+2)/3 {
				t.Errorf("stratified test of %d: class %d has %d rows, want %d-%d", n, c, k, n/3, (n+2)/3)
			}
		}
	}
	for _, o := range []SplitOptions{
		{TestCount: 0}, {TestCount: 150}, {TestCount: 10, Stratify: true},
		{TestCount: 2, Shuffle: true, Stratify: true}, {TestCount: 148, Shuffle: true, Stratify: true},
	} {
		if _, _, err := TrainTestSplit(d, o); err == nil {
			t.Errorf("TrainTestSplit(%+v) succeeded, want error", o)
		}
	}
}

func TestApportion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		counts []int
		total  int
		want   []int
	}{
		{[]int{50, 50, 50}, 45, []int{15, 15, 15}},
		{[]int{50, 50, 50}, 38, []int{13, 13, 12}},
		{[]int{10, 80, 10}, 10, []int{1, 8, 1}},
		{[]int{1, 1, 8}, 9, []int{1, 1, 7}},
		{[]int{3, 0, 2}, 5, []int{3, 0, 2}},
	}
	for _, tt := range tests {
		if got := apportion(tt.counts, tt.total); !slices.Equal(got, tt.want) {
			t.Errorf("apportion(%v, %d) = %v, want %v", tt.counts, tt.total, got, tt.want)
		}
	}
}

// tiny is a hand-checkable dataset: feature 0 separates the classes at
// 2.5; feature 1 is noise; feature 2 is constant.
func tiny() *Dataset {
	return &Dataset{
		FeatureNames: []string{"a", "b", "c"},
		ClassNames:   []string{"no", "yes"},
		X:            []float64{1, 5, 7, 2, 1, 7, 3, 4, 7, 4, 2, 7},
		Y:            []int{0, 0, 1, 1},
	}
}

func TestTreeLearnsTheSeparatingThreshold(t *testing.T) {
	t.Parallel()
	for _, crit := range []string{Gini, Entropy, LogLoss} {
		m, err := Fit(tiny(), Params{Type: DecisionTree, Tree: TreeParams{Criterion: crit}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		tr := m.Trees[0]
		if tr.NodeCount() != 3 || tr.feature[0] != 0 || tr.threshold[0] != 2.5 {
			t.Errorf("%s: tree = %d nodes, root feature %d threshold %v; want 3 nodes splitting feature 0 at 2.5",
				crit, tr.NodeCount(), tr.feature[0], tr.threshold[0])
		}
		if tr.impurity[1] != 0 || tr.impurity[2] != 0 {
			t.Errorf("%s: leaves are not pure: %v", crit, tr.impurity)
		}
		want := map[string]float64{Gini: 0.5, Entropy: 1, LogLoss: 1}[crit]
		if tr.impurity[0] != want {
			t.Errorf("%s: root impurity = %v, want %v", crit, tr.impurity[0], want)
		}
	}
}

func TestTreeLimits(t *testing.T) {
	t.Parallel()
	iris := Iris()
	full, _ := Fit(iris, Params{Type: DecisionTree, Seed: 3})
	if full.Trees[0].Depth() < 3 {
		t.Fatalf("unlimited tree has depth %d; Iris needs more", full.Trees[0].Depth())
	}
	// An unlimited tree fits the training data perfectly except for the
	// duplicated rows with different labels Iris does not have.
	if acc := Evaluate(iris.ClassNames, iris.Y, full.PredictAll(iris)).Accuracy; acc != 1 {
		t.Errorf("unlimited tree training accuracy = %v, want 1", acc)
	}
	for _, depth := range []int{1, 2, 3} {
		m, _ := Fit(iris, Params{Type: DecisionTree, Tree: TreeParams{MaxDepth: depth}, Seed: 3})
		if got := m.Trees[0].Depth(); got != depth {
			t.Errorf("max_depth %d: depth = %d", depth, got)
		}
	}
	for _, leaf := range []int{5, 20} {
		m, _ := Fit(iris, Params{Type: DecisionTree, Tree: TreeParams{MinSamplesLeaf: leaf}, Seed: 3})
		tr := m.Trees[0]
		for i := range tr.NodeCount() {
			if tr.left[i] < 0 && int(tr.nSamples[i]) < leaf {
				t.Errorf("min_samples_leaf %d: leaf %d has %d samples", leaf, i, tr.nSamples[i])
			}
		}
	}
	m, _ := Fit(iris, Params{Type: DecisionTree, Tree: TreeParams{MinSamplesSplit: 100}, Seed: 3})
	tr := m.Trees[0]
	for i := range tr.NodeCount() {
		if tr.left[i] >= 0 && tr.nSamples[i] < 100 {
			t.Errorf("min_samples_split 100: node %d with %d samples was split", i, tr.nSamples[i])
		}
	}
}

func TestFitErrors(t *testing.T) {
	t.Parallel()
	for _, p := range []Params{
		{Type: "SVC"},
		{Type: DecisionTree, Tree: TreeParams{Criterion: "mse"}},
		{Type: DecisionTree, Tree: TreeParams{MaxDepth: -1}},
		{Type: RandomForest, NEstimators: 0},
	} {
		if _, err := Fit(tiny(), p); err == nil {
			t.Errorf("Fit(%+v) succeeded, want error", p)
		}
	}
	if _, err := Fit(&Dataset{}, Params{Type: DecisionTree}); err == nil {
		t.Error("Fit(empty) succeeded, want error")
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	got := Evaluate([]string{"a", "b", "c"}, []int{0, 0, 1, 1, 2, 2}, []int{0, 1, 1, 1, 1, 2})
	want := Metrics{
		Accuracy: 4.0 / 6,
		Classes: []ClassMetrics{
			{Class: "a", Precision: 1, Recall: 0.5, F1: 2.0 / 3, Support: 2},
			{Class: "b", Precision: 0.5, Recall: 1, F1: 2.0 / 3, Support: 2},
			{Class: "c", Precision: 1, Recall: 0.5, F1: 2.0 / 3, Support: 2},
		},
		MacroAvg:        Averages{Precision: 2.5 / 3, Recall: 2.0 / 3, F1: 2.0 / 3},
		WeightedAvg:     Averages{Precision: 2.5 / 3, Recall: 2.0 / 3, F1: 2.0 / 3},
		Labels:          []string{"a", "b", "c"},
		ConfusionMatrix: [][]int{{1, 1, 0}, {0, 2, 0}, {0, 1, 1}},
	}
	approx := cmp.Comparer(func(x, y float64) bool { return x-y < 1e-12 && y-x < 1e-12 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("Evaluate (-want +got):\n%s", diff)
	}
	// A class never predicted has precision 0, not NaN.
	z := Evaluate([]string{"a", "b"}, []int{0, 1}, []int{0, 0})
	if z.Classes[1].Precision != 0 || z.Classes[1].F1 != 0 {
		t.Errorf("zero-division scores = %+v, want 0", z.Classes[1])
	}
}
