package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// `cdk synth|diff|deploy` runs cdk.json's "app" command through a shell. It
// must build the current sources: on a fresh clone (no binary yet) and after
// an edit (no stale binary). This runs the command exactly as the CLI does,
// in a copy of the repository, before and after editing a stack.
func TestAppCommandSynthesizesTheCurrentSources(t *testing.T) {
	raw, err := os.ReadFile("cdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		App string `json:"app"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.App == "" {
		t.Fatalf("cdk.json has no app command (err %v)", err)
	}

	repo := copyTrackedFiles(t)
	synth := func() string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "cdk.out")
		cmd := exec.Command("sh", "-c", cfg.App)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("app command %q in a fresh copy: %v\n%s", cfg.App, err, b)
		}
		tpl, err := os.ReadFile(filepath.Join(out, "EdpCron.template.json"))
		if err != nil {
			t.Fatalf("app command wrote no EdpCron template: %v", err)
		}
		return string(tpl)
	}

	const before = "edp: drain the pipeline queue on a schedule"
	if tpl := synth(); !strings.Contains(tpl, before) {
		t.Fatalf("fresh copy: template lacks %q", before)
	}

	const marker = "edited after the first synth"
	file := filepath.Join(repo, "stacks", "cron.go")
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), before, before+" ("+marker+")", 1)
	if edited == string(src) {
		t.Fatalf("stacks/cron.go no longer holds %q: update this test", before)
	}
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if tpl := synth(); !strings.Contains(tpl, marker) {
		t.Fatalf("after editing stacks/cron.go the app command synthesized the previous build (no %q in the template)", marker)
	}
}

// copyTrackedFiles copies the files git tracks (and uncommitted edits of
// them) into a new directory: what a fresh clone would hold.
func copyTrackedFiles(t *testing.T) string {
	t.Helper()
	list, err := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, name := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		b, err := os.ReadFile(name)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
