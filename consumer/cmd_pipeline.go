package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/consumer/ml"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// cmdRun runs one pipeline job: local files by default, S3 for s3:// URLs.
func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgURL := fs.String("config", "", "pipeline config: a local file or s3://bucket/key (required)")
	outURL := fs.String("out", "out", "where artifacts and run records go: a local directory or s3://bucket/prefix")
	js := defaultJobSettings()
	js.bind(fs, func(_, text string) string { return text })
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consumer run --config FILE|s3://bucket/key [--out DIR|s3://bucket/prefix] [--job command --job-command JSON ...]")
		fmt.Fprintln(stderr, "\nRuns one training job and writes artifacts/<version>/runs/<run-id>/, the version's pointer")
		fmt.Fprintln(stderr, "artifacts/<version>/latest.json and the record runs/<run-id>.json under --out.")
		fs.PrintDefaults()
	}
	if code, ok := parsePipelineFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return pipelineUsage(fs, stderr, "run: unexpected argument %q", fs.Arg(0))
	}
	if *cfgURL == "" {
		return pipelineUsage(fs, stderr, "run: --config is required")
	}
	if errs := js.validate(flagOnly); len(errs) > 0 {
		return pipelineUsage(fs, stderr, "run: %v", errors.Join(errs...))
	}
	cj, err := js.commandJob("")
	if err != nil {
		return pipelineUsage(fs, stderr, "run: %v", err)
	}
	in, err := store.ParseURL(*cfgURL)
	if err == nil && in.IsS3() && (in.Key == "" || strings.HasSuffix(in.Key, "/")) {
		err = fmt.Errorf("%s names a folder, not a config object", *cfgURL)
	}
	if err != nil {
		return pipelineUsage(fs, stderr, "run: --config: %v", err)
	}
	out, err := store.ParseURL(*outURL)
	if err != nil {
		return pipelineUsage(fs, stderr, "run: --out: %v", err)
	}

	log := slog.New(slog.NewJSONHandler(stderr, nil)).With("command", "run", "version", version)
	stores := &pipelineStores{}
	runner := &job.Runner{Logger: log, Version: version, Command: cj}
	cfgStore, key, err := stores.object(ctx, in)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		return 1
	}
	runner.In = cfgStore
	src := job.Source{Bucket: in.Bucket, Key: key}
	// where renders an output key the way the user named --out.
	var where func(key string) string
	if out.IsS3() {
		s, err := stores.s3(ctx, out.Bucket)
		if err != nil {
			fmt.Fprintf(stderr, "run: %v\n", err)
			return 1
		}
		prefix := out.Key
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		runner.Out = s
		runner.ArtifactPrefix, runner.RecordPrefix = prefix+names.ArtifactPrefix, prefix+names.RecordPrefix
		where = func(key string) string { return "s3://" + out.Bucket + "/" + key }
	} else {
		runner.Out = store.NewDir(out.Path)
		where = func(key string) string {
			p := filepath.Join(out.Path, filepath.FromSlash(key))
			if strings.HasSuffix(key, "/") {
				p += string(filepath.Separator)
			}
			return p
		}
	}

	res, err := runner.Run(ctx, src)
	if err != nil {
		fmt.Fprintf(stderr, "run: %v\n", err)
		if res.RecordKey != "" {
			fmt.Fprintf(stderr, "failure record: %s\n", where(res.RecordKey))
		}
		return 1
	}
	if res.Duplicate {
		fmt.Fprintf(stdout, "already done: run %s succeeded before; nothing rewritten\n", res.RunID)
	}
	files := make([]string, 0, len(res.Artifacts))
	for _, k := range res.Artifacts {
		files = append(files, path.Base(k))
	}
	if cj != nil {
		fmt.Fprintf(stdout, "job        %s (version %s)\n", strings.Join(cj.Spec.Argv, " "), res.Version)
	} else {
		fmt.Fprintf(stdout, "model      %s (version %s)\n", res.ModelType, res.Version)
		fmt.Fprintf(stdout, "accuracy   %.4f on %d test rows (%d train)\n", res.Accuracy, res.TestSize, res.TrainSize)
	}
	fmt.Fprintf(stdout, "artifacts  %s (%s)\n", where(res.ArtifactPrefix), strings.Join(files, ", "))
	if res.SupersededBy != "" {
		fmt.Fprintf(stdout, "pointer    %s names run %s, of a later upload; this run is not published\n", where(res.PointerKey), res.SupersededBy)
	} else if res.PointerKey != "" {
		fmt.Fprintf(stdout, "pointer    %s\n", where(res.PointerKey))
	}
	fmt.Fprintf(stdout, "record     %s\n", where(res.RecordKey))
	return 0
}

// cmdValidate checks configs without running them: everything run checks
// before it trains, including the resolution against the dataset.
func cmdValidate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	js := defaultJobSettings()
	js.bind(fs, func(_, text string) string { return text })
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consumer validate [--job command --job-command JSON [--job-validate-command JSON]] FILE|s3://bucket/key|- ...")
		fmt.Fprintln(stderr, "\nChecks pipeline configs (YAML or JSON; - reads stdin). Exit 0 if all are valid, 1 if not.")
		fmt.Fprintln(stderr, "For a command job: the size limit, the name, YAML/JSON syntax and the job's own validate command.")
		fs.PrintDefaults()
	}
	if code, ok := parsePipelineFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return pipelineUsage(fs, stderr, "validate: name at least one config file")
	}
	if errs := js.validate(flagOnly); len(errs) > 0 {
		return pipelineUsage(fs, stderr, "validate: %v", errors.Join(errs...))
	}
	cj, err := js.commandJob("")
	if err != nil {
		return pipelineUsage(fs, stderr, "validate: %v", err)
	}
	stores := &pipelineStores{}
	if cj != nil {
		return validateCommandConfigs(ctx, cj, stores, fs.Args(), stdout, stderr)
	}
	code := 0
	for _, name := range fs.Args() {
		body, err := stores.readConfig(ctx, name, config.MaxBytes)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			code = 1
			continue
		}
		// The same parse and resolution against the dataset as run: what
		// run would refuse before training, validate refuses too.
		cfg, err := job.Check(body)
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid config:\n", name)
			var cerr *config.Error
			if errors.As(err, &cerr) {
				for _, p := range cerr.Problems {
					fmt.Fprintf(stderr, "  %s\n", p)
				}
			} else {
				fmt.Fprintf(stderr, "  %v\n", err)
			}
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%s, version %s)\n", name, cfg.Model.Type, cfg.Run.Version)
	}
	return code
}

// validateCommandConfigs is validate for a command job (CommandJob.Check).
func validateCommandConfigs(ctx context.Context, cj *job.CommandJob, stores *pipelineStores, args []string, stdout, stderr io.Writer) int {
	code := 0
	for _, name := range args {
		key := name
		if name == "-" {
			key = "stdin.yaml"
		}
		body, err := stores.readConfig(ctx, name, cj.MaxConfigBytes)
		if err == nil {
			err = cj.Check(ctx, key, body)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid config: %v\n", name, err)
			code = 1
			continue
		}
		version, _ := job.CommandVersion(key)
		fmt.Fprintf(stdout, "%s: ok (command job, version %s)\n", name, version)
	}
	return code
}

// cmdPredict classifies rows with a model.json written by run.
func cmdPredict(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	modelURL := fs.String("model", "", "model.json written by run, or a version folder (its current run's model): a local path or s3:// URL (required)")
	csvURL := fs.String("csv", "", "CSV file with a header row naming the model's features (other columns are ignored), or a version folder (its current run's dataset.csv)")
	proba := fs.Bool("proba", false, "also print each class probability")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: consumer predict --model model.json|FOLDER [--csv FILE|FOLDER] [--proba] [ROW ...]")
		fmt.Fprintln(stderr, "\nEach ROW is the feature values in the model's order, comma separated (e.g. 5.1,3.5,1.4,0.2);")
		fmt.Fprintln(stderr, "put -- before rows that start with a minus sign. Prints one class name per row.")
		fmt.Fprintln(stderr, "A FOLDER is a version folder (out/artifacts/rf-v2, s3://bucket/artifacts/rf-v2/): its latest.json")
		fmt.Fprintln(stderr, "names the run whose files are used, the same run for --model and --csv.")
		fs.PrintDefaults()
	}
	if code, ok := parsePipelineFlags(fs, args); !ok {
		return code
	}
	if *modelURL == "" {
		return pipelineUsage(fs, stderr, "predict: --model is required")
	}
	if fs.NArg() == 0 && *csvURL == "" {
		return pipelineUsage(fs, stderr, "predict: give rows as arguments or --csv FILE")
	}
	artifacts := &artifactReader{stores: &pipelineStores{}}
	body, err := artifacts.read(ctx, *modelURL, runrecord.ModelFile)
	if err != nil {
		fmt.Fprintf(stderr, "predict: %v\n", err)
		return 1
	}
	m, err := ml.Load(body)
	if err != nil {
		fmt.Fprintf(stderr, "predict: %s: %v\n", *modelURL, err)
		return 1
	}
	var rows [][]float64
	for i, a := range fs.Args() {
		row, err := parsePredictRow(strings.Split(a, ","), len(m.FeatureNames))
		if err != nil {
			return pipelineUsage(fs, stderr, "predict: row %d %q: %v (want %s)", i+1, a, err, strings.Join(m.FeatureNames, ","))
		}
		rows = append(rows, row)
	}
	if *csvURL != "" {
		data, err := artifacts.read(ctx, *csvURL, runrecord.DatasetFile)
		if err != nil {
			fmt.Fprintf(stderr, "predict: %v\n", err)
			return 1
		}
		more, err := predictCSVRows(data, m.FeatureNames)
		if err != nil {
			fmt.Fprintf(stderr, "predict: %s: %v\n", *csvURL, err)
			return 1
		}
		rows = append(rows, more...)
	}
	p := make([]float64, len(m.ClassNames))
	for _, row := range rows {
		c := m.Predict(row)
		if !*proba {
			fmt.Fprintln(stdout, m.ClassNames[c])
			continue
		}
		m.Proba(row, p)
		parts := make([]string, len(p))
		for i, v := range p {
			parts[i] = fmt.Sprintf("%s=%.3f", m.ClassNames[i], v)
		}
		fmt.Fprintf(stdout, "%s\t%s\n", m.ClassNames[c], strings.Join(parts, " "))
	}
	return 0
}

// parsePipelineFlags parses args; ok is false when the caller must return
// code (0 after -h, 2 on a flag error, which fs has already reported).
func parsePipelineFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// pipelineUsage reports a usage error and returns exit code 2.
func pipelineUsage(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, format+"\n\n", args...)
	fs.Usage()
	return 2
}

func parsePredictRow(fields []string, n int) ([]float64, error) {
	if len(fields) != n {
		return nil, fmt.Errorf("has %d values, the model takes %d", len(fields), n)
	}
	row := make([]float64, n)
	for i, f := range fields {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v != v || v > 1e308 || v < -1e308 {
			return nil, fmt.Errorf("value %d %q is not a finite number", i+1, f)
		}
		row[i] = v
	}
	return row, nil
}

// predictCSVRows reads the model's feature columns, found by header name,
// from a CSV (such as an artifact folder's dataset.csv).
func predictCSVRows(data []byte, features []string) ([][]float64, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	col := make([]int, len(features))
	for i, f := range features {
		col[i] = -1
		for j, h := range header {
			if strings.TrimSpace(h) == f {
				col[i] = j
			}
		}
		if col[i] < 0 {
			return nil, fmt.Errorf("header lacks the model feature %q (has %s)", f, strings.Join(header, ","))
		}
	}
	var rows [][]float64
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return rows, nil
		}
		if err != nil {
			return nil, err
		}
		fields := make([]string, len(features))
		for i, c := range col {
			if c >= len(rec) {
				return nil, fmt.Errorf("line %d: missing column %s", line, features[i])
			}
			fields[i] = rec[c]
		}
		row, err := parsePredictRow(fields, len(features))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
}

// pipelineStores builds S3 stores on first use, so local runs never load
// AWS configuration.
type pipelineStores struct {
	client store.S3API
}

func (p *pipelineStores) s3(ctx context.Context, bucket string) (*store.S3, error) {
	if p.client == nil {
		cfg, err := loadAWS(ctx)
		if err != nil {
			return nil, err
		}
		p.client = newS3(cfg)
	}
	return store.NewS3(p.client, bucket), nil
}

// object returns the store holding the object loc names and its key there:
// a local file is the key of its base name in a Dir rooted at its directory.
func (p *pipelineStores) object(ctx context.Context, loc store.Location) (store.Store, string, error) {
	if !loc.IsS3() {
		file := filepath.Clean(loc.Path)
		return store.NewDir(filepath.Dir(file)), filepath.Base(file), nil
	}
	s, err := p.s3(ctx, loc.Bucket)
	if err != nil {
		return nil, "", err
	}
	return s, loc.Key, nil
}

// read returns the object a local path or s3:// URL names, under the
// store's size limit.
func (p *pipelineStores) read(ctx context.Context, url string) ([]byte, error) {
	st, key, err := p.locate(ctx, url)
	if err != nil {
		return nil, err
	}
	obj, err := st.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", url, err)
	}
	return obj.Body, nil
}

// readConfig returns the config a local path, s3:// URL or "-" (stdin)
// names, reading it as a run does (store.GetConfig): a config larger than
// limit is refused from its size, or after limit+1 bytes, never read
// whole.
func (p *pipelineStores) readConfig(ctx context.Context, url string, limit int64) ([]byte, error) {
	if url == "-" {
		// One byte more than the limit tells the checks it is over.
		return io.ReadAll(io.LimitReader(os.Stdin, limit+1))
	}
	st, key, err := p.locate(ctx, url)
	if err != nil {
		return nil, err
	}
	obj, err := store.GetConfig(ctx, st, key, "", limit)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return obj.Body, nil
}

// locate is object for a local path or s3:// URL.
func (p *pipelineStores) locate(ctx context.Context, url string) (store.Store, string, error) {
	loc, err := store.ParseURL(url)
	if err != nil {
		return nil, "", err
	}
	return p.object(ctx, loc)
}

// artifactReader reads predict's inputs: a file as it is, or the file of a
// version folder's current run, found through the folder's pointer. Each
// folder's pointer is read once, so every file read from one folder comes
// from the same run, even while another run publishes.
type artifactReader struct {
	stores *pipelineStores
	// runs maps a folder URL to its current run's files.
	runs map[string]runFolder
}

// runFolder is where a version folder's current run keeps its files.
type runFolder struct {
	st     store.Store
	prefix string
}

// read returns the object url names or, when url names a version folder
// (a local directory, an s3:// URL ending in "/", or the folder's
// latest.json), the file name of the run the folder's pointer names.
func (a *artifactReader) read(ctx context.Context, url, name string) ([]byte, error) {
	folder, ok, err := a.versionFolder(ctx, url)
	if err != nil {
		return nil, err
	}
	if !ok {
		return a.stores.read(ctx, url)
	}
	obj, err := folder.st.Get(ctx, folder.prefix+name)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", name, url, err)
	}
	return obj.Body, nil
}

// versionFolder resolves url to the folder of its current run, if url
// names a version folder.
func (a *artifactReader) versionFolder(ctx context.Context, url string) (runFolder, bool, error) {
	loc, err := store.ParseURL(url)
	if err != nil {
		return runFolder{}, false, err
	}
	// id names the folder however url spells it, so that --model and --csv
	// naming the same folder share its pointer.
	var id, prefix, dir string
	switch {
	case loc.IsS3() && (loc.Key == "" || strings.HasSuffix(loc.Key, "/") || path.Base(loc.Key) == names.PointerFile):
		prefix = strings.TrimSuffix(loc.Key, names.PointerFile)
		id = "s3://" + loc.Bucket + "/" + prefix
	case loc.IsS3():
		return runFolder{}, false, nil
	case filepath.Base(loc.Path) == names.PointerFile:
		dir = filepath.Dir(loc.Path)
	default:
		if fi, err := os.Stat(loc.Path); err != nil || !fi.IsDir() {
			return runFolder{}, false, nil // a file, or an error reading it says what is wrong
		}
		dir = loc.Path
	}
	if !loc.IsS3() {
		if id, err = filepath.Abs(dir); err != nil {
			return runFolder{}, false, err
		}
	}
	if f, ok := a.runs[id]; ok {
		return f, true, nil
	}
	var st store.Store
	if loc.IsS3() {
		if st, err = a.stores.s3(ctx, loc.Bucket); err != nil {
			return runFolder{}, false, err
		}
	} else {
		st = store.NewDir(dir)
	}
	f := runFolder{st: st}
	p, err := job.ReadPointer(ctx, st, prefix)
	switch {
	case err == nil:
		f.prefix = p.FileKey(prefix, "")
	case errors.Is(err, store.ErrNotFound):
		// A folder written before run folders and pointers existed holds
		// one run's files itself, run.json last.
		if _, oldErr := st.Get(ctx, prefix+runrecord.RunFile); oldErr != nil {
			return runFolder{}, false, fmt.Errorf("%s: no run of this version is published yet (no %s): %w", url, names.PointerFile, err)
		}
		f.prefix = prefix
	default:
		return runFolder{}, false, fmt.Errorf("%s: %w", url, err)
	}
	if a.runs == nil {
		a.runs = map[string]runFolder{}
	}
	a.runs[id] = f
	return f, true, nil
}
