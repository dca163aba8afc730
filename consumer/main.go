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
	"sort"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: it gets the arguments after its name and
// returns the process exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"run":      {"run one pipeline job from a config file (local path or s3://)", cmdRun},
		"validate": {"check a pipeline config without running it", cmdValidate},
		"predict":  {"predict classes with a trained model.json", cmdPredict},
		"drain":    {"consume the queue until it stays empty, then exit (one-off, cron, dispatched tasks)", cmdDrain},
		"serve":    {"consume the queue until SIGTERM (alarm-scaled service)", cmdServe},
		"dlq":      {"list or redrive the dead-letter queue, counting copies of one message once", cmdDLQ},
		"version":  {"print the version", cmdVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "consumer: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: consumer <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'consumer <command> -h' for a command's flags")
}

func cmdVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, version)
	return 0
}
