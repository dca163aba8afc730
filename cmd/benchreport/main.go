// Command benchreport runs edp's benchmarks and writes the report that
// `make bench` keeps in docs/benchmarks.md (internal/benchreport).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/edp-pipelines/edp/internal/benchreport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:]))
}

func run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	out := fs.String("out", "docs/benchmarks.md", "write the report to `file`")
	var o benchreport.Options
	fs.IntVar(&o.Count, "count", 5, "runs of each go test benchmark (the median and min–max are reported)")
	fs.BoolVar(&o.Local, "local", false, "also measure the local cloud: upload → done per architecture (1–2 minutes)")
	fs.IntVar(&o.LocalConfigs, "local-configs", 20, "configs uploaded per architecture with -local")
	fs.BoolVar(&o.MakeTest, "make-test", false, "also time `make test` (about 8 minutes)")
	fs.BoolVar(&o.Ceiling, "ceiling", false, "also measure the local cloud's ceiling: alarm-service at 1 task and at edp:maxTasks' default (3–5 minutes)")
	fs.IntVar(&o.CeilingConfigs, "ceiling-configs", 200, "configs uploaded per run with -ceiling")
	fs.IntVar(&o.CeilingRuns, "ceiling-runs", 2, "runs per task count with -ceiling")
	ceilingOnly := fs.Bool("ceiling-only", false, "measure only the local cloud's ceiling and print its section of the report on stdout")
	fs.StringVar(&o.Note, "note", "", "a `sentence` for the report's header, e.g. that the machine was shared")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.Progress = os.Stderr
	if *ceilingOnly {
		sec, err := benchreport.MeasureCeiling(ctx, benchreport.CeilingOptions{Configs: o.CeilingConfigs, Runs: o.CeilingRuns, Progress: os.Stderr})
		if err == nil {
			err = benchreport.RenderSection(os.Stdout, sec)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchreport:", err)
			return 1
		}
		return 0
	}
	r, err := benchreport.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	var b bytes.Buffer
	if err := benchreport.Render(&b, r); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "benchreport: wrote %s in %s\n", *out, r.Took.Round(1e9))
	return 0
}
