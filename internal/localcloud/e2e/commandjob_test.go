package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// jobAssemblies are the syntheses of the stacks for command jobs, one per
// job directory, each made on first use (one synth at a time: they share
// the CDK app binary).
var jobAssemblies struct {
	sync.Mutex
	dirs map[string]string
}

// jobAssembly returns the stacks synthesized with the test context and
// edp:jobDir=jobDir (the directory's job.json supplies the job's keys).
func jobAssembly(t *testing.T, jobDir string) string {
	t.Helper()
	abs, err := filepath.Abs(jobDir)
	if err != nil {
		t.Fatal(err)
	}
	jobAssemblies.Lock()
	defer jobAssemblies.Unlock()
	if dir, ok := jobAssemblies.dirs[abs]; ok {
		return dir
	}
	ctx := map[string]string{"edp:jobDir": abs}
	for k, v := range testContext {
		ctx[k] = v
	}
	start := time.Now()
	out := filepath.Join(synthRoot, fmt.Sprintf("cdk.out.job%d", len(jobAssemblies.dirs)))
	dir, err := localcloud.Synthesize(t.Context(), localcloud.SynthOptions{RepoRoot: repoRoot, OutDir: out, Context: ctx})
	if err != nil {
		t.Fatalf("synthesize the stacks for job %s: %v", jobDir, err)
	}
	t.Logf("stacks synthesized for job %s in %s", jobDir, time.Since(start).Round(time.Millisecond))
	if jobAssemblies.dirs == nil {
		jobAssemblies.dirs = map[string]string{}
	}
	jobAssemblies.dirs[abs] = dir
	return dir
}

// deployJob deploys stackName running the command job of jobDir: the
// stacks synthesized for it, and the tasks running the job from a copy of
// jobDir (the copy it returns), which the job may write into.
func deployJob(t *testing.T, stackName, jobDir string, taskEnv map[string]string) (*stack, string) {
	t.Helper()
	asm := jobAssembly(t, jobDir)
	copyDir := filepath.Join(t.TempDir(), "job")
	if err := os.CopyFS(copyDir, os.DirFS(jobDir)); err != nil {
		t.Fatal(err)
	}
	s := deploy(t, stackName, func(o *localcloud.Options) {
		o.AssemblyDir, o.JobDir, o.TaskEnv = asm, copyDir, taskEnv
	})
	return s, copyDir
}

// contractJob is the test job of the contract (testdata/jobs/contract):
// its configs' "mode:" line says how it behaves.
const contractJob = "testdata/jobs/contract"

// TestCommandJob runs the job contract (docs/jobs.md) through EdpOneOff and
// EdpAlarmService with a command job (contractJob), one config per case,
// all uploaded at once:
//
//   - ok: the job's output files are published into the run's folder, and
//     the version's pointer (artifacts/ok/latest.json) names the run;
//   - permanent: exit 65 ends as a permanent failure record and a DLQ
//     entry, both with the status and the end of the job's output;
//   - flaky: exit 75 at the first attempt, success at the second: one
//     record, the succeeded one, with the same run id;
//   - hang: a job that ignores SIGTERM past its timeout (1 minute) is killed
//     with the child it started (which ignores SIGTERM too), and the retry
//     succeeds;
//   - stop: SIGTERM to the task's consumer mid-job reaches the job, the
//     message comes back and a later task finishes it; the job trained
//     once;
//   - symlink, many, big: an output with a symbolic link to /etc/passwd,
//     10,000 files, more bytes than the stack allows: refused, permanently,
//     with the reason;
//   - too-large: a config over the stack's limit (4096 bytes) fails
//     permanently, refused from its size.
func TestCommandJob(t *testing.T) {
	t.Parallel()
	for _, stackName := range []string{names.StackOneOff, names.StackAlarmService} {
		t.Run(stackName, func(t *testing.T) {
			t.Parallel()
			s, jobDir := deployJob(t, stackName, contractJob, nil)
			s.commandContract(t, jobDir)
		})
	}
}

// commandContract is TestCommandJob for one stack.
func (s *stack) commandContract(t *testing.T, jobDir string) {
	const prefix = "configs/contract/"
	modes := []string{"ok", "permanent", "flaky", "hang", "stop", "symlink", "many", "big"}
	var objs []object
	for _, m := range modes {
		objs = append(objs, object{prefix + m + ".yaml", []byte("mode: " + m + "\n")})
	}
	objs = append(objs, object{prefix + "too-large.yaml", []byte("mode: ok\n# " + strings.Repeat("x", 5000) + "\n")})
	ups := s.putAll(t, objs)
	up := map[string]upload{}
	runID := map[string]string{}
	for i, o := range objs {
		m := strings.TrimSuffix(strings.TrimPrefix(o.key, prefix), ".yaml")
		up[m] = ups[i]
		runID[m] = runrecord.RunID(runrecord.Source{Bucket: s.bucket, Key: o.key, VersionID: ups[i].versionID}, nil)
	}
	state := filepath.Join(jobDir, "state")

	// SIGTERM to the task (its consumer, the job's parent) while the stop
	// job runs, as ECS stops a container.
	var consumerPID int
	waitFor(t, "the stop job to run", 2*time.Minute, func() (bool, string, error) {
		b, err := os.ReadFile(filepath.Join(state, runID["stop"]+".consumer"))
		if err != nil {
			return false, "no pid file yet", nil
		}
		consumerPID, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil, string(b), nil
	})
	if err := syscall.Kill(consumerPID, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to the consumer %d: %v", consumerPID, err)
	}

	want := []expect{
		{up["ok"], "succeeded"}, {up["permanent"], "failed"}, {up["flaky"], "succeeded"}, {up["hang"], "succeeded"},
		{up["stop"], "succeeded"}, {up["symlink"], "failed"}, {up["many"], "failed"}, {up["big"], "failed"},
		{up["too-large"], "failed"},
	}
	recs := s.waitSettled(t, prefix, want, 5*time.Minute)
	rec := func(m string) runRecord {
		r, _ := recordOf(recs, up[m])
		if r.RunID != runID[m] {
			t.Errorf("%s: run id %s, want %s (from the upload's identity)", m, r.RunID, runID[m])
		}
		return r
	}
	ctx := t.Context()

	ok := rec("ok")
	folder := names.VersionFolder(names.ArtifactPrefix, "ok")
	runFolder := names.RunFolder(folder, ok.RunID)
	wantArtifacts := []string{runFolder + "run-id.txt", runFolder + "sub/file.txt", runFolder + runrecord.RunFile}
	if ok.Job != names.JobCommand || ok.ExitCode == nil || *ok.ExitCode != 0 || !slices.Equal(ok.Artifacts, wantArtifacts) ||
		!strings.Contains(ok.OutputTail, "mode ok") || ok.Version != "ok" {
		t.Errorf("ok: record %+v, want a command job's, exit 0, artifacts %v", ok, wantArtifacts)
	}
	if b, err := s.get(ctx, runFolder+"run-id.txt"); err != nil || strings.TrimSpace(string(b)) != ok.RunID {
		t.Errorf("ok: run-id.txt = %q (%v), want the run id the job got", b, err)
	}
	if b, err := s.get(ctx, names.PointerKey(folder)); err != nil || !strings.Contains(string(b), ok.RunID) {
		t.Errorf("ok: pointer %s = %s (%v), want it to name run %s", names.PointerKey(folder), b, err, ok.RunID)
	}

	perm := rec("permanent")
	if !perm.Permanent || perm.ExitCode == nil || *perm.ExitCode != 65 || !strings.Contains(perm.OutputTail, "rows 3-5 have no label") ||
		!strings.Contains(perm.Error, "EX_DATAERR") {
		t.Errorf("permanent: record %+v", perm)
	}

	for _, m := range []string{"flaky", "hang", "stop"} {
		if r := rec(m); r.Attempt != 2 || r.ExitCode == nil || *r.ExitCode != 0 {
			t.Errorf("%s: record attempt %d, exit %v: want success at the second delivery", m, r.Attempt, r.ExitCode)
		}
	}
	// hang: the child that ignored SIGTERM was killed with the job.
	if b, err := os.ReadFile(filepath.Join(state, runID["hang"]+".child")); err != nil {
		t.Errorf("hang: no child pid: %v", err)
	} else if pid, _ := strconv.Atoi(strings.TrimSpace(string(b))); pid <= 0 || processAlive(pid) {
		t.Errorf("hang: the job's child %d outlived the job's timeout", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// stop: the job got the SIGTERM, and trained once, at the second
	// delivery.
	if _, err := os.Stat(filepath.Join(state, runID["stop"]+".term")); err != nil {
		t.Errorf("stop: the job never got SIGTERM: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(state, runID["stop"]+".trained")); string(b) != "2\n" {
		t.Errorf("stop: trained at attempts %q, want once, at the second", b)
	}

	refusals := map[string]string{
		"symlink":   `"passwd" is a symbolic link (to "/etc/passwd")`,
		"many":      "more than 1000 files",
		"big":       "more than 2097152 bytes",
		"too-large": "limit is 4096",
		"permanent": "exit status 65 (EX_DATAERR)",
	}
	for m, reason := range refusals {
		if r := rec(m); !r.Permanent || !strings.Contains(r.Error, reason) {
			t.Errorf("%s: record error %q (permanent %v), want a permanent failure with %q", m, r.Error, r.Permanent, reason)
		}
	}
	if _, err := os.Stat(filepath.Join(state, runID["too-large"]+".trained")); err == nil {
		t.Error("too-large: the job ran on a config over the limit")
	}
	dead := map[string]string{}
	for _, d := range s.deadLetters(t, prefix) {
		dead[strings.TrimSuffix(strings.TrimPrefix(d.key, prefix), ".yaml")] = d.reason
	}
	for m, reason := range refusals {
		if !strings.Contains(dead[m], reason) {
			t.Errorf("%s: DLQ reason %q, want %q", m, dead[m], reason)
		}
		delete(dead, m)
	}
	if !strings.Contains(refusalReason(s, t, prefix, "permanent"), "rows 3-5 have no label") {
		t.Error("permanent: the DLQ reason lacks the end of the job's output")
	}
	for m := range dead {
		t.Errorf("%s is in the DLQ, want it to have succeeded", m)
	}
}

// refusalReason is the DLQ reason of the config named m under prefix.
func refusalReason(s *stack, t *testing.T, prefix, m string) string {
	for _, d := range s.deadLetters(t, prefix) {
		if d.key == prefix+m+".yaml" {
			return d.reason
		}
	}
	return ""
}

// processAlive reports whether pid runs (a zombie does not count),
// allowing a killed process a moment to go.
func processAlive(pid int) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return false
		}
		if time.Now().After(deadline) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pythonWithSklearn returns a directory whose python3 has scikit-learn and
// PyYAML, to put first on the tasks' PATH: the job's command says
// "python3", and on this machine the first python3 on PATH may lack them.
// No such interpreter fails the test: .ci/run installs Debian's
// python3-sklearn and python3-yaml.
func pythonWithSklearn(t *testing.T) string {
	t.Helper()
	var tried []string
	for _, cand := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(cand)
		if err != nil {
			tried = append(tried, cand+": "+err.Error())
			continue
		}
		if out, err := exec.Command(p, "-c", "import sklearn, yaml").CombinedOutput(); err != nil {
			tried = append(tried, fmt.Sprintf("%s: %s", p, strings.TrimSpace(string(out))))
			continue
		}
		dir := t.TempDir()
		if err := os.Symlink(p, filepath.Join(dir, "python3")); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	t.Fatalf("no python3 with scikit-learn and PyYAML (apt-get install python3-sklearn python3-yaml; .ci/run does): %s", strings.Join(tried, "; "))
	return ""
}

// TestPythonJob runs the reference design's Python pipeline
// (examples/jobs/sklearn-iris) end to end through EdpOneOff: its configs
// that succeed publish the model and metrics the script writes, and the
// one that cannot run ends as a permanent failure in the DLQ with the
// script's reason.
func TestPythonJob(t *testing.T) {
	t.Parallel()
	const example = "../../../examples/jobs/sklearn-iris"
	bin := pythonWithSklearn(t)
	s, jobDir := deployJob(t, names.StackOneOff, example, map[string]string{"PATH": bin + string(os.PathListSeparator) + os.Getenv("PATH")})
	const prefix = "configs/python/"
	files, err := filepath.Glob(filepath.Join(jobDir, names.JobConfigDir, "*.yaml"))
	if err != nil || len(files) < 3 {
		t.Fatalf("example configs %v (%v): want at least 3", files, err)
	}
	var objs []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{prefix + filepath.Base(f), b})
	}
	ups := s.putAll(t, objs)
	var want []expect
	for _, u := range ups {
		status := "succeeded"
		if strings.HasPrefix(filepath.Base(u.key), "bad") {
			status = "failed"
		}
		want = append(want, expect{u, status})
	}
	recs := s.waitSettled(t, prefix, want, 4*time.Minute)
	ctx := t.Context()
	for _, w := range want {
		r, _ := recordOf(recs, w.upload)
		if w.status == "failed" {
			if !r.Permanent || r.ExitCode == nil || (*r.ExitCode != 65 && *r.ExitCode != 78) || r.OutputTail == "" {
				t.Errorf("%s: record %+v, want a permanent failure with exit 65 or 78 and the script's output", w.key, r)
			}
			continue
		}
		folder := names.RunFolder(names.VersionFolder(names.ArtifactPrefix, r.Version), r.RunID)
		for _, f := range []string{"model.pkl", "metrics.json"} {
			if !slices.Contains(r.Artifacts, folder+f) {
				t.Errorf("%s: artifacts %v lack %s", w.key, r.Artifacts, f)
			}
		}
		b, err := s.get(ctx, folder+"metrics.json")
		if err != nil || !strings.Contains(string(b), "accuracy") {
			t.Errorf("%s: metrics.json = %s (%v), want the model's accuracy", w.key, b, err)
		}
	}
	dead := s.deadLetters(t, prefix)
	if len(dead) != 1 || !strings.HasPrefix(filepath.Base(dead[0].key), "bad") || !strings.Contains(dead[0].reason, "permanent") {
		t.Errorf("DLQ %+v, want the bad config with its reason", dead)
	}
	t.Logf("python job: %d configs, %d in the DLQ", len(ups), len(dead))
}
