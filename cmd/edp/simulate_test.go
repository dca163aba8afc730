package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/sim"
)

// simulateCmd runs `edp simulate args` against the repository's cdk.json.
func simulateCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	args = append([]string{"-cdk-json", filepath.Join("..", "..", "cdk.json")}, args...)
	code = cmdSimulate(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestSimulateTable(t *testing.T) {
	code, out, errs := simulateCmd(t, "-scenario", "trickle", "-arch", "oneoff")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"scenario trickle:", "start p50", "total $/month", "oneoff"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "alarm-service") {
		t.Errorf("-arch oneoff printed another architecture:\n%s", out)
	}
}

func TestSimulateJSONAndSeed(t *testing.T) {
	run := func(seed string) []sim.Result {
		code, out, errs := simulateCmd(t, "-scenario", "burst", "-json", "-seed", seed, "-c", "edp:maxTasks=3")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		var rs []sim.Result
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		return rs
	}
	a, b := run("5"), run("5")
	if len(a) != 4 {
		t.Fatalf("%d results, want 4 (every architecture)", len(a))
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Error("the same seed gave different output")
	}
	for _, r := range a {
		if r.PeakTasks > 3 && r.Arch != sim.OneOff {
			t.Errorf("%s: peak %d tasks with -c edp:maxTasks=3", r.Arch, r.PeakTasks)
		}
	}
}

func TestSimulateUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-arch", "lambda"}, 2, `-arch "lambda": want oneoff`},
		{[]string{"-scenario", "rush"}, 2, `-scenario "rush": want steady, burst, nightly, trickle or all`},
		{[]string{"-markdown", "x.md"}, 2, "-markdown needs -svg"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-c", "edp:maxTasks=lots"}, 1, `"edp:maxTasks"`},
		{[]string{"-timings", "no-such-file.json"}, 1, "read timings"},
		{[]string{"-h"}, 0, "usage: edp simulate"},
	} {
		code, _, errs := simulateCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d naming %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

func TestSimulateEnvFallback(t *testing.T) {
	t.Setenv("EDP_SCENARIO", "nightly")
	t.Setenv("EDP_ARCH", "cron")
	code, out, errs := simulateCmd(t)
	if code != 0 || !strings.Contains(out, "scenario nightly:") || strings.Contains(out, "oneoff") {
		t.Errorf("EDP_SCENARIO/EDP_ARCH: exit %d, %s%s", code, out, errs)
	}
}

func TestSimulateFilesOut(t *testing.T) {
	dir := t.TempDir()
	arrivals := filepath.Join(dir, "uploads.csv")
	timings := filepath.Join(dir, "timings.json")
	page := filepath.Join(dir, "choosing.md")
	img := filepath.Join(dir, "img")
	write := func(name, text string) {
		if err := os.WriteFile(name, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(arrivals, "time\n2026-03-02T22:00:00Z\n2026-03-02T22:00:05Z,3\n")
	write(timings, `{"taskStartP50": 20, "taskStartP90": 30}`)
	write(page, "# Choosing\n\nbefore\n<!-- simulate:begin (generated) -->\nold\n<!-- simulate:end -->\nafter\n")
	code, out, errs := simulateCmd(t, "-arrivals", arrivals, "-timings", timings, "-svg", img, "-markdown", page)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "scenario csv:") {
		t.Errorf("output:\n%s", out)
	}
	for _, a := range sim.Archs() {
		if _, err := os.Stat(filepath.Join(img, "sim-csv-"+string(a)+".svg")); err != nil {
			t.Errorf("plot of %s: %v", a, err)
		}
	}
	got, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	text := string(got)
	for _, want := range []string{"before\n<!-- simulate:begin (generated) -->", "### csv", "](img/sim-csv-oneoff.svg)", "### Recommendation by pattern", "### Parameters", "`taskStartP50`", "<!-- simulate:end -->\nafter\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\nold\n") {
		t.Error("the old generated part was kept")
	}
	// A page without the markers is refused, untouched.
	write(page, "# no markers\n")
	if code, _, errs := simulateCmd(t, "-arrivals", arrivals, "-svg", img, "-markdown", page); code != 1 || !strings.Contains(errs, "markers") {
		t.Errorf("page without markers: exit %d, %s", code, errs)
	}
}
