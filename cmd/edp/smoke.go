package main

import (
	"context"
	"fmt"
	"io"
)

func cmdSmoke(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "edp smoke: not built yet")
	return 1
}
