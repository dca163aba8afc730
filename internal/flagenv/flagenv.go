// Package flagenv parses command-line flags that fall back to environment
// variables named after them: flag -retry-delay reads EDP_RETRY_DELAY when
// it is not given on the command line. Deriving the name from the flag means
// a new flag cannot forget its variable. Standard library only.
package flagenv

import (
	"flag"
	"fmt"
	"strings"
)

// Prefix starts every derived variable name.
const Prefix = "EDP_"

// Name is the environment variable of a flag: Prefix + the flag name in
// upper case with "-" as "_".
func Name(flagName string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args into fs; then every flag that args did not set takes
// the value of its variable (Name) when getenv returns one. An invalid
// value names the variable and the flag. Precedence: flag, variable,
// default.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string) error {
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
		if v := getenv(Name(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q (the environment variable of -%s): %w", Name(f.Name), v, f.Name, e)
			}
		}
	})
	return err
}
