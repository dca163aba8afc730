package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/consumer/command"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/internal/flagenv"
	"github.com/edp-pipelines/edp/internal/names"
)

// jobSettings choose the job every message runs: the built-in Iris trainer
// or the stack's command (docs/jobs.md). drain and serve read them from
// flags or the task definition's environment; run and validate from flags.
type jobSettings struct {
	kind            string
	command         string // JSON array
	validateCommand string // JSON array, optional
	maxConfigBytes  int64
	maxOutputFiles  int
	maxOutputBytes  int64
	killGrace       time.Duration
	workDir         string
	jobDir          string
}

func defaultJobSettings() jobSettings {
	return jobSettings{
		kind: names.JobIris, maxConfigBytes: job.DefaultMaxConfigBytes,
		maxOutputFiles: command.DefaultMaxFiles, maxOutputBytes: command.DefaultMaxBytes,
		killGrace: command.DefaultKillGrace,
	}
}

// bind adds the job flags to fs; usage decorates each flag's text.
func (j *jobSettings) bind(fs *flag.FlagSet, usage func(name, text string) string) {
	fs.StringVar(&j.kind, "job", j.kind, usage("job", "the job each config runs: "+names.JobIris+" (built in) or "+names.JobCommand))
	fs.StringVar(&j.command, "job-command", j.command, usage("job-command", `command job: the argv as a JSON array, e.g. ["python3", "./train.py"]`))
	fs.StringVar(&j.validateCommand, "job-validate-command", j.validateCommand, usage("job-validate-command", "command job: argv (JSON) that checks $EDP_CONFIG without running it; optional"))
	fs.Int64Var(&j.maxConfigBytes, "job-max-config-bytes", j.maxConfigBytes, usage("job-max-config-bytes", "command job: largest config, in bytes"))
	fs.IntVar(&j.maxOutputFiles, "job-max-output-files", j.maxOutputFiles, usage("job-max-output-files", "command job: most files one run publishes"))
	fs.Int64Var(&j.maxOutputBytes, "job-max-output-bytes", j.maxOutputBytes, usage("job-max-output-bytes", "command job: most bytes one run publishes"))
	fs.DurationVar(&j.killGrace, "job-kill-grace", j.killGrace, usage("job-kill-grace", "command job: from SIGTERM to SIGKILL when the job times out"))
	fs.StringVar(&j.workDir, "work-dir", j.workDir, usage("work-dir", "command job: where each run's work directory is made; default the system's temporary directory"))
	fs.StringVar(&j.jobDir, "job-dir", j.jobDir, usage("job-dir", `command job: the job's files ("./" arguments resolve here); default the working directory`))
}

// flagName is how an error names a job setting: "EDP_JOB_COMMAND /
// -job-command" where the environment may set it, "-job-command" where
// only flags do.
type flagName func(flag string) string

func envAndFlag(f string) string { return flagenv.Name(f) + " / -" + f }
func flagOnly(f string) string   { return "-" + f }

// validate reports every invalid job setting.
func (j jobSettings) validate(name flagName) []error {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name(f), fmt.Sprintf(format, args...)))
	}
	switch j.kind {
	case names.JobIris:
		if j.command != "" {
			bad("job-command", "set, but the job is %q: set %s to %q to run it", names.JobIris, name("job"), names.JobCommand)
		}
		return errs
	case names.JobCommand:
	default:
		bad("job", "%q: want %q or %q", j.kind, names.JobIris, names.JobCommand)
		return errs
	}
	if _, err := parseArgv(j.command); err != nil {
		bad("job-command", "%v", err)
	}
	if j.validateCommand != "" {
		if _, err := parseArgv(j.validateCommand); err != nil {
			bad("job-validate-command", "%v", err)
		}
	}
	if j.maxConfigBytes < 1 {
		bad("job-max-config-bytes", "%d: want 1 or more", j.maxConfigBytes)
	}
	if j.maxOutputFiles < 1 {
		bad("job-max-output-files", "%d: want 1 or more", j.maxOutputFiles)
	}
	if j.maxOutputBytes < 1 {
		bad("job-max-output-bytes", "%d: want 1 or more", j.maxOutputBytes)
	}
	if j.killGrace <= 0 {
		bad("job-kill-grace", "%v: want more than 0", j.killGrace)
	}
	return errs
}

// parseArgv decodes a command: a JSON array of strings, the first not
// empty.
func parseArgv(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New(`required for a command job: a JSON array such as ["python3", "./train.py"]`)
	}
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil {
		return nil, fmt.Errorf("%q: want a JSON array of strings such as [\"python3\", \"./train.py\"]: %v", s, err)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, fmt.Errorf("%q: the program (first element) is empty", s)
	}
	return argv, nil
}

// commandJob is the job.CommandJob the settings describe, nil for the
// built-in job. bucket is the stack's, "" locally.
func (j jobSettings) commandJob(bucket string) (*job.CommandJob, error) {
	if j.kind != names.JobCommand {
		return nil, nil
	}
	argv, err := parseArgv(j.command)
	if err != nil {
		return nil, err
	}
	cj := &job.CommandJob{
		Spec:   command.Spec{Argv: argv, JobDir: j.jobDir, KillGrace: j.killGrace},
		Limits: command.Limits{MaxFiles: j.maxOutputFiles, MaxBytes: j.maxOutputBytes},
		// Validate runs with the same job directory as the job.
		MaxConfigBytes: j.maxConfigBytes, WorkRoot: j.workDir, Bucket: bucket,
	}
	if j.validateCommand != "" {
		v, err := parseArgv(j.validateCommand)
		if err != nil {
			return nil, err
		}
		cj.Validate = &command.Spec{Argv: v, JobDir: j.jobDir, KillGrace: j.killGrace}
	}
	return cj, nil
}

// checkCommandJob checks before any message is taken what would fail
// every run: the program must exist and the work root must be writable.
// A task that cannot run its job exits at once and leaves the queue alone.
func checkCommandJob(cj *job.CommandJob) error {
	args, err := cj.Spec.Args()
	if err != nil {
		return err
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return fmt.Errorf("job command %s: %w", args[0], err)
	}
	root := cj.WorkRoot
	if root == "" {
		root = os.TempDir()
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("work directory (%s): %w", flagenv.Name("work-dir"), err)
	}
	f, err := os.CreateTemp(root, ".edp-write-check-*")
	if err != nil {
		return fmt.Errorf("work directory %s (%s) is not writable: %w", root, flagenv.Name("work-dir"), err)
	}
	f.Close()
	return os.Remove(filepath.Clean(f.Name()))
}
