// Command edp is the operator's tool for edp deployments: `edp local` runs
// a stack's synthesized template on this machine (moto_server plus local
// emulation of ECS, alarms, the Lambda and schedules) and `edp smoke`
// checks a deployment, local or on AWS, end to end; submit, status, watch,
// logs, dlq and top operate a deployed stack.
//
// main only dispatches; each verb parses its flags (each falls back to an
// EDP_<FLAG> environment variable) and calls internal/localcloud.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/edp-pipelines/edp/internal/subcmd"
)

func commands() map[string]subcmd.Command {
	return map[string]subcmd.Command{
		"local":    {Summary: "deploy a stack into a local cloud and run it: local [run] | up | down", Run: cmdLocal},
		"smoke":    {Summary: "upload a config to a deployed stack (AWS or -local) and check its run, artifacts and DLQ", Run: cmdSmoke},
		"submit":   {Summary: "check a config with the stack's own checks, upload it and print its run id (-wait follows it)", Run: cmdSubmit},
		"status":   {Summary: "recent runs, newest first, or one run in detail", Run: cmdStatus},
		"watch":    {Summary: "follow a run: queued → running → succeeded/failed; exit 1 on failure, 3 on timeout", Run: cmdWatch},
		"logs":     {Summary: "a run's log lines (CloudWatch Logs, or the local tasks' logs)", Run: cmdLogs},
		"dlq":      {Summary: "list or redrive the stack's dead-letter queue", Run: cmdDLQ},
		"simulate": {Summary: "predict each architecture's latency, tasks and monthly cost on an arrival pattern (no AWS)", Run: cmdSimulate},
		"top":      {Summary: "a live view of a stack: queue, DLQs, tasks, alarms, recent runs and why work waits (q quits, p pauses)", Run: cmdTop},
	}
}

// stopSignals end a command gracefully: Ctrl-C, `kill`, and SIGHUP (the
// terminal closed), so a local cloud stops everything it started.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

func main() { os.Exit(run(os.Args[1:])) }

// run is the whole command; tests run it as edp in a child process.
func run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	return subcmd.Dispatch(ctx, "edp", commands(), args, os.Stdout, os.Stderr)
}
