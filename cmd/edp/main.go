// Command edp is the operator's tool for edp deployments: `edp local` runs
// a stack's synthesized template on this machine (moto_server plus local
// emulation of ECS, alarms, the Lambda and schedules) and `edp smoke`
// checks a deployment, local or on AWS, end to end.
//
// main only dispatches; each verb parses its flags (each falls back to an
// EDP_<FLAG> environment variable) and calls internal/localcloud.
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

type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"local": {"deploy a stack into a local cloud and run it: local [run] | up | down", cmdLocal},
		"smoke": {"upload a config to a deployed stack (AWS or -local) and check its run, artifacts and DLQ", cmdSmoke},
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
		fmt.Fprintf(stderr, "edp: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: edp <command> [flags]  (edp <command> -h for its flags)")
	fmt.Fprintln(w)
	var names []string
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-7s %s\n", n, cmds[n].summary)
	}
}
