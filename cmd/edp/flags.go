package main

import (
	"flag"
	"fmt"
	"strings"
)

// envName is the environment variable a flag falls back to: EDP_ + the
// flag name in upper case with - as _ (-speedup → EDP_SPEEDUP).
func envName(flagName string) string {
	return "EDP_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args; every flag not given on the command line takes
// its environment variable's value when that is set.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q (for -%s): %w", envName(f.Name), v, f.Name, e)
			}
		}
	})
	return err
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
