package benchreport

import (
	"slices"
	"strconv"
	"strings"
)

// Suite is one `go test -bench` invocation and the section it fills.
type Suite struct {
	Title, Intro string
	Pkgs         []string
	// Bench is the -bench regular expression.
	Bench string
	// BenchTime is -benchtime (a duration or Nx).
	BenchTime string
	// Notes say what each benchmark measures, by its top-level name.
	Notes map[string]string
	// Drop lists units left out of the table (0 ns/op of benchmarks that
	// report their own figures).
	Drop []string
}

// Args are the arguments of `go test` for the suite at count runs.
func (s Suite) Args(count int) []string {
	args := []string{"test", "-run", "^$", "-bench", s.Bench, "-count", strconv.Itoa(count), "-benchmem"}
	if s.BenchTime != "" {
		args = append(args, "-benchtime", s.BenchTime)
	}
	return append(args, s.Pkgs...)
}

// Command is the suite's shell command, for the doc.
func (s Suite) Command(count int) string {
	args := s.Args(count)
	for i, a := range args {
		if strings.ContainsAny(a, "^$|()* ") {
			args[i] = "'" + a + "'"
		}
	}
	return "go " + strings.Join(args, " ")
}

// Section turns the suite's results into its table.
func (s Suite) Section(results []Result, count int) Section {
	sec := Section{Title: s.Title, Intro: s.Intro, Command: s.Command(count)}
	for _, b := range GroupRuns(results) {
		row := Row{Name: b.Name, Note: s.Notes[strings.SplitN(b.Name, "/", 2)[0]]}
		for _, u := range b.Units {
			if slices.Contains(s.Drop, u) {
				continue
			}
			sp, _ := b.Summary(u)
			row.Figures = append(row.Figures, Figure{Unit: u, S: sp})
		}
		sec.Rows = append(sec.Rows, row)
	}
	return sec
}

// The suites `make bench` runs, in the doc's order.
var (
	// PipelineSuite: config parsing, the learning algorithms, a whole job.
	PipelineSuite = Suite{
		Title: "Pipeline",
		Intro: "Pure code, no AWS: parse and validate a config, fit and predict on Iris (120 training rows, an 80/20 split, " +
			"the shape scikit-learn's figures in [pipeline.md](pipeline.md) were measured on), and a whole job against in-memory stores.",
		Pkgs:      []string{"./consumer/config/", "./consumer/ml/", "./consumer/job/"},
		Bench:     "^Benchmark(Parse|FitDecisionTree|FitRandomForest100|FitRandomForest100Serial|PredictDecisionTree|PredictRandomForest100|Run)$",
		BenchTime: "500ms",
		Notes: map[string]string{
			"BenchmarkParse":                    "parse + validate the reference configs (YAML random forest, JSON decision tree); MB/s is config bytes parsed",
			"BenchmarkFitDecisionTree":          "fit one default tree on 120 rows",
			"BenchmarkFitRandomForest100":       "fit a forest of 100 trees (sqrt features, bootstrap), trees in parallel on every CPU",
			"BenchmarkFitRandomForest100Serial": "the same forest with one worker",
			"BenchmarkPredictDecisionTree":      "predict all 150 Iris rows with one tree; time/row is per row",
			"BenchmarkPredictRandomForest100":   "predict all 150 Iris rows with the 100-tree forest",
			"BenchmarkRun":                      "a whole job of the random-forest example (parse, split, fit, evaluate, render, write artifacts and records) against in-memory stores",
		},
	}
	// LimitsSuite: what hostile or oversized configs cost (memory).
	LimitsSuite = Suite{
		Title: "Input limits",
		Intro: "What refusing hostile and oversized configs costs, 8 at a time (a consumer task's concurrency on 8 CPUs); " +
			"peak-MB is the test process's peak RSS (VmHWM, reset before each benchmark; its baseline is about 8 MB). " +
			"See [consumer.md](consumer.md) for the limits.",
		Pkgs:      []string{"./consumer/config/", "./consumer/store/"},
		Bench:     "^Benchmark(ParseHostile|GetConfigOversize)$",
		BenchTime: "20x",
		Notes: map[string]string{
			"BenchmarkParseHostile":      "parse the worst config for each limit (dense lists, empty entries, deep nesting, a long scalar, a tree at the node limit, many documents, an alias bomb), 1 and 8 at a time",
			"BenchmarkGetConfigOversize": "read a 16 MiB config 8 at a time with and without a Content-Length; read-B/op is the bytes read per call",
		},
	}
	// ConsumerSuite: the real consumer binary against moto_server.
	ConsumerSuite = Suite{
		Title: "Consumer against moto_server",
		Intro: "The real consumer binary, started by the benchmark, against a moto_server the benchmark starts on the same " +
			"machine (moto and the consumer share the CPUs), with GOMEMLIMIT as the task definition sets it at the default " +
			"`edp:memoryMiB` (see [consumer.md](consumer.md)).",
		Pkgs:      []string{"./consumer/e2e/"},
		Bench:     "^Benchmark(ServeStartup|Drain200)$",
		BenchTime: "1x",
		// The test process's allocations are the harness's, not the
		// consumer's.
		Drop: []string{"ns/op", "B/op", "allocs/op"},
		Notes: map[string]string{
			"BenchmarkServeStartup": "serve mode: process start → first SQS `ReceiveMessage` (exec, settings, AWS config and the queue-attribute " +
				"check included) and → first request of any kind; idle RSS after 1 s of long-polling an empty queue",
			"BenchmarkDrain200": "drain mode over 200 uploaded decision-tree configs: wall time (incl. the final empty 1 s poll), jobs/s, " +
				"the consumer's own CPU per job (user+system from its rusage; moto's CPU excluded), its peak RSS (rusage maxrss), " +
				"requests to the emulator; bare-msgs/s is the emulator's ceiling measured in the same run: a bare receive + " +
				"batch-delete loop over 200 messages with no work",
		},
	}
	// DispatchSuite: the alarm-dispatch Lambda's handler.
	DispatchSuite = Suite{
		Title: "Alarm-dispatch function",
		Intro: "The Lambda of the alarm-dispatch architecture, in process, with fake AWS clients " +
			"(see [alarm-dispatch.md](alarm-dispatch.md)).",
		Pkgs:      []string{"./lambdas/alarm-dispatch/"},
		Bench:     "^Benchmark(ColdStart|Decision)$",
		BenchTime: "500ms",
		Notes: map[string]string{
			"BenchmarkColdStart": "cold construction: parse and validate the environment, load the SDK configuration, build the SQS and ECS clients",
			"BenchmarkDecision":  "one invocation: decode the alarm, read backlog and running tasks, decide, send one RunTask batch, log and write the metric line",
		},
	}
)
