package main

import (
	"context"
	"fmt"
	"io"
)

// Placeholder until the pipeline commands land (issue 3).
func cmdRun(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "run: not implemented yet")
	return 1
}

func cmdValidate(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "validate: not implemented yet")
	return 1
}

func cmdPredict(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "predict: not implemented yet")
	return 1
}
