package stacks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// parseDockerfile finds the first FROM, and so what stays before edp's
// build stage, through the syntax that could hide or fake one.
func TestParseDockerfileCutsAtTheFirstFrom(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, file                 string
		directives, prelude, first string // first: the body's first line
	}{
		{"plain", "FROM alpine\nRUN true\n", "", "", "FROM alpine"},
		{"directives and global ARGs", "# syntax=docker/dockerfile:1\n#escape=\\\n# check=skip=all\nARG A=1\n# a comment\nARG B\nfrom alpine:${A}\n",
			"# syntax=docker/dockerfile:1\n#escape=\\\n# check=skip=all\n", "ARG A=1\n# a comment\nARG B\n", "from alpine:${A}"},
		// A directive after a comment or blank line is a comment.
		{"late directive", "# hello\n# syntax=x\nFROM alpine\n", "", "# hello\n# syntax=x\n", "FROM alpine"},
		{"blank line ends directives", "# syntax=x\n\n# escape=`\nFROM alpine\n", "# syntax=x\n", "\n# escape=`\n", "FROM alpine"},
		{"continued ARG", "ARG A=1 \\\n  B=2\nFROM alpine\n", "", "ARG A=1 \\\n  B=2\n", "FROM alpine"},
		// Line ends become "\n" (Docker reads either).
		{"CRLF", "# syntax=x\r\nARG A\r\nFROM alpine\r\n", "# syntax=x\n", "ARG A\n", "FROM alpine"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := parseDockerfile([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(d.body, "\n")
			if d.directives != tc.directives || d.prelude != tc.prelude || first != tc.first {
				t.Errorf("got directives %q prelude %q first %q, want %q %q %q", d.directives, d.prelude, first, tc.directives, tc.prelude, tc.first)
			}
			if d.directives+d.prelude+d.body != strings.ReplaceAll(tc.file, "\r\n", "\n") {
				t.Errorf("the parts do not add up to the file: %q", d.directives+d.prelude+d.body)
			}
		})
	}
}

// Lines that look like instructions inside a continuation, a comment or a
// here-document are not; the escape directive changes the continuation.
func TestParseDockerfileFollowsContinuationsAndHeredocs(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		file   string
		stages int
	}{
		"heredoc":          {"FROM alpine AS a\nRUN <<EOF\nFROM nothing\nEOF\nFROM alpine\n", 2},
		"two heredocs":     {"FROM alpine\nRUN <<A cat - <<B\nFROM a\nA\nFROM b\nB\n", 1},
		"quoted heredoc":   {"FROM alpine\nCOPY <<\"EOT\" /x\nFROM nothing\nEOT\n", 1},
		"dash heredoc":     {"FROM alpine\nRUN <<-EOF\n\tFROM nothing\n\tEOF\n", 1},
		"continuation":     {"FROM alpine\nRUN echo \\\n  FROM nothing\n", 1},
		"comment in cont.": {"FROM alpine\nRUN echo \\\n# FROM nothing\n  done\nFROM alpine\n", 2},
		"backtick escape":  {"# escape=`\nFROM alpine\nRUN echo `\n  FROM nothing\n", 1},
		"lower case":       {"from alpine as a\nfrom a\n", 2},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, err := parseDockerfile([]byte(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if d.stages != tc.stages {
				t.Errorf("%d stages, want %d", d.stages, tc.stages)
			}
		})
	}
}

func TestParseDockerfileRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file, want string }{
		{"empty", "", "no FROM instruction"},
		{"comments only", "# syntax=docker/dockerfile:1\n# nothing\n", "no FROM instruction"},
		{"no FROM", "ARG A\nRUN true\n", "RUN before the first FROM"},
		{"instruction before FROM", "ENV A=1\nFROM alpine\n", "ENV before the first FROM"},
		{"FROM without image", "FROM --platform=linux/arm64\n", "FROM names no image"},
		{"FROM with junk", "FROM alpine junk\n", "want FROM [--platform=...] image [AS name]"},
		{"edp's stage name", "FROM alpine AS EDP-consumer-build\nFROM alpine\n", `stage name "edp-consumer-build" is edp's own`},
		{"open continuation", "FROM alpine\nRUN echo \\\n", "ends inside a continued instruction"},
		{"open heredoc", "FROM alpine\nRUN <<EOF\necho\n", `here-document "EOF" is never closed`},
		{"bad escape", "# escape=!\nFROM alpine\n", "the escape character must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseDockerfile([]byte(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// The appended lines never continue: a Dockerfile whose last line has no
// newline still ends its final stage before edp's COPY.
func TestJobDockerfileAppendsAfterALastLineWithoutNewline(t *testing.T) {
	t.Parallel()
	got, err := jobDockerfile([]byte("FROM alpine\nUSER 1000"), "1.26")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "\nUSER 1000\n# --- added by edp to the final stage") {
		t.Errorf("got:\n%s", got)
	}
	if strings.Count(string(got), `\`+"\n") != 0 {
		t.Errorf("edp's lines are continued:\n%s", got)
	}
}

func writeJob(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A job directory edp cannot extend fails synth, naming edp:jobDir and the
// file; the Iris job has nothing to check.
func TestValidateJobNamesTheKey(t *testing.T) {
	t.Parallel()
	s := settings.Defaults()
	if err := ValidateJob(s); err != nil {
		t.Fatalf("iris: %v", err)
	}
	s.Job = names.JobCommand
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"no FROM":        {map[string]string{"Dockerfile": "# syntax=docker/dockerfile:1\nARG X\n"}, "no FROM instruction"},
		"edp's folder":   {map[string]string{"Dockerfile": "FROM alpine\n", ".edp/x": "x"}, "holds .edp, a name edp reserves"},
		"no Dockerfile":  {map[string]string{"x": "x"}, "Dockerfile"},
		"open heredoc":   {map[string]string{"Dockerfile": "FROM alpine\nRUN <<EOF\n"}, "never closed"},
		"stage conflict": {map[string]string{"Dockerfile": "FROM golang AS edp-consumer-build\n"}, "edp's own"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := s
			s.JobDir = writeJob(t, tc.files)
			err := ValidateJob(s)
			if !errors.Is(err, settings.ErrInvalid) || !strings.Contains(err.Error(), `context key "edp:jobDir"`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want a settings.ErrInvalid naming edp:jobDir and saying %q", err, tc.want)
			}
		})
	}
}

// Staging is deterministic: the same inputs give the same files, wherever
// they are staged and whatever was there before.
func TestStageJobContextIsDeterministic(t *testing.T) {
	t.Parallel()
	job := writeJob(t, map[string]string{"Dockerfile": "FROM alpine\n", "run.sh": "#!/bin/sh\n", "a/b/c.txt": "c", ".venv/x": "x", "a/node_modules/y": "y"})
	if err := os.Chmod(filepath.Join(job, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	one, two := filepath.Join(t.TempDir(), "one"), filepath.Join(t.TempDir(), "two")
	if err := os.MkdirAll(filepath.Join(two, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{one, two} {
		if err := stageJobContext(dir, job, ".."); err != nil {
			t.Fatal(err)
		}
	}
	a, b := snapshot(t, one), snapshot(t, two)
	if len(a) != len(b) {
		t.Fatalf("%d entries vs %d", len(a), len(b))
	}
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s differs", k)
		}
	}
	for _, f := range []string{"run.sh", "a/b/c.txt", ".edp/Dockerfile", ".edp/src/consumer/main.go"} {
		if _, ok := a[f]; !ok {
			t.Errorf("staged context lacks %s", f)
		}
	}
	for _, f := range []string{".venv/x", "a/node_modules/y", "stale/"} {
		if _, ok := a[f]; ok {
			t.Errorf("staged context holds %s", f)
		}
	}
	if a["run.sh"][:4] != "-rwx" {
		t.Errorf("run.sh mode %s, want it executable", a["run.sh"])
	}
}

// A job directory that holds the app's output directory is not copied
// into itself.
func TestStageJobContextSkipsTheOutputDirectory(t *testing.T) {
	t.Parallel()
	job := writeJob(t, map[string]string{"Dockerfile": "FROM alpine\n", "cdk.out/old.json": "{}"})
	staged := filepath.Join(job, "cdk.out", "edp-job-X")
	if err := stageJobContext(staged, job, ".."); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(staged, "cdk.out")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the output directory was copied into the staged context: %v", err)
	}
}

// snapshot maps each path under dir to its mode and content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if fi.IsDir() {
			out[rel+"/"] = fi.Mode().String()
			return nil
		}
		raw, err := os.ReadFile(path)
		out[rel] = fi.Mode().String() + " " + string(raw)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
