// Package jobs_test runs the example command jobs directly, with no AWS and
// no consumer: for each config it makes a work directory and the environment
// a command job is given (EDP_CONFIG, EDP_OUTPUT_DIR, ...), runs the command
// of the job's job.json as written, and checks the exit status and the
// outputs against the command-job contract.
package jobs_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/syncbuf"
)

// Exit statuses of the contract.
const (
	exitOK        = 0
	exitDataErr   = 65 // EX_DATAERR: permanent
	exitConfig    = 78 // EX_CONFIG: permanent
	exitUnavail   = 69 // EX_UNAVAILABLE: transient
	exitTempFail  = 75 // EX_TEMPFAIL: transient
	exitSIGTERM   = 128 + int(syscall.SIGTERM)
	runTimeout    = 60 * time.Second
	testBucket    = "edp-test-bucket"
	testConfigVer = "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
)

// job is an example job directory and its job.json.
type job struct {
	dir      string   // absolute
	command  []string // edp:jobCommand
	validate []string // edp:jobValidateCommand, or nil
}

func loadJob(t *testing.T, name string) job {
	t.Helper()
	dir, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, names.JobContextFile))
	if err != nil {
		t.Fatal(err)
	}
	var ctx struct {
		Job      string   `json:"edp:job"`
		Command  []string `json:"edp:jobCommand"`
		Validate []string `json:"edp:jobValidateCommand"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&ctx); err != nil {
		t.Fatalf("%s/%s: %v", name, names.JobContextFile, err)
	}
	if ctx.Job != names.JobCommand || len(ctx.Command) == 0 {
		t.Fatalf("%s/%s: want edp:job %q and a non-empty edp:jobCommand, got %+v", name, names.JobContextFile, names.JobCommand, ctx)
	}
	return job{dir: dir, command: ctx.Command, validate: ctx.Validate}
}

// configs lists the job's example configs, by file name.
func (j job) configs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(j.dir, names.JobConfigDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	if len(out) == 0 {
		t.Fatalf("%s: no configs", j.dir)
	}
	return out
}

// result is what one run of a job's command did.
type result struct {
	code           int // -1: killed by a signal
	stdout, stderr string
	outDir         string // EDP_OUTPUT_DIR, "" for a validate run
	elapsed        time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %v\n--- stdout\n%s--- stderr\n%s", r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
}

// runOpts are the knobs of one run.
type runOpts struct {
	validate bool     // run edp:jobValidateCommand: no EDP_OUTPUT_DIR
	attempt  int      // EDP_ATTEMPT; 0 means 1
	pathDirs []string // put first on PATH
	env      []string // extra KEY=VALUE
	// whileRunning, if set, is called once the job has started, with its
	// process and its growing stdout.
	whileRunning func(p *os.Process, stdout *syncbuf.Buffer)
}

// run runs the job's command (or validate command) on the config at
// configPath as the consumer would: a fresh work directory as cwd, the config
// copied into it as config.<ext>, the documented environment, and each
// argument starting with "./" resolved against the job directory.
func (j job) run(t *testing.T, configPath, configKey string, o runOpts) result {
	t.Helper()
	work := t.TempDir()
	ext := filepath.Ext(configPath)
	if ext != ".yaml" && ext != ".yml" && ext != ".json" {
		t.Fatalf("config %s must end .yaml, .yml or .json", configPath)
	}
	data, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(work, "config"+ext)
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(work, "tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	attempt := o.attempt
	if attempt == 0 {
		attempt = 1
	}
	path := strings.Join(append(slices.Clone(o.pathDirs), os.Getenv("PATH")), string(os.PathListSeparator))
	env := []string{
		"PATH=" + path,
		"HOME=" + work,
		"LANG=C.UTF-8",
		"TMPDIR=" + tmp,
		"EDP_CONFIG=" + config,
		"EDP_RUN_ID=test-" + strings.TrimSuffix(filepath.Base(configPath), ext),
		"EDP_CONFIG_BUCKET=" + testBucket,
		"EDP_CONFIG_KEY=" + configKey,
		"EDP_CONFIG_VERSION=" + testConfigVer,
		"EDP_ATTEMPT=" + strconv.Itoa(attempt),
		"EDP_DEADLINE=" + time.Now().UTC().Add(runTimeout).Format(time.RFC3339),
		"EDP_JOB_DIR=" + j.dir,
		"EDP_BUCKET=" + testBucket,
	}
	argv := j.command
	var outDir string
	if o.validate {
		if len(j.validate) == 0 {
			t.Fatalf("%s: no edp:jobValidateCommand", j.dir)
		}
		argv = j.validate
	} else {
		outDir = filepath.Join(work, "output")
		if err := os.Mkdir(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
		env = append(env, "EDP_OUTPUT_DIR="+outDir)
	}
	env = append(env, o.env...)

	args := make([]string, len(argv))
	for i, a := range argv {
		if rest, ok := strings.CutPrefix(a, "./"); ok {
			a = filepath.Join(j.dir, rest)
		}
		args[i] = a
	}
	// exec.Command would look the program up on this process's PATH; the
	// job's PATH is the one it runs with.
	prog, err := lookPath(args[0], path)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Dir = work
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	var stdout syncbuf.Buffer
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if o.whileRunning != nil {
		o.whileRunning(cmd.Process, &stdout)
	}
	err = cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String(), outDir: outDir, elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	default:
		t.Fatalf("%v: %v\n%s", args, err, r)
	}
	if ctx.Err() != nil {
		t.Fatalf("%v: still running after %v\n%s", args, runTimeout, r)
	}
	return r
}

// lookPath finds name on path (a PATH value), as the job's exec would.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found on PATH %s", name, path)
}

// outputs lists the files a run left in EDP_OUTPUT_DIR, as the consumer would
// publish them: regular files only, by slash-separated relative path.
func outputs(t *testing.T, r result) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(r.outDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == r.outDir || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%v): a run that leaves one fails", p, d.Type())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(r.outDir, p)
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func fileNames(files map[string][]byte) []string {
	var out []string
	for name := range files {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// wantExit fails the test unless the run exited with one of codes.
func wantExit(t *testing.T, what string, r result, codes ...int) {
	t.Helper()
	if !slices.Contains(codes, r.code) {
		t.Fatalf("%s: want exit %v, got %s", what, codes, r)
	}
}

// wantPermanent checks a permanent failure: status 65 or 78 and a reason on
// stderr that mentions want.
func wantPermanent(t *testing.T, what string, r result, want string) {
	t.Helper()
	wantExit(t, what, r, exitDataErr, exitConfig)
	last := lastLine(r.stderr)
	if !strings.Contains(last, want) {
		t.Errorf("%s: the last line on stderr should give the reason (mentioning %q), got %q", what, want, last)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestJobDirectories checks the layout every example job directory must have.
func TestJobDirectories(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		n++
		t.Run(e.Name(), func(t *testing.T) {
			j := loadJob(t, e.Name())
			for _, f := range []string{"Dockerfile", "README.md"} {
				if _, err := os.Stat(filepath.Join(j.dir, f)); err != nil {
					t.Error(err)
				}
			}
			dockerfile, _ := os.ReadFile(filepath.Join(j.dir, "Dockerfile"))
			if !hasInstruction(dockerfile, "WORKDIR") {
				t.Errorf("Dockerfile: no WORKDIR: it must be where the job's files are copied (EDP_JOB_DIR in the image)")
			}
			if hasInstruction(dockerfile, "ENTRYPOINT") || hasInstruction(dockerfile, "CMD") {
				t.Errorf("Dockerfile: edp sets the entrypoint itself; drop ENTRYPOINT and CMD")
			}
			for _, argv := range [][]string{j.command, j.validate} {
				for _, a := range argv {
					if rest, ok := strings.CutPrefix(a, "./"); ok {
						if _, err := os.Stat(filepath.Join(j.dir, rest)); err != nil {
							t.Errorf("%s in a command: %v", a, err)
						}
						if !bytes.Contains(dockerfile, []byte(rest)) {
							t.Errorf("Dockerfile does not copy %s, which a command uses", rest)
						}
					}
				}
			}
			for _, c := range j.configs(t) {
				if ext := filepath.Ext(c); ext != ".yaml" && ext != ".yml" && ext != ".json" {
					t.Errorf("configs/%s: a config must end .yaml, .yml or .json", c)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no job directories")
	}
}

func hasInstruction(dockerfile []byte, instr string) bool {
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && strings.EqualFold(f[0], instr) {
			return true
		}
	}
	return false
}

// --- shell-report -------------------------------------------------------------

type shellSummary struct {
	RunID         string `json:"run_id"`
	ConfigBucket  string `json:"config_bucket"`
	ConfigKey     string `json:"config_key"`
	ConfigVersion string `json:"config_version"`
	Attempt       int    `json:"attempt"`
	Title         string `json:"title"`
	Lines         int    `json:"lines"`
	LineCount     int    `json:"line_count"`
	CreatedAt     string `json:"created_at"`
}

func TestShellReport(t *testing.T) {
	t.Parallel()
	j := loadJob(t, "shell-report")
	type want struct {
		title     string
		lines     int
		failUntil int // the first attempt that succeeds; 0: the first
		bad       string
	}
	wants := map[string]want{
		"daily.yaml":  {title: "Daily report", lines: 10},
		"weekly.yaml": {title: "Weekly report: week 49", lines: 25},
		"flaky.yaml":  {title: "Flaky report", lines: 5, failUntil: 2},
		"bad.yaml":    {bad: "title"},
	}
	for _, name := range j.configs(t) {
		w, ok := wants[name]
		if !ok {
			t.Errorf("configs/%s: the test has no expectation for it: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(j.dir, names.JobConfigDir, name)
			key := "configs/shell-report/" + name

			v := j.run(t, path, key, runOpts{validate: true})
			if w.bad != "" {
				wantPermanent(t, "validate", v, w.bad)
				r := j.run(t, path, key, runOpts{})
				wantPermanent(t, "run", r, w.bad)
				return
			}
			wantExit(t, "validate", v, exitOK)

			attempt := 1
			for ; attempt < w.failUntil; attempt++ {
				r := j.run(t, path, key, runOpts{attempt: attempt})
				wantExit(t, fmt.Sprintf("attempt %d", attempt), r, exitTempFail)
				if files := outputs(t, r); len(files) != 0 {
					t.Errorf("attempt %d failed but left outputs %v", attempt, fileNames(files))
				}
			}
			r := j.run(t, path, key, runOpts{attempt: attempt})
			wantExit(t, fmt.Sprintf("attempt %d", attempt), r, exitOK)
			files := outputs(t, r)
			if got := fileNames(files); !slices.Equal(got, []string{"report.txt", "summary.json"}) {
				t.Fatalf("outputs: want report.txt and summary.json, got %v", got)
			}
			var s shellSummary
			dec := json.NewDecoder(bytes.NewReader(files["summary.json"]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&s); err != nil {
				t.Fatalf("summary.json: %v\n%s", err, files["summary.json"])
			}
			report := string(files["report.txt"])
			wantS := shellSummary{
				RunID:         "test-" + strings.TrimSuffix(name, ".yaml"),
				ConfigBucket:  testBucket,
				ConfigKey:     key,
				ConfigVersion: testConfigVer,
				Attempt:       attempt,
				Title:         w.title,
				Lines:         w.lines,
				LineCount:     strings.Count(report, "\n"),
				CreatedAt:     s.CreatedAt,
			}
			if s != wantS {
				t.Errorf("summary.json:\n got %+v\nwant %+v", s, wantS)
			}
			if _, err := time.Parse(time.RFC3339, s.CreatedAt); err != nil {
				t.Errorf("summary.json created_at: %v", err)
			}
			if first, _, _ := strings.Cut(report, "\n"); first != w.title {
				t.Errorf("report.txt: first line %q, want the title %q", first, w.title)
			}
			if last := fmt.Sprintf("line %d of %d", w.lines, w.lines); !strings.Contains(report, last) {
				t.Errorf("report.txt has no %q:\n%s", last, report)
			}
		})
	}
}

// TestShellReportRefuses checks the shell job's config checks beyond bad.yaml.
func TestShellReportRefuses(t *testing.T) {
	t.Parallel()
	j := loadJob(t, "shell-report")
	for _, tc := range []struct{ name, config, want string }{
		{"zero lines", "title: x\nlines: 0\n", "lines"},
		{"lines not a number", "title: x\nlines: ten\n", "lines"},
		{"unknown key", "title: x\nlines: 1\ncolour: red\n", "unknown key"},
		{"nested", "title: x\nlines:\n  count: 1\n", "indented"},
		{"unterminated quote", "title: \"x\nlines: 1\n", "quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			wantPermanent(t, "validate", j.run(t, p, "configs/c.yaml", runOpts{validate: true}), tc.want)
		})
	}
}

// TestShellReportSIGTERM stops a slow run and wants exit 143 at once.
func TestShellReportSIGTERM(t *testing.T) {
	t.Parallel()
	j := loadJob(t, "shell-report")
	p := filepath.Join(t.TempDir(), "slow.yaml")
	if err := os.WriteFile(p, []byte("title: Slow\nlines: 3\nsleep_seconds: 60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var sent time.Time
	r := j.run(t, p, "configs/slow.yaml", runOpts{whileRunning: func(proc *os.Process, stdout *syncbuf.Buffer) {
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(stdout.String(), "working for") {
			if time.Now().After(deadline) {
				t.Errorf("the job never said it was working: %q", stdout.String())
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		sent = time.Now()
		if err := proc.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
	}})
	wantExit(t, "SIGTERM", r, exitSIGTERM)
	if d := time.Since(sent); d > 3*time.Second {
		t.Errorf("the job took %v to stop after SIGTERM", d)
	}
	if files := outputs(t, r); len(files) != 0 {
		t.Errorf("a stopped run left outputs %v", fileNames(files))
	}
}

// --- sklearn-iris -------------------------------------------------------------

// pythonWithSklearn returns a directory holding a python3 link to the first
// interpreter that imports scikit-learn and PyYAML, and that interpreter.
func pythonWithSklearn(t *testing.T) (binDir, interp string) {
	t.Helper()
	var tried []string
	candidates := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	for _, c := range candidates {
		if slices.Contains(tried, c) {
			continue
		}
		out, err := exec.Command(c, "-c", "import sklearn, yaml").CombinedOutput()
		if err == nil {
			interp = c
			break
		}
		tried = append(tried, fmt.Sprintf("%s (%s)", c, lastLine(strings.TrimSpace(string(out)+" "+err.Error()))))
	}
	if interp == "" {
		t.Fatalf("no python3 imports scikit-learn and PyYAML; tried %s. Install them: apt-get install python3-sklearn python3-yaml (.ci/run does)",
			strings.Join(tried, ", "))
	}
	binDir = t.TempDir()
	if err := os.Symlink(interp, filepath.Join(binDir, "python3")); err != nil {
		t.Fatal(err)
	}
	return binDir, interp
}

type irisMetrics struct {
	ModelType string  `json:"model_type"`
	Estimator string  `json:"estimator"`
	Version   string  `json:"version"`
	Accuracy  float64 `json:"accuracy"`
	TrainSize int     `json:"train_size"`
	TestSize  int     `json:"test_size"`
	NFeatures int     `json:"n_features"`
	NClasses  int     `json:"n_classes"`
	RunID     string  `json:"run_id"`
	ConfigKey string  `json:"config_key"`
	Attempt   int     `json:"attempt"`
}

func TestSklearnIris(t *testing.T) {
	t.Parallel()
	j := loadJob(t, "sklearn-iris")
	bin, interp := pythonWithSklearn(t)
	type want struct {
		modelType, estimator, version string
		testSize                      int
		bad                           string
	}
	wants := map[string]want{
		"tree.yaml":      {modelType: "decision_tree", estimator: "DecisionTreeClassifier", version: "tree-v1", testSize: 45},
		"forest.yaml":    {modelType: "random_forest", estimator: "RandomForestClassifier", version: "forest-v1", testSize: 38},
		"bad-model.yaml": {bad: "model.type"},
	}
	opts := runOpts{pathDirs: []string{bin}}
	for _, name := range j.configs(t) {
		w, ok := wants[name]
		if !ok {
			t.Errorf("configs/%s: the test has no expectation for it: add one", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(j.dir, names.JobConfigDir, name)
			key := "configs/sklearn-iris/" + name
			vo := opts
			vo.validate = true
			v := j.run(t, path, key, vo)
			r := j.run(t, path, key, opts)
			if w.bad != "" {
				wantPermanent(t, "validate", v, w.bad)
				wantPermanent(t, "run", r, w.bad)
				return
			}
			wantExit(t, "validate", v, exitOK)
			wantExit(t, "run", r, exitOK)
			files := outputs(t, r)
			if got := fileNames(files); !slices.Equal(got, []string{"config.resolved.json", "metrics.json", "model.pkl"}) {
				t.Fatalf("outputs: want config.resolved.json, metrics.json and model.pkl, got %v", got)
			}
			var m irisMetrics
			if err := json.Unmarshal(files["metrics.json"], &m); err != nil {
				t.Fatalf("metrics.json: %v", err)
			}
			wantM := irisMetrics{
				ModelType: w.modelType, Estimator: w.estimator, Version: w.version, Accuracy: m.Accuracy,
				TrainSize: 150 - w.testSize, TestSize: w.testSize, NFeatures: 4, NClasses: 3,
				RunID: "test-" + strings.TrimSuffix(name, ".yaml"), ConfigKey: key, Attempt: 1,
			}
			if m != wantM {
				t.Errorf("metrics.json:\n got %+v\nwant %+v", m, wantM)
			}
			if m.Accuracy < 0.8 || m.Accuracy > 1 {
				t.Errorf("metrics.json: accuracy %v, want 0.8 to 1 on Iris", m.Accuracy)
			}
			var resolved struct {
				RunConfig struct {
					Version string `json:"version"`
				} `json:"run_config"`
				Model struct {
					Type string `json:"type"`
				} `json:"model"`
			}
			if err := json.Unmarshal(files["config.resolved.json"], &resolved); err != nil {
				t.Fatalf("config.resolved.json: %v", err)
			}
			if resolved.RunConfig.Version != w.version || resolved.Model.Type != w.modelType {
				t.Errorf("config.resolved.json: %s", files["config.resolved.json"])
			}
			// The model loads and predicts: the first Iris row is a setosa (0).
			load := "import pickle, sys; m = pickle.load(open(sys.argv[1], 'rb')); print(m.predict([[5.1, 3.5, 1.4, 0.2]])[0])"
			out, err := exec.Command(interp, "-c", load, filepath.Join(r.outDir, "model.pkl")).CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "0" {
				t.Errorf("model.pkl: predicting the first Iris row: %v: %s", err, out)
			}
		})
	}

	for _, tc := range []struct{ name, config, want string }{
		{"yaml syntax", "model: {type: [\n", "YAML syntax error"},
		{"test_size out of range", "model: {type: decision_tree}\ntrain_test_split: {test_size: 1.5}\n", "test_size"},
		{"unknown param", "model: {type: decision_tree, params: {n_estimators: 3}}\n", "n_estimators"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.config), 0o644); err != nil {
				t.Fatal(err)
			}
			vo := opts
			vo.validate = true
			wantPermanent(t, "validate", j.run(t, p, "configs/c.yaml", vo), tc.want)
			wantPermanent(t, "run", j.run(t, p, "configs/c.yaml", opts), tc.want)
		})
	}

	// Without scikit-learn the job is unavailable (69, retried), and says
	// how to install it.
	t.Run("no scikit-learn", func(t *testing.T) {
		t.Parallel()
		fake := t.TempDir()
		if err := os.Mkdir(filepath.Join(fake, "sklearn"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(fake, "sklearn", "__init__.py"), []byte("raise ImportError('hidden by the test')\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := opts
		o.env = []string{"PYTHONPATH=" + fake}
		r := j.run(t, filepath.Join(j.dir, names.JobConfigDir, "tree.yaml"), "configs/tree.yaml", o)
		wantExit(t, "run", r, exitUnavail)
		if last := lastLine(r.stderr); !strings.Contains(last, "python3-sklearn") || !strings.Contains(last, "requirements.txt") {
			t.Errorf("the reason should say how to install scikit-learn, got %q", last)
		}
	})
}
