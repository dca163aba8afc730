package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/edp-pipelines/edp/internal/flagenv"
)

// envName and parseFlags are flagenv's: every flag falls back to
// EDP_<FLAG>.
func envName(flagName string) string { return flagenv.Name(flagName) }

func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	return flagenv.Parse(fs, args, getenv)
}

// contextFlags collects repeated -c key=value flags.
type contextFlags map[string]string

func (c contextFlags) String() string { return fmt.Sprint(map[string]string(c)) }

func (c contextFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	c[k] = val
	return nil
}
