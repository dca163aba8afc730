package docscheck

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edp-pipelines/edp/internal/settings"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

// checker knows what the repository has; TestMain fills it once.
var checker *Checker

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docscheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	checker, err = load(dir)
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "docscheck:", err)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// load builds edp and consumer into dir and reads what exists.
func load(dir string) (*Checker, error) {
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		return nil, err
	}
	c := &Checker{Root: root, Targets: MakeTargets(makefile), Programs: map[string]*Program{}, Keys: map[string]bool{}}
	for _, k := range settings.Keys() {
		c.Keys[k] = true
	}
	for name, pkg := range map[string]string{"edp": "./cmd/edp", "consumer": "./consumer"} {
		bin := filepath.Join(dir, name)
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
		p, err := LoadProgram(name, bin)
		if err != nil {
			return nil, err
		}
		c.Programs[name] = p
	}
	return c, nil
}

// pages are the checked pages: README.md, docs/**/*.md, examples/**/README.md.
func pages(t *testing.T) []string {
	t.Helper()
	out := []string{"README.md"}
	for _, dir := range []string{"docs", "examples"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(p, ".md") || dir == "examples" && d.Name() != "README.md" {
				return nil
			}
			rel, err := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestDocs is `make docs-check`: every page names only what exists.
func TestDocs(t *testing.T) {
	t.Parallel()
	for _, page := range pages(t) {
		findings, err := checker.CheckFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range findings {
			t.Error(f)
		}
	}
}

// TestWhatExists guards the discovery itself: if a help format changed and
// nothing were found, every page would pass.
func TestWhatExists(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"test", "local", "deploy-oneoff", "destroy-cron", "docs-check"} {
		if !slices.Contains(checker.Targets, target) {
			t.Errorf("Makefile target %q not found in %v", target, checker.Targets)
		}
	}
	for _, want := range []struct{ prog, verb, sub, flag string }{
		{"edp", "local", "", "arch"},
		{"edp", "local", "up", "detach"},
		{"edp", "local", "down", "work-dir"},
		{"edp", "smoke", "", "stack"},
		{"consumer", "drain", "", "queue-url"},
		{"consumer", "dlq", "list", "dlq-url"},
		{"consumer", "dlq", "redrive", "dlq-url"},
		{"consumer", "run", "", "config"},
	} {
		v := checker.Programs[want.prog].Verbs[want.verb]
		if v == nil {
			t.Errorf("%s %s: not found", want.prog, want.verb)
			continue
		}
		if want.sub != "" {
			v = v.Subs[want.sub]
			if v == nil {
				t.Errorf("%s %s %s: not found", want.prog, want.verb, want.sub)
				continue
			}
		}
		if !v.Flags[want.flag] {
			t.Errorf("%s %s %s: flag -%s not found in %v", want.prog, want.verb, want.sub, want.flag, v.Flags)
		}
	}
	if !checker.Keys["edp:maxTasks"] {
		t.Errorf("edp:maxTasks not among the keys")
	}
}

// TestFindsWhatIsMissing feeds the checker pages with one mistake each and
// expects exactly that mistake, at its line.
func TestFindsWhatIsMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, page string
		want       []string // findings, as "line: message"
	}{
		{"good page", "# Title\n\n```bash\nmake deploy-oneoff JOB=examples/jobs/shell-report\nbin/edp local up -detach -arch cron\n" +
			"consumer dlq redrive -dlq-url x\n```\n\n`make deploy-<arch>`, `edp local [run|up|down]`, `-c edp:maxTasks=3`, " +
			"[here](#title), [config](configuration.md#networking), [top](../README.md)\n", nil},
		{"make target", "Run `make deploy-everything`.\n", []string{`1: make target "deploy-everything" is not in the Makefile`}},
		{"make target in a block", "text\n\n```\nmake test\nmake lint-all    # lints\n```\n", []string{`5: make target "lint-all" is not in the Makefile`}},
		{"edp verb", "`edp deploy -stack x`\n", []string{`1: edp has no command "deploy"`}},
		{"edp flag", "```\nedp smoke -stack EdpCron -region eu-west-1\n```\n", []string{"2: edp smoke has no flag -region"}},
		{"synopsis", "`edp smoke -stack STACK [-local] [-config FILE] [-retries N]`\n", []string{"1: edp smoke has no flag -retries"}},
		{"sub-verb flag", "`edp local down -arch cron`\n", []string{"1: edp local down has no flag -arch"}},
		{"alternatives", "`consumer dlq list|redrive -dlq-url URL -hold 1m -queue-url U`\n", []string{"1: consumer dlq list|redrive has no flag -queue-url"}},
		{"sub-verb", "`consumer dlq purge`\n", []string{`1: consumer dlq has no subcommand "purge"`}},
		{"consumer flag", "a\n`consumer drain --queue-url u --max-messages 5`\n", []string{"2: consumer drain has no flag -max-messages"}},
		{"continued line", "```\nconsumer drain \\\n  -queue-url u \\\n  -nope 1\n```\n", []string{"2: consumer drain has no flag -nope"}},
		{"context key", "Set edp:maxTask to 3.\n", []string{`1: context key "edp:maxTask" is not read by internal/settings`}},
		{"link", "See [the tour](architecture-tour.md).\n", []string{`1: link "architecture-tour.md": docs/architecture-tour.md does not exist`}},
		{"image", "![diagram](img/none.png)\n", []string{`1: link "img/none.png": docs/img/none.png does not exist`}},
		{"anchor", "x\n\n[net](configuration.md#network)\n", []string{`3: link "configuration.md#network": docs/configuration.md has no heading with the anchor #network`}},
		{"own anchor", "# One\n\n## Two\n\n[two](#two) [three](#three)\n", []string{`5: link "#three": docs/synthetic.md has no heading with the anchor #three`}},
		{"not in code", "We make sure the edp local cloud runs: make it so, edp:maxTasks.\n", nil},
		{"prose in a block", "```\nfailure/   a job that ended because its consumer stops, make sure\n```\n", nil},
		{"command after a prompt", "```\n$ EDP_STACK=x edp launch\n```\n", []string{`2: edp has no command "launch"`}},
		{"package path", "`edp/consumer commands` and `./cmd/edp launch`\n", []string{`1: edp has no command "launch"`}},
		{"tag, not key", "tags `edp:started-by` and `edp:dispatch-id`\n", nil},
		{"placeholder", "`make local ARCH=<arch> JOB=<job directory>`\n", nil},
		{"code is not a link", "`[x](nowhere.md)`\n\n```\n[y](nowhere.md)\n```\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, f := range checker.Check("docs/synthetic.md", tt.page) {
				got = append(got, fmt.Sprintf("%d: %s", f.Line, f.Msg))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"EdpAlarmService and EdpAlarmDispatch":         "edpalarmservice-and-edpalarmdispatch",
		"What is real and what is emulated, per stack": "what-is-real-and-what-is-emulated-per-stack",
		"`consumer dlq` and the reasons":               "consumer-dlq-and-the-reasons",
		"Edges: who may call what":                     "edges-who-may-call-what",
		"[Stopping](x.md) what it started":             "stopping-what-it-started",
		"EDP_GRACE & the 120 s stop":                   "edp_grace--the-120-s-stop",
	} {
		if got := Slug(in); got != want {
			t.Errorf("Slug(%q) = %q, want %q", in, got, want)
		}
	}
	got := Anchors("# A\n\n```\n# not a heading\n```\n\n## A\n\n<a name=\"here\"></a>\n")
	if want := []string{"a", "a-1", "here"}; !slices.Equal(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
}

func TestMakeTargets(t *testing.T) {
	t.Parallel()
	mk := "SHELL := bash\nX ?= 1\n.PHONY: a\na: b ## help\n\techo a: b\nb c: STACK := x\n$(T)/x: y\npat-%: ; true\n"
	if got, want := MakeTargets([]byte(mk)), []string{"a", "b", "c", "pat-%"}; !slices.Equal(got, want) {
		t.Errorf("MakeTargets = %v, want %v", got, want)
	}
	c := &Checker{Targets: []string{"pat-%", "deploy-cron"}}
	for name, want := range map[string]bool{"pat-x": true, "pat-": false, "deploy-<arch>": true, "destroy-<arch>": false} {
		if got := c.hasTarget(name); got != want {
			t.Errorf("hasTarget(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestSubCandidates(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		verb, text string
		want       []string
	}{
		{"local", "deploy a stack into a local cloud and run it: local [run] | up | down\nUsage of local run:", []string{"down", "run", "up"}},
		{"dlq", "usage: consumer dlq list|redrive [flags]", []string{"list", "redrive"}},
		{"smoke", "usage: edp smoke -stack STACK [-local]", nil},
	} {
		if got := subCandidates(tt.verb, tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("subCandidates(%q) = %v, want %v", tt.verb, got, tt.want)
		}
	}
}
