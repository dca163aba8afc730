package benchreport

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/report.golden.md")

// fixedReport is a report over the real output in testdata, as Run
// would assemble it.
func fixedReport(t *testing.T) Report {
	t.Helper()
	f, err := os.Open("testdata/gotest-bench.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var pipeline, consumer []Result
	for _, r := range res {
		if strings.HasSuffix(r.Pkg, "/e2e") {
			consumer = append(consumer, r)
		} else {
			pipeline = append(pipeline, r)
		}
	}
	return Report{
		Date:      time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC),
		Machine:   Machine{CPU: "Intel(R) Xeon(R) Processor", CPUs: 2, Memory: "7.7 GiB", OS: "Debian GNU/Linux 12 (bookworm), Linux 6.1.0", Load: "0.50 1.00 2.00"},
		Go:        "go1.26.8",
		Count:     2,
		Note:      "A 2-core machine shared with other work.",
		Took:      95 * time.Second,
		LoadAfter: "3.00 2.00 1.00",
		Sections: []Section{
			PipelineSuite.Section(pipeline, 2),
			ConsumerSuite.Section(consumer, 2),
			{Title: "CDK app and the test suite", Rows: []Row{{Name: "warm synth, all stacks", Note: "one warm run",
				Figures: []Figure{{Unit: "synth-s", S: Summarize([]float64{21.5})}}}}},
		},
		Ratios:      ratios(GroupRuns(res)),
		NotMeasured: []string{"`make test` wall time: set `BENCH_MAKE_TEST=1`."},
	}
}

func TestRenderGolden(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, fixedReport(t)); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/report.golden.md"
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("Render (-%s +got); go test -update rewrites it:\n%s", golden, diff)
	}
}

// The structure, apart from the golden text: every benchmark has a row,
// every figure its median and spread, and every table its notes.
func TestRenderStructure(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, fixedReport(t)); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	for _, want := range []string{
		"| machine | Intel(R) Xeon(R) Processor, 2 CPUs, 7.7 GiB of memory |",
		"| Go | go1.26.8 |",
		"median of 2 runs",
		"A 2-core machine shared with other work.",
		// 42524 and 39470 ns: median 41.0 µs, spread 39.5–42.5 µs.
		"| `BenchmarkParse/random-forest.yaml` | time/op | 41.0 µs | 39.5 µs–42.5 µs | 2 |",
		"|  | allocs/op | 260 | 260–260 | 2 |",
		"| `BenchmarkDrain200` | bare-msgs/s | 135 | — | 1 |",
		"|  | peak-RSS-MB | 21.6 | — | 1 |",
		"- `BenchmarkDrain200`: drain mode over 200",
		"- `BenchmarkParse/…`: parse + validate",
		"| consumer drain ÷ emulator ceiling | 0.108× | — | 1 |",
		"## Not measured in this run",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The e2e benchmarks' 0 ns/op is not a figure.
	if strings.Contains(doc, "`BenchmarkServeStartup` | time/op") {
		t.Error("report shows ServeStartup's time/op, which the suite drops")
	}
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "| ") && strings.Count(line, "|") < 3 {
			t.Errorf("malformed table line %q", line)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		unit string
		v    float64
		want string
	}{
		{"ns/op", 14, "14 ns"},
		{"ns/op", 14.5, "14.5 ns"},
		{"allocs/op", 38, "38"},
		{"ns/op", 55123, "55.1 µs"},
		{"ns/op", 1.8e6, "1.80 ms"},
		{"ns/op", 2.5e9, "2.50 s"},
		{"B/op", 178000, "178000"},
		{"jobs/s", 0.5, "0.5"},
		{"jobs/s", 0.123456, "0.123"},
		{"allocs/op", 0, "0"},
	} {
		if got := formatValue(tc.unit, tc.v); got != tc.want {
			t.Errorf("formatValue(%q, %v) = %q, want %q", tc.unit, tc.v, got, tc.want)
		}
	}
}
