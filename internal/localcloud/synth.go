package localcloud

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// synthInputs are the parts of the repository a synthesized template
// depends on: the app, the stacks, shared code, the Lambda and consumer
// sources (assets) and cdk.json.
var synthInputs = []string{"cdk.go", "cdk.json", "go.mod", "go.sum", "stacks", "internal/names", "internal/settings", "lambdas", "consumer"}

// stampFile records what an assembly was synthesized from.
const stampFile = "edp-local.stamp"

// SynthOptions tune Synthesize.
type SynthOptions struct {
	// RepoRoot is the repository root (where cdk.json is). Default ".".
	RepoRoot string
	// OutDir is the cloud assembly directory. Default RepoRoot/cdk.out.
	OutDir string
	// Context overrides cdk.json's context (-c key=value).
	Context map[string]string
	Logger  *slog.Logger
	// Stderr receives the app's output; default discarded.
	Stderr io.Writer
}

// Synthesize builds the CDK app from the current sources and runs it into
// OutDir with cdk.json's context plus the overrides — what `cdk synth` does,
// without the CLI. It does nothing when OutDir already holds an assembly of
// the same sources and context.
func Synthesize(ctx context.Context, o SynthOptions) (string, error) {
	root := o.RepoRoot
	if root == "" {
		root = "."
	}
	out := o.OutDir
	if out == "" {
		out = filepath.Join(root, "cdk.out")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	appCtx, err := appContext(root, o.Context)
	if err != nil {
		return "", err
	}
	stamp, err := sourceStamp(root, appCtx)
	if err != nil {
		return "", err
	}
	if old, err := os.ReadFile(filepath.Join(out, stampFile)); err == nil && string(old) == stamp {
		log.Info("synth skipped: the assembly matches the sources", "dir", out)
		return out, nil
	}
	log.Info("synthesizing the stacks (first build of the CDK app takes 1-2 minutes)", "dir", out)
	// Absolute, since the build runs in root.
	bin, err := filepath.Abs(filepath.Join(root, "bin", "cdk-app"))
	if err != nil {
		return "", err
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the CDK app: %w\n%s", err, b)
	}
	if err := os.RemoveAll(out); err != nil {
		return "", err
	}
	app, err := appCommand(ctx, root, bin, out, appCtx)
	if err != nil {
		return "", err
	}
	var stderr strings.Builder
	app.Stdout, app.Stderr = io.Discard, &stderr
	if o.Stderr != nil {
		app.Stderr = io.MultiWriter(&stderr, o.Stderr)
	}
	if err := app.Run(); err != nil {
		return "", fmt.Errorf("synthesize: %w\n%s", err, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(out, stampFile), []byte(stamp), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// AppCommand returns the command that runs the built CDK app bin (from
// root) into outDir with cdk.json's context plus overrides, as Synthesize
// runs it; its output is left to the caller. The benchmarks time it.
func AppCommand(ctx context.Context, root, bin, outDir string, overrides map[string]string) (*exec.Cmd, error) {
	appCtx, err := appContext(root, overrides)
	if err != nil {
		return nil, err
	}
	return appCommand(ctx, root, bin, outDir, appCtx)
}

func appCommand(ctx context.Context, root, bin, outDir string, appCtx map[string]any) (*exec.Cmd, error) {
	ctxJSON, err := json.Marshal(appCtx)
	if err != nil {
		return nil, err
	}
	absOut, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	app := exec.CommandContext(ctx, bin)
	app.Dir = root
	app.Env = append(os.Environ(), "CDK_OUTDIR="+absOut, "CDK_CONTEXT_JSON="+string(ctxJSON),
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20", "CDK_DISABLE_CLI_TELEMETRY=true")
	return app, nil
}

// appContext is cdk.json's context with overrides applied.
func appContext(root string, overrides map[string]string) (map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		return nil, fmt.Errorf("read cdk.json: %w", err)
	}
	var doc struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse cdk.json: %w", err)
	}
	if doc.Context == nil {
		doc.Context = map[string]any{}
	}
	for k, v := range overrides {
		doc.Context[k] = v
	}
	return doc.Context, nil
}

// sourceStamp hashes the synth inputs and the context.
func sourceStamp(root string, appCtx map[string]any) (string, error) {
	h := sha256.New()
	inputs := slices.Clone(synthInputs)
	if dir, ok := appCtx["edp:jobDir"].(string); ok && dir != "" {
		// A command job's directory is an input too (job.json, the
		// image's files).
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(root, dir)
		}
		inputs = append(inputs, dir)
	}
	for _, in := range inputs {
		if !filepath.IsAbs(in) {
			in = filepath.Join(root, in)
		}
		var files []string
		err := filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "e2e") {
				return filepath.SkipDir
			}
			if !d.IsDir() && !strings.HasSuffix(p, "_test.go") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return "", fmt.Errorf("hash synth inputs: %w", err)
		}
		sort.Strings(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(f), len(b))
			h.Write(b)
		}
	}
	c, _ := json.Marshal(appCtx)
	h.Write(c)
	return hex.EncodeToString(h.Sum(nil)), nil
}
