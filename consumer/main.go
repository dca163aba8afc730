// Command consumer is edp's one container: it runs pipeline jobs locally
// (run, validate, predict) and consumes the work queue on ECS (drain, serve).
//
// main only dispatches to a subcommand; each subcommand reads its flags and
// environment once, builds its clients and calls into the packages that do
// the work.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/edp-pipelines/edp/internal/subcmd"

	// Root certificates used only when the system has none: a command
	// job's image (docs/jobs.md) is the user's, and a slim base without CA
	// certificates must not keep the consumer from reaching AWS over TLS.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func commands() map[string]subcmd.Command {
	return map[string]subcmd.Command{
		"run":      {Summary: "run one pipeline job from a config file (local path or s3://)", Run: cmdRun},
		"validate": {Summary: "check a pipeline config without running it", Run: cmdValidate},
		"predict":  {Summary: "predict classes with a trained model.json", Run: cmdPredict},
		"drain":    {Summary: "consume the queue until it stays empty, then exit (one-off, cron, dispatched tasks)", Run: cmdDrain},
		"serve":    {Summary: "consume the queue until SIGTERM (alarm-scaled service)", Run: cmdServe},
		"dlq":      {Summary: "list or redrive the dead-letter queue, counting copies of one message once", Run: cmdDLQ},
		"version":  {Summary: "print the version", Run: cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return subcmd.Dispatch(ctx, "consumer", commands(), args, stdout, stderr)
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, version)
	return 0
}
