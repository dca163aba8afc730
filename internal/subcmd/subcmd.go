// Package subcmd dispatches a program's first argument to one of its
// subcommands and prints the list of them. Standard library only; used by
// the thin mains of the consumer and of edp.
package subcmd

import (
	"context"
	"fmt"
	"io"
	"sort"
)

// Command is one subcommand: Run gets the arguments after its name and
// returns the process exit code.
type Command struct {
	Summary string
	Run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// Dispatch runs the command args[0] names. No arguments print the usage and
// return 2, -h/--help/help print it and return 0, an unknown name says so
// and returns 2.
func Dispatch(ctx context.Context, program string, cmds map[string]Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		Usage(stderr, program, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n\n", program, args[0])
		Usage(stderr, program, cmds)
		return 2
	}
	return c.Run(ctx, args[1:], stdout, stderr)
}

// Usage lists the commands, sorted, with their summaries.
func Usage(w io.Writer, program string, cmds map[string]Command) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n", program)
	fmt.Fprintln(w, "\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].Summary)
	}
	fmt.Fprintf(w, "\nrun '%s <command> -h' for a command's flags\n", program)
}
