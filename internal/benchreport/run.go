package benchreport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/settings"
)

// Options configure Run. Every field works at its zero value.
type Options struct {
	// RepoRoot is the repository root. Default ".".
	RepoRoot string
	// Count is the number of runs of each go test benchmark (-count).
	// Default 5.
	Count int
	// Note is said under the report's header; default none.
	Note string
	// Local measures the local cloud: upload → done of LocalConfigs
	// configs per architecture, once each (1–2 minutes in all). A
	// failure there is reported in the doc, not returned. Default off;
	// `make bench` turns it on.
	Local bool
	// LocalConfigs is the batch uploaded per architecture. Default 20.
	LocalConfigs int
	// Ceiling measures the local cloud's ceiling (MeasureCeiling). A
	// failure there is reported in the doc, not returned. Default off;
	// `make bench` turns it on with Local.
	Ceiling bool
	// CeilingConfigs and CeilingRuns are CeilingOptions' Configs and
	// Runs. Defaults 200 and 2.
	CeilingConfigs, CeilingRuns int
	// MakeTest times `make test`. Default off (it takes ~8 minutes).
	MakeTest bool
	// Progress receives the benchmarks' output as they run; default
	// discarded.
	Progress io.Writer
}

func (o *Options) setDefaults() {
	if o.RepoRoot == "" {
		o.RepoRoot = "."
	}
	if o.Count <= 0 {
		o.Count = 5
	}
	if o.LocalConfigs <= 0 {
		o.LocalConfigs = 20
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
}

// Run measures everything and returns the report.
func Run(ctx context.Context, o Options) (Report, error) {
	o.setDefaults()
	start := time.Now()
	r := Report{Date: start, Machine: ReadMachine(), Count: o.Count, Note: o.Note}
	goVersion, err := output(ctx, o.RepoRoot, "go", "env", "GOVERSION")
	if err != nil {
		return r, err
	}
	r.Go = strings.TrimSpace(goVersion)

	var all []Result
	for _, s := range []Suite{PipelineSuite, LimitsSuite, ConsumerSuite, DispatchSuite} {
		fmt.Fprintf(o.Progress, "benchreport: %s\n", s.Command(o.Count))
		res, err := runSuite(ctx, o, s)
		if err != nil {
			return r, err
		}
		all = append(all, res...)
		r.Sections = append(r.Sections, s.Section(res, o.Count))
	}
	r.Ratios = ratios(GroupRuns(all))

	fmt.Fprintln(o.Progress, "benchreport: CDK synth of all stacks, twice")
	cdk, err := measureSynth(ctx, o.RepoRoot)
	if err != nil {
		return r, err
	}
	if o.MakeTest {
		fmt.Fprintln(o.Progress, "benchreport: make test")
		row, err := measureMakeTest(ctx, o.RepoRoot)
		if err != nil {
			return r, err
		}
		cdk.Rows = append(cdk.Rows, row)
	} else {
		r.NotMeasured = append(r.NotMeasured, "`make test` wall time: set `BENCH_MAKE_TEST=1` (it takes about 8 minutes).")
	}
	r.Sections = append(r.Sections, cdk)

	if o.Local {
		// The local cloud has the most moving parts: its failure is
		// reported in the doc, not fatal to the other figures.
		sec, err := measureLocal(ctx, o.RepoRoot, o.LocalConfigs, o.Progress)
		switch {
		case ctx.Err() != nil:
			return r, ctx.Err()
		case err != nil:
			fmt.Fprintln(o.Progress, "benchreport: local cloud:", err)
			r.NotMeasured = append(r.NotMeasured, "the local cloud: "+strings.SplitN(err.Error(), "\n", 2)[0])
		default:
			r.Sections = append(r.Sections, sec)
		}
	} else {
		r.NotMeasured = append(r.NotMeasured, fmt.Sprintf("the local cloud, upload → done of %d configs per architecture: "+
			"skipped with `BENCH_LOCAL=0` (it adds 1–2 minutes).", o.LocalConfigs))
	}
	if o.Ceiling {
		fmt.Fprintln(o.Progress, "benchreport: local cloud ceiling")
		sec, err := MeasureCeiling(ctx, CeilingOptions{RepoRoot: o.RepoRoot, Configs: o.CeilingConfigs, Runs: o.CeilingRuns, Progress: o.Progress})
		switch {
		case ctx.Err() != nil:
			return r, ctx.Err()
		case err != nil:
			fmt.Fprintln(o.Progress, "benchreport: local cloud ceiling:", err)
			r.NotMeasured = append(r.NotMeasured, "the local cloud ceiling: "+strings.SplitN(err.Error(), "\n", 2)[0])
		default:
			r.Sections = append(r.Sections, sec)
		}
	} else {
		r.NotMeasured = append(r.NotMeasured, "the local cloud ceiling (alarm-service at 1 and at the default tasks): "+
			"skipped with `BENCH_LOCAL=0` (it adds 3–5 minutes).")
	}
	r.Took = time.Since(start)
	r.LoadAfter = LoadAverage()
	return r, nil
}

// runSuite runs one `go test -bench` and parses its output.
func runSuite(ctx context.Context, o Options, s Suite) ([]Result, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", s.Args(o.Count)...)
	cmd.Dir = o.RepoRoot
	cmd.Stdout = io.MultiWriter(&out, o.Progress)
	cmd.Stderr = io.MultiWriter(&out, o.Progress)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", s.Command(o.Count), err, tail(out.String(), 40))
	}
	res, err := Parse(&out)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results", s.Command(o.Count))
	}
	return res, nil
}

// ratios relates figures of the benchmarks.
func ratios(benches []Bench) []Ratio {
	find := func(name string) (Bench, bool) {
		for _, b := range benches {
			if b.Name == name {
				return b, true
			}
		}
		return Bench{}, false
	}
	var out []Ratio
	of := func(name, numBench, numUnit, denBench, denUnit, note string) {
		a, ok1 := find(numBench)
		b, ok2 := find(denBench)
		if !ok1 || !ok2 {
			return
		}
		x, ok1 := a.Summary(numUnit)
		y, ok2 := b.Summary(denUnit)
		if ok1 && ok2 {
			out = append(out, Ratio{Name: name, S: RatioOfMedians(x, y), Note: note})
		}
	}
	if d, ok := find("BenchmarkDrain200"); ok {
		if s, ok := d.Ratio("jobs/s", "bare-msgs/s"); ok {
			out = append(out, Ratio{Name: "consumer drain ÷ emulator ceiling", S: s,
				Note: "jobs/s of the 200-config drain ÷ bare-msgs/s of the bare receive + delete loop, run by run (the same run measures both)"})
		}
		limit := settings.GoMemLimit(settings.Defaults().MemoryMiB)
		if mib, err := strconv.ParseFloat(strings.TrimSuffix(limit, "MiB"), 64); err == nil && mib > 0 {
			if s, ok := d.Summary("peak-RSS-MB"); ok {
				out = append(out, Ratio{Name: "drain peak RSS ÷ GOMEMLIMIT", S: Spread{Median: s.Median / mib, Min: s.Min / mib, Max: s.Max / mib, N: s.N},
					Note: "peak-RSS-MB (MiB) of the drain ÷ GOMEMLIMIT=" + limit + " (the task definition's, at the default edp:memoryMiB)"})
			}
		}
	}
	const medians = "ratio of the medians; the spread divides the extremes (min ÷ max, max ÷ min)"
	of("forest fit: one worker ÷ parallel", "BenchmarkFitRandomForest100Serial", "ns/op", "BenchmarkFitRandomForest100", "ns/op",
		"the speed-up of fitting the 100 trees on every CPU; "+medians)
	of("forest of 100 ÷ one tree (fit)", "BenchmarkFitRandomForest100", "ns/op", "BenchmarkFitDecisionTree", "ns/op", medians)
	of("forest of 100 ÷ one tree (predict)", "BenchmarkPredictRandomForest100", "ns/op", "BenchmarkPredictDecisionTree", "ns/op", medians)
	of("dispatch cold construction ÷ decision", "BenchmarkColdStart", "ns/op", "BenchmarkDecision", "ns/op", medians)
	return out
}

// RatioOfMedians is a/b for two figures from different runs: the ratio of
// the medians, with the spread from the extremes (a.Min/b.Max to
// a.Max/b.Min); N is the smaller count.
func RatioOfMedians(a, b Spread) Spread {
	if b.Median == 0 || b.Min == 0 || b.Max == 0 {
		return Spread{}
	}
	return Spread{Median: a.Median / b.Median, Min: a.Min / b.Max, Max: a.Max / b.Min, N: min(a.N, b.N)}
}

// measureSynth builds the CDK app once and runs it twice into fresh
// directories, as internal/localcloud's Synthesize does; the second
// (warm) run is the figure.
func measureSynth(ctx context.Context, root string) (Section, error) {
	sec := Section{
		Title: "CDK app and the test suite",
		Intro: "The CDK app (`cdk.go`) built once, then run twice with `CDK_OUTDIR` set to a temporary directory and " +
			"cdk.json's context, as `make local` synthesizes; the figure is the second (warm: jsii and the Go build cache " +
			"are warm) run, which synthesizes all four stacks with cdk-nag's checks.",
	}
	dir, err := os.MkdirTemp("", "edp-bench-synth-")
	if err != nil {
		return sec, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "cdk-app")
	if _, err := output(ctx, root, "go", "build", "-o", bin, "."); err != nil {
		return sec, fmt.Errorf("build the CDK app: %w", err)
	}
	var took [2]time.Duration
	for i := range took {
		cmd, err := localcloud.AppCommand(ctx, root, bin, filepath.Join(dir, "out"+strconv.Itoa(i)), nil)
		if err != nil {
			return sec, err
		}
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		t := time.Now()
		if err := cmd.Run(); err != nil {
			return sec, fmt.Errorf("synthesize: %w\n%s", err, tail(stderr.String(), 20))
		}
		took[i] = time.Since(t)
	}
	sec.Rows = append(sec.Rows, Row{
		Name:    "warm synth, all stacks",
		Note:    fmt.Sprintf("one warm run (the first run, which is not the figure, took %.1f s)", took[0].Seconds()),
		Figures: []Figure{{Unit: "synth-s", S: Summarize([]float64{took[1].Seconds()})}},
	})
	return sec, nil
}

// measureMakeTest times `make test` once.
func measureMakeTest(ctx context.Context, root string) (Row, error) {
	t := time.Now()
	if _, err := output(ctx, root, "make", "--no-print-directory", "test"); err != nil {
		return Row{}, err
	}
	return Row{
		Name:    "make test",
		Note:    "one run of everything CI runs: vet, the docs check, every Go test (under -race where concurrent), synth, template lint",
		Figures: []Figure{{Unit: "make-test-s", S: Summarize([]float64{time.Since(t).Seconds()})}},
	}, nil
}

// output runs a command in dir and returns its combined output.
func output(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	if err != nil {
		return string(b), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(string(b), 20))
	}
	return string(b), nil
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
