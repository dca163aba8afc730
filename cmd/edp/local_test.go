package main

import (
	"bytes"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Each verb's -h lists the flags that verb reads and no other, and every
// flag's argument is named by one word: a back-quoted phrase in a usage
// text would become the argument's name (flag.UnquoteUsage).
func TestLocalHelp(t *testing.T) {
	flagLine := regexp.MustCompile(`(?m)^  -(\S+)(?: (.*))?$`)
	for verb, want := range map[string][]string{
		"run":  {"arch", "c", "configs", "job", "log", "speedup", "timeout", "work-dir"},
		"up":   {"arch", "c", "detach", "job", "log", "speedup", "work-dir"},
		"down": {"work-dir"},
	} {
		var stderr bytes.Buffer
		if code := cmdLocal(t.Context(), []string{verb, "-h"}, io.Discard, &stderr); code != 0 {
			t.Fatalf("edp local %s -h: exit %d, stderr %q", verb, code, stderr.String())
		}
		var got []string
		for _, m := range flagLine.FindAllStringSubmatch(stderr.String(), -1) {
			got = append(got, m[1])
			if strings.Contains(m[2], " ") {
				t.Errorf("edp local %s -h: -%s takes an argument named %q, want one word", verb, m[1], m[2])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("edp local %s -h lists %v, want %v:\n%s", verb, got, want, stderr.String())
		}
	}
	// Without a verb, -h is run's.
	var stderr bytes.Buffer
	cmdLocal(t.Context(), []string{"-h"}, io.Discard, &stderr)
	if !strings.Contains(stderr.String(), "Usage of local run:") || !strings.Contains(stderr.String(), "-work-dir directory\n") {
		t.Errorf("edp local -h:\n%s", stderr.String())
	}
}

// An unknown verb is a usage error, before any flag is parsed.
func TestLocalUnknownVerb(t *testing.T) {
	var stderr bytes.Buffer
	if code := cmdLocal(t.Context(), []string{"sideways", "-work-dir", "x"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown verb "sideways"`) {
		t.Errorf("exit %d, stderr %q; want 2 and the unknown verb", code, stderr.String())
	}
}

// `make smoke` is the front door to edp smoke: an empty STACK is refused
// with a message naming it (it used to pass -local as the stack's name),
// before anything is built; a given one reaches edp as one argument.
func TestMakeSmokeRefusesAnEmptyStack(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	for _, stack := range []string{"", " "} {
		out, err := exec.CommandContext(t.Context(), "make", "-C", "../..", "-n", "smoke", "STACK="+stack, "LOCAL=1").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "STACK is empty") || strings.Contains(string(out), "bin/edp") {
			t.Errorf("make smoke STACK=%q: %v\n%s\nwant a refusal naming STACK, before any command", stack, err, out)
		}
	}
	out, err := exec.CommandContext(t.Context(), "make", "-C", "../..", "-n", "smoke", "STACK=EdpCron", "LOCAL=1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bin/edp smoke -stack='EdpCron' -local") {
		t.Errorf("make -n smoke STACK=EdpCron LOCAL=1: %v\n%s", err, out)
	}
}
