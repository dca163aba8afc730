package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/internal/sim"
)

// Markers of the generated part of docs/choosing.md (-markdown).
const (
	simBegin = "<!-- simulate:begin"
	simEnd   = "<!-- simulate:end -->"
)

type simulateFlags struct {
	arch, scenario, arrivals, timings, svgDir, markdown, cdkJSON string
	seed                                                         uint64
	jobSeconds, jobSigma, jobFailures                            float64
	json                                                         bool
	context                                                      contextFlags
}

func newSimulateFlagSet(stderr io.Writer) (*flag.FlagSet, *simulateFlags) {
	f := &simulateFlags{arch: "all", scenario: "all", cdkJSON: "cdk.json", seed: 1,
		jobSeconds: sim.DefaultJob.Median, jobSigma: sim.DefaultJob.Sigma, context: contextFlags{}}
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: edp simulate [-arch A|all] [-scenario S|all] [-arrivals FILE.csv] [-c key=value ...] [-timings FILE] [-seed N] [-svg DIR] [-json] [-markdown FILE]")
		fmt.Fprintln(stderr, "\npredicts each architecture's latency, tasks and monthly cost on an arrival pattern (docs/choosing.md)")
		fmt.Fprintln(stderr, "\nflags (each falls back to EDP_<FLAG>):")
		fs.PrintDefaults()
	}
	fs.StringVar(&f.arch, "arch", f.arch, "architecture `name`: oneoff, alarm-service, alarm-dispatch, cron or all")
	fs.StringVar(&f.scenario, "scenario", f.scenario, "built-in arrival `pattern`: "+strings.Join(sim.ScenarioNames(), ", ")+" or all")
	fs.StringVar(&f.arrivals, "arrivals", "", "simulate the uploads of a CSV `file` instead: time (RFC 3339 or seconds from the start)[,job seconds] per line")
	fs.Var(f.context, "c", "CDK context override `key=value` over cdk.json's context (repeatable), e.g. -c edp:maxTasks=3")
	fs.StringVar(&f.timings, "timings", "", "JSON `file` of AWS parameter overrides, e.g. {\"taskStartP50\": 25} (docs/choosing.md#parameters)")
	fs.Uint64Var(&f.seed, "seed", f.seed, "random `seed`: the same seed gives the same output")
	fs.Float64Var(&f.jobSeconds, "job-seconds", f.jobSeconds, "median job duration in `seconds` (1: the built-in Iris job, docs/choosing.md#the-job)")
	fs.Float64Var(&f.jobSigma, "job-sigma", f.jobSigma, "log-standard deviation of the job duration (lognormal; 0: every job takes -job-seconds)")
	fs.Float64Var(&f.jobFailures, "job-failures", 0, "share of job attempts that fail transiently, 0 to below 1: retried after the retry delay, dead-lettered after edp:maxReceiveCount receives")
	fs.StringVar(&f.svgDir, "svg", "", "write a plot of queue depth and tasks per run into `directory`")
	fs.BoolVar(&f.json, "json", false, "print the results as JSON instead of tables")
	fs.StringVar(&f.markdown, "markdown", "", "rewrite the generated part of a markdown `file` (docs/choosing.md) with the tables, plots (needs -svg) and recommendations")
	fs.StringVar(&f.cdkJSON, "cdk-json", f.cdkJSON, "the `file` whose context holds the stacks' settings")
	return fs, f
}

// cmdSimulate runs `edp simulate`.
func cmdSimulate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs, f := newSimulateFlagSet(stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "edp simulate:", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edp simulate: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := simulate(f, stdout); err != nil {
		fmt.Fprintln(stderr, "edp simulate:", err)
		var usage usageError
		if errors.As(err, &usage) {
			return exitUsage
		}
		return exitFailed
	}
	return 0
}

func simulate(f *simulateFlags, stdout io.Writer) error {
	archs, err := pickArchs(f.arch)
	if err != nil {
		return err
	}
	if f.markdown != "" && f.svgDir == "" {
		return usageError{err: errors.New("-markdown needs -svg (the page embeds the plots)")}
	}
	s, err := simSettings(f.cdkJSON, f.context)
	if err != nil {
		return err
	}
	params := sim.DefaultParams()
	if f.timings != "" {
		file, err := os.Open(f.timings)
		if err != nil {
			return fmt.Errorf("read timings: %w", err)
		}
		params, err = sim.LoadTimings(file, params)
		file.Close()
		if err != nil {
			return fmt.Errorf("timings %s: %w", f.timings, err)
		}
	}
	scenarios, start, err := pickScenarios(f)
	if err != nil {
		return err
	}
	job := sim.JobModel{Median: f.jobSeconds, Sigma: f.jobSigma, Failures: f.jobFailures}
	results := make([][]sim.Result, len(scenarios))
	for i, sc := range scenarios {
		for _, a := range archs {
			r, err := sim.Run(sim.Config{Arch: a, Settings: s, Params: params, Job: job, Seed: f.seed, Start: start}, sc)
			if err != nil {
				return fmt.Errorf("simulate %s on %s: %w", a, sc.Name, err)
			}
			results[i] = append(results[i], r)
			if f.svgDir != "" {
				if err := writePlot(f.svgDir, r); err != nil {
					return err
				}
			}
		}
	}
	if f.markdown != "" {
		if err := writeMarkdown(f, s, scenarios, results); err != nil {
			return err
		}
	}
	if f.json {
		var all []sim.Result
		for _, rs := range results {
			all = append(all, rs...)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	for i, sc := range scenarios {
		if err := sim.WriteTable(stdout, sc, results[i]); err != nil {
			return err
		}
	}
	return nil
}

func pickArchs(name string) ([]sim.Arch, error) {
	if name == "all" {
		return sim.Archs(), nil
	}
	if a := sim.Arch(name); slices.Contains(sim.Archs(), a) {
		return []sim.Arch{a}, nil
	}
	return nil, usageError{err: fmt.Errorf("-arch %q: want oneoff, alarm-service, alarm-dispatch, cron or all", name)}
}

// pickScenarios returns the CSV's uploads (-arrivals) or the built-in
// scenarios -scenario names, and the clock's origin.
func pickScenarios(f *simulateFlags) ([]sim.Scenario, time.Time, error) {
	if f.arrivals != "" {
		file, err := os.Open(f.arrivals)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("read arrivals: %w", err)
		}
		defer file.Close()
		sc, start, err := sim.ParseArrivals(filepath.Base(f.arrivals), file)
		if err != nil {
			return nil, time.Time{}, err
		}
		return []sim.Scenario{sc}, start, nil
	}
	var out []sim.Scenario
	for _, sc := range sim.Scenarios() {
		if f.scenario == "all" || f.scenario == sc.Name {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		return nil, time.Time{}, usageError{err: fmt.Errorf("-scenario %q: want %s or all", f.scenario, strings.Join(sim.ScenarioNames(), ", "))}
	}
	return out, sim.Start, nil
}

// simSettings reads the stacks' settings as cdk.go does: cdk.json's
// context with the -c overrides, the job directory's job file below them.
func simSettings(cdkJSON string, overrides contextFlags) (settings.Settings, error) {
	return settings.FromCDKJSON(cdkJSON, overrides)
}

func writePlot(dir string, r sim.Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	var b bytes.Buffer
	if err := sim.WriteSVG(&b, r); err != nil {
		return err
	}
	path := filepath.Join(dir, sim.PlotName(r))
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}

// writeMarkdown replaces what lies between the markers of f.markdown with
// the generated tables.
func writeMarkdown(f *simulateFlags, s settings.Settings, scenarios []sim.Scenario, results [][]sim.Result) error {
	page, err := os.ReadFile(f.markdown)
	if err != nil {
		return fmt.Errorf("markdown: %w", err)
	}
	text := string(page)
	i, j := strings.Index(text, simBegin), strings.Index(text, simEnd)
	if i < 0 || j < i {
		return fmt.Errorf("markdown %s: no %q … %q markers to write between", f.markdown, simBegin+" -->", simEnd)
	}
	i += strings.Index(text[i:], "-->") + len("-->")
	img, err := filepath.Rel(filepath.Dir(f.markdown), f.svgDir)
	if err != nil {
		return fmt.Errorf("markdown: plots directory: %w", err)
	}
	var b strings.Builder
	b.WriteString("\n\n")
	if err := sim.Markdown(&b, s, scenarios, results, filepath.ToSlash(img)); err != nil {
		return err
	}
	b.WriteString("\n")
	out := text[:i] + b.String() + text[j:]
	return os.WriteFile(f.markdown, []byte(out), 0o644)
}
