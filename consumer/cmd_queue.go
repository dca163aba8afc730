package main

import (
	"context"
	"fmt"
	"io"
)

// Placeholder until the queue commands land (issue 4).
func cmdDrain(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "drain: not implemented yet")
	return 1
}

func cmdServe(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "serve: not implemented yet")
	return 1
}
