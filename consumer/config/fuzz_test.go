package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics, that every failure is an *Error
// with at least one problem, that every accepted config survives the JSON
// round trip unchanged, and that the pre-scan's node count is never below
// what decoding builds. Seeds: the fixtures in testdata/ plus the committed
// corpus in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if utf8.Valid(data) {
			checkBound(t, data)
		}
		cfg, err := Parse(data)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) || len(perr.Problems) == 0 {
				t.Fatalf("error %v is not a *Error with problems", err)
			}
			if cfg != nil {
				t.Fatalf("Parse returned both a config and an error")
			}
			return
		}
		if !versionRE.MatchString(cfg.Run.Version) {
			t.Fatalf("accepted unsafe version %q", cfg.Run.Version)
		}
		again, err := Parse(cfg.JSON())
		if err != nil {
			t.Fatalf("Parse(JSON()) failed: %v\n%s", err, cfg.JSON())
		}
		if diff := cmp.Diff(cfg, again); diff != "" {
			t.Fatalf("JSON round trip changed the config (-first +second):\n%s", diff)
		}
	})
}
