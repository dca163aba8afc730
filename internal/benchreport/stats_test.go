package benchreport

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Spread
	}{
		{"none", nil, Spread{}},
		{"one", []float64{7}, Spread{Median: 7, Min: 7, Max: 7, N: 1}},
		{"odd, unsorted", []float64{5, 1, 9, 3, 7}, Spread{Median: 5, Min: 1, Max: 9, N: 5}},
		{"even: mean of the middle two", []float64{4, 1, 10, 2}, Spread{Median: 3, Min: 1, Max: 10, N: 4}},
		{"repeats", []float64{2, 2, 2}, Spread{Median: 2, Min: 2, Max: 2, N: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.in...)
			if got := Summarize(tc.in); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
			if diff := cmp.Diff(in, tc.in); diff != "" {
				t.Errorf("Summarize changed its input:\n%s", diff)
			}
		})
	}
}

func TestGroupRunsAndSummaries(t *testing.T) {
	f, err := os.Open("testdata/gotest-bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	benches := GroupRuns(res)
	var names []string
	for _, b := range benches {
		names = append(names, b.Name)
	}
	wantNames := []string{"BenchmarkParse/random-forest.yaml", "BenchmarkParse/decision-tree.json", "BenchmarkFitDecisionTree",
		"BenchmarkPredictRandomForest100", "BenchmarkServeStartup", "BenchmarkDrain200"}
	if diff := cmp.Diff(wantNames, names); diff != "" {
		t.Fatalf("GroupRuns names (-want +got):\n%s", diff)
	}
	tree := benches[2]
	if got, _ := tree.Summary("ns/op"); got != (Spread{Median: (44200 + 36560) / 2.0, Min: 36560, Max: 44200, N: 2}) {
		t.Errorf("FitDecisionTree ns/op = %+v", got)
	}
	if diff := cmp.Diff([]string{"ns/op", "ns/row", "B/op", "allocs/op"}, benches[3].Units); diff != "" {
		t.Errorf("PredictRandomForest100 units (-want +got):\n%s", diff)
	}
	if _, ok := tree.Summary("jobs/s"); ok {
		t.Error("FitDecisionTree has a jobs/s summary; it reports none")
	}
	drain := benches[5]
	if got, ok := drain.Ratio("jobs/s", "bare-msgs/s"); !ok || got.N != 1 || got.Median != 14.63/134.9 {
		t.Errorf("Drain200 jobs/s ÷ bare-msgs/s = %+v, %v; want %v over 1 run", got, ok, 14.63/134.9)
	}
}

func TestRatioPerRunPairsFiguresOfTheSameRun(t *testing.T) {
	b := Bench{Runs: []Result{
		{Values: []Value{{"a", 10}, {"b", 2}}}, // 5
		{Values: []Value{{"a", 9}, {"b", 9}}},  // 1
		{Values: []Value{{"a", 4}, {"b", 1}}},  // 4
		{Values: []Value{{"a", 4}}},            // no b: left out
		{Values: []Value{{"a", 4}, {"b", 0}}},  // b = 0: left out
	}}
	got, ok := b.Ratio("a", "b")
	if want := (Spread{Median: 4, Min: 1, Max: 5, N: 3}); !ok || got != want {
		t.Errorf("Ratio = %+v, %v; want %+v", got, ok, want)
	}
	// The ratio of the medians is 9/2 = 4.5; pairing run by run gives 4.
	if m := RatioOfMedians(Summarize([]float64{10, 9, 4}), Summarize([]float64{2, 9, 1})); m.Median != 9.0/2 {
		t.Errorf("RatioOfMedians median = %v, want 4.5", m.Median)
	}
}

func TestRatioOfMedians(t *testing.T) {
	got := RatioOfMedians(Spread{Median: 10, Min: 8, Max: 12, N: 5}, Spread{Median: 2, Min: 1, Max: 4, N: 3})
	if want := (Spread{Median: 5, Min: 2, Max: 12, N: 3}); got != want {
		t.Errorf("RatioOfMedians = %+v, want %+v", got, want)
	}
	if got := RatioOfMedians(Spread{Median: 1, Min: 1, Max: 1, N: 1}, Spread{}); got != (Spread{}) {
		t.Errorf("RatioOfMedians over a zero denominator = %+v, want the zero Spread", got)
	}
}
