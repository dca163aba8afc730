package benchreport

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testdata/gotest-bench.txt is real `go test -bench` output: two packages
// at -count 2 with -benchmem and SetBytes (MB/s), a custom metric
// (ns/row), and the e2e benchmarks that report only custom metrics.
func TestParseRealOutput(t *testing.T) {
	f, err := os.Open("testdata/gotest-bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 {
		t.Fatalf("Parse found %d results, want 10: %+v", len(got), got)
	}
	const config, ml, e2e = "github.com/edp-pipelines/edp/consumer/config", "github.com/edp-pipelines/edp/consumer/ml", "github.com/edp-pipelines/edp/consumer/e2e"
	want := map[int]Result{
		0: {Pkg: config, Name: "BenchmarkParse/random-forest.yaml", Procs: 2, N: 50, Values: []Value{
			{"ns/op", 42524}, {"MB/s", 9.36}, {"B/op", 18960}, {"allocs/op", 260}}},
		7: {Pkg: ml, Name: "BenchmarkPredictRandomForest100", Procs: 2, N: 50, Values: []Value{
			{"ns/op", 208993}, {"ns/row", 1393}, {"B/op", 0}, {"allocs/op", 0}}},
		9: {Pkg: e2e, Name: "BenchmarkDrain200", Procs: 2, N: 1, Values: []Value{
			{"bare-msgs/s", 134.9}, {"cpu-ms/job", 7.609}, {"drain-s", 13.67}, {"jobs/s", 14.63},
			{"peak-RSS-MB", 21.62}, {"requests/job", 14.82}, {"requests/s", 216.9}}},
	}
	for i, w := range want {
		if diff := cmp.Diff(w, got[i]); diff != "" {
			t.Errorf("result %d (-want +got):\n%s", i, diff)
		}
	}
}

func TestParseSkipsWhatIsNotAResult(t *testing.T) {
	out := strings.Join([]string{
		"goos: linux",
		"BenchmarkLogged says something",
		"BenchmarkX-2   \t--- FAIL: BenchmarkX-2",
		"BenchmarkOdd-2 \t 10 \t 5 ns/op \t 7",
		"BenchmarkNoProcs \t 3 \t 1.5 ns/op",
		"BenchmarkSub/case-a-8 \t 3 \t 2 ns/op",
		"--- BENCH: BenchmarkY",
		"ok  \tpkg\t1.2s",
	}, "\n")
	got, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{
		{Name: "BenchmarkNoProcs", Procs: 1, N: 3, Values: []Value{{"ns/op", 1.5}}},
		{Name: "BenchmarkSub/case-a", Procs: 8, N: 3, Values: []Value{{"ns/op", 2}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}
