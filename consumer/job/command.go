package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/consumer/command"
	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/worker"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/textlimit"

	"gopkg.in/yaml.v3"
)

// DefaultMaxConfigBytes is the largest config a command job is given,
// unless CommandJob.MaxConfigBytes says otherwise: 1 MiB.
const DefaultMaxConfigBytes = 1 << 20

// reasonTailBytes is how much of the job's output tail a permanent
// failure's error (and so the dead-letter reason) carries; the record keeps
// the whole tail.
const reasonTailBytes = 600

// CommandJob is the stack's command job (docs/jobs.md): each run hands the
// config to Spec's command in a fresh work directory and publishes what it
// leaves in the output directory.
type CommandJob struct {
	// Spec is the command (required).
	Spec command.Spec
	// Limits bound what a run may publish; defaults command.Limits'.
	Limits command.Limits
	// MaxConfigBytes bounds the config; default DefaultMaxConfigBytes.
	MaxConfigBytes int64
	// WorkRoot is where each run's work directory is made. Default
	// os.TempDir().
	WorkRoot string
	// Env is the environment the job's own variables are added to. Default
	// this process's, without the consumer's EDP_* settings and GOMEMLIMIT
	// (the consumer's, not the job's).
	Env []string
	// Bucket is the stack's bucket, the job's EDP_BUCKET ("" locally).
	Bucket string
	// Validate, when set, is the job's own check of a config (Check).
	Validate *command.Spec
}

func (c *CommandJob) maxConfigBytes() int64 {
	if c.MaxConfigBytes <= 0 {
		return DefaultMaxConfigBytes
	}
	return c.MaxConfigBytes
}

// Environment variables a command job gets (docs/jobs.md).
const (
	EnvConfig        = "EDP_CONFIG"         // the config file, in the work directory
	EnvOutputDir     = "EDP_OUTPUT_DIR"     // an empty directory: what the job leaves there is published
	EnvRunID         = "EDP_RUN_ID"         // the run id
	EnvConfigBucket  = "EDP_CONFIG_BUCKET"  // where the config was uploaded
	EnvConfigKey     = "EDP_CONFIG_KEY"     // its key
	EnvConfigVersion = "EDP_CONFIG_VERSION" // its version id ("" without versioning)
	EnvAttempt       = "EDP_ATTEMPT"        // which delivery this is, from 1
	EnvDeadline      = "EDP_DEADLINE"       // RFC 3339 UTC: when the job gets SIGTERM for its timeout
	EnvRunVersion    = "EDP_VERSION"        // the version folder the outputs are published to
)

// CommandVersion is the version folder of a command job's config key: its
// file name without the extension ("configs/nightly.yaml" → "nightly"). A
// name that cannot be a folder (config.IsVersion) is an error.
func CommandVersion(key string) (string, error) {
	base := path.Base(key)
	v := strings.TrimSuffix(base, path.Ext(base))
	if !config.IsVersion(v) {
		return "", fmt.Errorf("config name %q cannot name a version folder: want 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit", base)
	}
	return v, nil
}

// executeCommand is a command job's run: the config into a fresh work
// directory, the command, then the checked outputs published as the
// built-in job's artifacts are.
func (j *run) executeCommand(ctx context.Context, body []byte) (Result, error) {
	cj := j.s.command
	version, err := CommandVersion(j.src.Key)
	if err != nil {
		return Result{}, permanent(err)
	}
	j.rec.Version = version
	j.log = j.log.With("artifact_version", version)
	sw := newStopwatch(j.s.now, j.rec.TimingsMS)

	root := cj.WorkRoot
	if root == "" {
		root = os.TempDir()
	}
	wd, err := os.MkdirTemp(root, "run-"+j.rec.RunID[:12]+"-")
	if err != nil {
		return Result{}, fmt.Errorf("make work directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(wd); err != nil {
			j.log.Warn("could not remove the work directory", "dir", wd, "error", err.Error())
		}
	}()
	cfgPath := filepath.Join(wd, configFile(j.src.Key, nil).name)
	outDir, tmpDir := filepath.Join(wd, "out"), filepath.Join(wd, "tmp")
	for _, d := range []string{outDir, tmpDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Result{}, fmt.Errorf("make work directory: %w", err)
		}
	}
	if err := os.WriteFile(cfgPath, body, 0o644); err != nil {
		return Result{}, fmt.Errorf("write config file: %w", err)
	}

	inv := command.Invocation{
		Dir: wd, Log: j.log, Stop: worker.StopSignal(ctx),
		Env: cj.environment(j.jobVars(ctx, cfgPath, outDir, tmpDir, version)),
	}
	j.log.InfoContext(ctx, "job starting", "command", cj.Spec.Argv, "attempt", j.src.Attempt)
	o, err := cj.Spec.Run(ctx, inv)
	if err != nil {
		// The program is missing or cannot run: every config would fail
		// the same way until the stack is fixed.
		return Result{}, permanent(fmt.Errorf("job did not start: %w", err))
	}
	sw.lap("job")
	j.rec.OutputTail, j.rec.Signal = o.Tail, o.Signal
	if o.Signal == "" {
		code := o.ExitCode
		j.rec.ExitCode = &code
	}
	how := command.Describe(o, jobTimeout(ctx, j.start))
	j.log.InfoContext(ctx, "job ended", "status", how, "job_ms", o.Duration.Milliseconds())
	switch command.Classify(o) {
	case command.Permanent:
		return Result{}, permanent(fmt.Errorf("job failed: %s; output: %s", how, reasonTail(o.Tail)))
	case command.Stopped:
		return Result{}, fmt.Errorf("job %s: %w", how, failure.ErrStopped)
	case command.Transient:
		return Result{}, fmt.Errorf("job failed: %s (transient: retried); output: %s", how, reasonTail(o.Tail))
	}
	outs, err := command.Collect(outDir, cj.Limits)
	if oe := (*command.OutputError)(nil); errors.As(err, &oe) {
		return Result{}, permanent(err)
	}
	if err != nil {
		return Result{}, err
	}
	sw.lap("collect")
	files := make([]file, len(outs))
	for i := range outs {
		files[i] = file{name: outs[i].Name, contentType: contentType(outs[i].Name), disk: &outs[i]}
	}
	pub, err := j.publishFiles(ctx, version, files, sw)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		RunID: j.rec.RunID, Version: version, Status: j.rec.Status, ArtifactPrefix: pub.prefix,
		PointerKey: pub.pointerKey, SupersededBy: pub.supersededBy, RecordKey: j.recordKey(), Artifacts: j.rec.Artifacts,
	}
	j.log.InfoContext(ctx, "run succeeded", "files", len(outs), "duration_ms", j.rec.DurationMS,
		"artifact_prefix", pub.prefix, "pointer_key", pub.pointerKey, "superseded_by", pub.supersededBy)
	return res, nil
}

// jobVars are the job's own environment variables.
func (j *run) jobVars(ctx context.Context, cfgPath, outDir, tmpDir, version string) map[string]string {
	vars := map[string]string{
		EnvConfig: cfgPath, EnvOutputDir: outDir, EnvRunID: j.rec.RunID, EnvRunVersion: version,
		EnvConfigBucket: j.src.Bucket, EnvConfigKey: j.src.Key, EnvConfigVersion: j.src.VersionID,
		EnvAttempt: strconv.Itoa(max(j.src.Attempt, 1)),
		"TMPDIR":   tmpDir,
	}
	if dl, ok := ctx.Deadline(); ok {
		vars[EnvDeadline] = dl.UTC().Format(time.RFC3339)
	}
	vars[names.EnvJobDir] = j.s.command.jobDir()
	if b := j.s.command.Bucket; b != "" {
		vars[names.EnvBucket] = b
	}
	return vars
}

func (c *CommandJob) jobDir() string {
	dir, _ := c.Spec.Dir()
	return dir
}

// environment is the job's whole environment: the base (Env, or this
// process's without the consumer's own settings) and vars, which win.
func (c *CommandJob) environment(vars map[string]string) []string {
	base := c.Env
	if base == nil {
		base = slices.DeleteFunc(os.Environ(), func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return strings.HasPrefix(k, "EDP_") || k == "GOMEMLIMIT"
		})
	}
	env := slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, set := vars[k]
		return set
	})
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// jobTimeout is how long the run had, for messages: from its start to
// ctx's deadline, rounded to the second.
func jobTimeout(ctx context.Context, start time.Time) string {
	dl, ok := ctx.Deadline()
	if !ok {
		return "its deadline"
	}
	return dl.Sub(start).Round(time.Second).String()
}

// reasonTail is the end of the output for an error message: its last
// reasonTailBytes, on one line.
func reasonTail(tail string) string {
	t := strings.TrimSpace(textlimit.Tail(tail, reasonTailBytes))
	if t == "" {
		return "(none)"
	}
	return strings.ReplaceAll(t, "\n", " | ")
}

// contentType is an output file's content type, by its extension.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// validateTimeout bounds the job's validate command.
const validateTimeout = 2 * time.Minute

// EnvValidate is set to "1" for the validate command.
const EnvValidate = "EDP_VALIDATE"

// Check checks a config named name (its key or file name) as the stack
// would take it, without running the job: the size limit, a config
// suffix, a name that can be a version folder, well-formed YAML or JSON
// by the suffix, and, when the job has one, its validate command (exit 0:
// valid), which gets the config as EDP_CONFIG in a scratch directory and
// EDP_VALIDATE=1. The error says what is wrong; output of a refusing
// validate command is in it.
func (c *CommandJob) Check(ctx context.Context, name string, body []byte) error {
	if n := int64(len(body)); n > c.maxConfigBytes() {
		return fmt.Errorf("config is %d bytes, limit is %d", n, c.maxConfigBytes())
	}
	ext := strings.ToLower(path.Ext(name))
	if !slices.Contains(names.ConfigSuffixes, ext) {
		return fmt.Errorf("%q does not end in %s: an upload of it would not run", path.Base(name), strings.Join(names.ConfigSuffixes, ", "))
	}
	if _, err := CommandVersion(name); err != nil {
		return err
	}
	if err := wellFormed(ext, body); err != nil {
		return err
	}
	if c.Validate == nil {
		return nil
	}
	wd, err := os.MkdirTemp(c.WorkRoot, "validate-")
	if err != nil {
		return fmt.Errorf("make work directory: %w", err)
	}
	defer os.RemoveAll(wd)
	cfgPath := filepath.Join(wd, configFile(name, nil).name)
	if err := os.WriteFile(cfgPath, body, 0o644); err != nil {
		return fmt.Errorf("write config file: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, validateTimeout)
	defer cancel()
	o, err := c.Validate.Run(ctx, command.Invocation{Dir: wd, Env: c.environment(map[string]string{
		EnvConfig: cfgPath, EnvConfigKey: name, EnvValidate: "1", "TMPDIR": wd, names.EnvJobDir: c.jobDir(),
	})})
	if err != nil {
		return fmt.Errorf("validate command did not start: %w", err)
	}
	if command.Classify(o) != command.Succeeded {
		return fmt.Errorf("refused by the job's validate command (%s): %s", command.Describe(o, validateTimeout.String()), reasonTail(o.Tail))
	}
	return nil
}

// wellFormed checks body's syntax by its suffix: JSON for .json, YAML for
// the others.
func wellFormed(ext string, body []byte) error {
	if ext == ".json" {
		if !json.Valid(body) {
			var v any
			return fmt.Errorf("not valid JSON: %v", json.Unmarshal(body, &v))
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not valid YAML: %v", err)
		}
	}
}
