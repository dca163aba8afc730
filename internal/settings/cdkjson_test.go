package settings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FromCDKJSON layers a synth's sources as cdk.go sees them: the overrides
// over cdk.json's context over the job file.
func TestFromCDKJSONLayersOverridesContextAndJobFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	job := filepath.Join(dir, "job")
	if err := os.MkdirAll(job, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(job, "Dockerfile"), "FROM scratch\n")
	write(filepath.Join(job, "job.json"), `{"edp:job": "command", "edp:jobCommand": ["sh", "run.sh"], "edp:jobConcurrency": 4, "edp:jobTimeoutMinutes": 7}`)
	cdk := filepath.Join(dir, "cdk.json")
	write(cdk, `{"app": "x", "context": {"edp:maxTasks": 10, "edp:scaleOutThreshold": 12, "edp:jobConcurrency": 2}}`)

	s, err := FromCDKJSON(cdk, map[string]string{"edp:maxTasks": "3", "edp:jobDir": job})
	if err != nil {
		t.Fatal(err)
	}
	if s.MaxTasks != 3 {
		t.Errorf("MaxTasks %d: the override (3) must win over cdk.json (10)", s.MaxTasks)
	}
	if s.ScaleOutThreshold != 12 {
		t.Errorf("ScaleOutThreshold %d: want cdk.json's 12", s.ScaleOutThreshold)
	}
	if s.JobConcurrency != 2 {
		t.Errorf("JobConcurrency %d: cdk.json's context (2) must win over the job file (4)", s.JobConcurrency)
	}
	if s.JobTimeoutMinutes != 7 {
		t.Errorf("JobTimeoutMinutes %d: want the job file's 7", s.JobTimeoutMinutes)
	}

	write(cdk, `{"context": {"edp:maxTasks": 0}}`)
	if _, err := FromCDKJSON(cdk, nil); err == nil || !strings.Contains(err.Error(), KeyMaxTasks) {
		t.Errorf("an invalid value: error %v, want one naming %s", err, KeyMaxTasks)
	}
	write(cdk, `{"context": `)
	if _, err := FromCDKJSON(cdk, nil); err == nil || !strings.Contains(err.Error(), cdk) {
		t.Errorf("broken JSON: error %v, want one naming the file", err)
	}
	if _, err := FromCDKJSON(filepath.Join(dir, "none.json"), nil); err == nil {
		t.Error("a missing file: no error")
	}
}
