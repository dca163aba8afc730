// Package benchreport runs edp's benchmarks and the measurements that are
// not `go test` benchmarks (a warm CDK synth, the local cloud, `make test`),
// and renders them as docs/benchmarks.md: the machine, the date, the Go
// version, and for each figure the median of repeated runs with its spread
// (min–max) and a note on what it measures. It asserts nothing about
// timings; `make bench` is its front door.
package benchreport

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Value is one figure of a benchmark line: 1234 ns/op, 21.6 peak-RSS-MB.
type Value struct {
	Unit string
	V    float64
}

// Result is one line of `go test -bench` output: one run of one benchmark.
type Result struct {
	// Pkg is the import path of the "pkg:" line before it ("" when none).
	Pkg string
	// Name is the benchmark's name without the -GOMAXPROCS suffix, e.g.
	// BenchmarkParse/random-forest.yaml.
	Name string
	// Procs is GOMAXPROCS from the suffix (1 when there is none).
	Procs int
	// N is the number of iterations.
	N int64
	// Values are the line's figures in its order: ns/op, MB/s, B/op,
	// allocs/op and the metrics of b.ReportMetric.
	Values []Value
}

// Get returns the value of unit.
func (r Result) Get(unit string) (float64, bool) {
	for _, v := range r.Values {
		if v.Unit == unit {
			return v.V, true
		}
	}
	return 0, false
}

// Parse reads `go test -bench` output (the standard format, -count repeats
// as separate lines) and returns its benchmark lines in order. Other lines
// (goos, cpu, PASS, ok, logs) are skipped, and so is a line that starts
// with "Benchmark" but is not a result (a log line, "--- FAIL").
func Parse(r io.Reader) ([]Result, error) {
	var out []Result
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if res, ok := parseLine(line); ok {
			res.Pkg = pkg
			out = append(out, res)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read benchmark output: %w", err)
	}
	return out, nil
}

// parseLine parses "BenchmarkX-2  100  12.5 ns/op  3 B/op ...".
func parseLine(line string) (Result, bool) {
	if !strings.HasPrefix(line, "Benchmark") {
		return Result{}, false
	}
	f := strings.Fields(line)
	// A name, the iterations and at least one value-unit pair, in pairs.
	if len(f) < 4 || len(f)%2 != 0 {
		return Result{}, false
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || n <= 0 {
		return Result{}, false
	}
	r := Result{Name: f[0], Procs: 1, N: n}
	if i := strings.LastIndexByte(r.Name, '-'); i > 0 {
		if p, err := strconv.Atoi(r.Name[i+1:]); err == nil && p > 0 {
			r.Name, r.Procs = r.Name[:i], p
		}
	}
	for i := 2; i < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Result{}, false
		}
		r.Values = append(r.Values, Value{Unit: f[i+1], V: v})
	}
	return r, true
}
