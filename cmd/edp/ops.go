package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/consumer/command"
	"github.com/edp-pipelines/edp/consumer/config"
	"github.com/edp-pipelines/edp/consumer/dlq"
	"github.com/edp-pipelines/edp/consumer/event"
	"github.com/edp-pipelines/edp/consumer/job"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
	"github.com/edp-pipelines/edp/internal/textlimit"
)

// Exit codes of the operator verbs.
const (
	exitFailed  = 1 // the run failed, or the verb could not do its work
	exitUsage   = 2
	exitTimeout = 3 // watch gave up waiting
)

// --- submit -------------------------------------------------------------

func cmdSubmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("submit", "submit [-stack S] [-local] [-key KEY] [-wait] [-timeout D] [-job-dir DIR] CONFIG", stderr)
	key := v.fs.String("key", "", "upload as this key under configs/ (default: a unique key; a command job's config keeps its name, its version folder)")
	wait := v.fs.Bool("wait", false, "follow the run like `edp watch` until it ends")
	timeout := v.fs.Duration("timeout", 30*time.Minute, "with -wait: give up after this long")
	jobDir := v.fs.String("job-dir", "", "a command job's `directory`: also run the job's own validate command on the config")
	if code, ok := v.parse(args, stderr, 1); !ok {
		return code
	}
	file := v.args[0]
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	js := jobSettingsOf(t.stack)
	body, err := readLimited(file, js.maxConfigBytes())
	if err == nil {
		err = js.check(ctx, file, body, *jobDir)
	}
	if err != nil {
		fmt.Fprintf(stderr, "edp submit: %s is refused by the stack's checks (nothing was uploaded):\n  %s\n", file, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return exitFailed
	}
	k := *key
	if k == "" {
		k = submitKey(file, js.command != nil, time.Now())
	}
	if !names.IsConfigKey(k) {
		return v.fail(stderr, fmt.Errorf("-key %q: want a key under %s ending in %s", k, names.ConfigPrefix, strings.Join(names.ConfigSuffixes, ", ")))
	}
	at := time.Now()
	out, err := t.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(t.bucket()), Key: aws.String(k), Body: strings.NewReader(string(body))})
	if err != nil {
		return v.fail(stderr, fmt.Errorf("upload s3://%s/%s: %w", t.bucket(), k, err))
	}
	version := runrecord.OwnVersion(aws.ToString(out.VersionId))
	fmt.Fprintf(stdout, "submitted s3://%s/%s (version %s) to %s in %s\n", t.bucket(), k, orDash(version), t.stack.Name, t.where)
	if version == "" {
		fmt.Fprintln(stdout, "the bucket keeps no versions: the run id is known once the run starts (edp status)")
		return 0
	}
	runID := runrecord.RunID(runrecord.Source{Bucket: t.bucket(), Key: k, VersionID: version}, nil)
	fmt.Fprintf(stdout, "run %s\n", runID)
	if !*wait {
		flags := targetArgs(v.target)
		fmt.Fprintf(stdout, "follow it: edp watch%s %s · its log: edp logs%s %s · the result: edp status%s %s\n", flags, runID, flags, runID, flags, runID)
		return 0
	}
	return watchRun(ctx, t, runID, at, *timeout, stdout, stderr)
}

// targetArgs are the flags that name the same target again, for hints.
func targetArgs(f targetFlags) string {
	s := ""
	if f.local {
		s += " -local"
		if f.workDir != ".edp-local" {
			s += " -work-dir " + f.workDir
		}
	}
	if f.stack != "" {
		s += " -stack " + f.stack
	}
	if f.region != "" {
		s += " -region " + f.region
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// submitKey is the default key of an upload: a unique one for the
// built-in job (its version folder is in the config); a command job's
// config keeps its name, which names its version folder.
func submitKey(file string, command bool, now time.Time) string {
	base := filepath.Base(file)
	if command {
		return names.ConfigPrefix + base
	}
	ext := path.Ext(base)
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s-%s-%s%s", names.ConfigPrefix, strings.TrimSuffix(base, ext), now.UTC().Format("20060102T150405Z"), hex.EncodeToString(b[:]), ext)
}

// readLimited reads a config file, refusing one over limit bytes from its
// size, before reading it.
func readLimited(file string, limit int64) ([]byte, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("config is %d bytes, limit is %d", fi.Size(), limit)
	}
	return os.ReadFile(file)
}

// stackJob is the job a stack runs, as its task definition says.
type stackJob struct {
	command         *job.CommandJob
	validateCommand []string
}

// jobSettingsOf reads the job of a stack from its template's task
// definition (the consumer container's environment).
func jobSettingsOf(st *stackview.Stack) stackJob {
	env := map[string]string{}
	for _, id := range st.Resources("AWS::ECS::TaskDefinition") {
		defs, _ := st.Properties(id)["ContainerDefinitions"].([]any)
		for _, d := range defs {
			c, _ := d.(map[string]any)
			vars, _ := c["Environment"].([]any)
			for _, v := range vars {
				kv, _ := v.(map[string]any)
				if name, ok := kv["Name"].(string); ok {
					if val, ok := kv["Value"].(string); ok {
						env[name] = val
					}
				}
			}
		}
	}
	if env[names.EnvJob] != names.JobCommand {
		return stackJob{}
	}
	cj := &job.CommandJob{MaxConfigBytes: job.DefaultMaxConfigBytes}
	if n, err := strconv.ParseInt(env[names.EnvJobMaxConfigBytes], 10, 64); err == nil && n > 0 {
		cj.MaxConfigBytes = n
	}
	sj := stackJob{command: cj}
	_ = json.Unmarshal([]byte(env[names.EnvJobValidateCommand]), &sj.validateCommand)
	return sj
}

func (j stackJob) maxConfigBytes() int64 {
	if j.command != nil {
		return j.command.MaxConfigBytes
	}
	return config.MaxBytes
}

// check runs the stack's own checks on a config: the built-in job's parse
// and resolution (what a run checks before it trains), or a command job's
// envelope and, given the job's directory, its validate command.
func (j stackJob) check(ctx context.Context, file string, body []byte, jobDir string) error {
	if j.command == nil {
		_, err := job.Check(body)
		var cerr *config.Error
		if errors.As(err, &cerr) {
			return errors.New(strings.Join(problemTexts(cerr), "\n"))
		}
		return err
	}
	cj := *j.command
	if jobDir != "" && len(j.validateCommand) > 0 {
		cj.Validate = &command.Spec{Argv: j.validateCommand, JobDir: jobDir}
	}
	return cj.Check(ctx, file, body)
}

func problemTexts(e *config.Error) []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p.String()
	}
	return out
}

// --- watch --------------------------------------------------------------

func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("watch", "watch [-stack S] [-local] [-timeout D] RUN", stderr)
	timeout := v.fs.Duration("timeout", 30*time.Minute, "give up after this long (exit 3)")
	if code, ok := v.parse(args, stderr, 1); !ok {
		return code
	}
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	runID, err := resolveRun(ctx, t, v.args[0])
	if err != nil && !errors.Is(err, errRunNotFound) {
		return v.fail(stderr, err)
	}
	if err != nil {
		runID = v.args[0] // may not have started yet
		if !runrecord.IsRunID(runID) {
			return v.fail(stderr, err)
		}
	}
	return watchRun(ctx, t, runID, time.Now(), *timeout, stdout, stderr)
}

// watchRun follows a run until its record says how it ended: queued →
// running (on which task, which attempt) → succeeded or failed, each with
// the time since start. Exit 0 when it succeeded, 1 when it failed, 3 on
// timeout.
func watchRun(ctx context.Context, t *target, runID string, start time.Time, timeout time.Duration, stdout, stderr io.Writer) int {
	recent := &stackview.Recent{API: t.s3, Bucket: t.bucket()}
	poll := 2 * time.Second
	if t.local {
		poll = 500 * time.Millisecond
	}
	deadline := time.Now().Add(timeout)
	state := ""
	say := func(s, detail string) {
		if s != state {
			state = s
			fmt.Fprintf(stdout, "%8s  %-9s %s\n", time.Since(start).Round(100*time.Millisecond), s, detail)
		}
	}
	for {
		r, err := stackview.RecordOf(ctx, t.s3, t.bucket(), runID)
		switch {
		case err == nil:
			detail := fmt.Sprintf("in %s", time.Duration(r.DurationMS)*time.Millisecond)
			if r.Error != "" {
				detail += ": " + textlimit.Clip(r.Error, 300)
			} else if len(r.Artifacts) > 0 {
				detail += ": " + path.Dir(r.Artifacts[len(r.Artifacts)-1]) + "/"
			}
			// A failed record may be a transient failure that will be
			// retried: it ends the watch only when permanent.
			if r.Status == runrecord.StatusFailed && !r.Permanent {
				say("retrying", fmt.Sprintf("attempt %d failed: %s", r.Attempt, textlimit.Clip(r.Error, 200)))
				break
			}
			say(r.Status, detail)
			if r.Status == runrecord.StatusFailed {
				return exitFailed
			}
			return 0
		case !errors.Is(err, stackview.ErrNoRecord):
			fmt.Fprintf(stderr, "edp watch: %v\n", err)
		default:
			e, ferr := recent.Find(ctx, runID)
			switch {
			case ferr == nil && e.Status == runrecord.StatusRunning:
				say("running", fmt.Sprintf("on %s (attempt %d)", shortTask(e.Task), e.Attempt))
			case ferr == nil:
				say("retrying", fmt.Sprintf("attempt %d %s: %s", e.Attempt, e.Status, textlimit.Clip(e.Error, 200)))
			case errors.Is(ferr, stackview.ErrNotRecent):
				say("queued", "waiting for a consumer")
			default:
				fmt.Fprintf(stderr, "edp watch: %v\n", ferr)
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(stderr, "edp watch: run %s still %s after %s\n", runID, state, timeout)
			return exitTimeout
		}
		select {
		case <-ctx.Done():
			return exitFailed
		case <-time.After(poll):
		}
	}
}

// shortTask shortens a task ARN to its id.
func shortTask(task string) string {
	if i := strings.LastIndex(task, "/"); i >= 0 && strings.HasPrefix(task, "arn:") {
		return "task " + task[i+1:]
	}
	return task
}

// errRunNotFound is resolveRun's error for a run id with no record and no
// recent entry.
var errRunNotFound = errors.New("run not found")

// resolveRun turns a run id, or a prefix of one among the recent runs,
// into a run id.
func resolveRun(ctx context.Context, t *target, arg string) (string, error) {
	if runrecord.IsRunID(arg) {
		if _, err := stackview.RecordOf(ctx, t.s3, t.bucket(), arg); err == nil {
			return arg, nil
		}
		if _, err := (&stackview.Recent{API: t.s3, Bucket: t.bucket()}).Find(ctx, arg); err == nil {
			return arg, nil
		}
		return "", fmt.Errorf("%w: %s has no record and is not among the recent runs of %s", errRunNotFound, arg, t.stack.Name)
	}
	if len(arg) < 4 || strings.Trim(arg, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%q is not a run id (32 hex digits, or a prefix of 4 or more)", arg)
	}
	runs, err := (&stackview.Recent{API: t.s3, Bucket: t.bucket()}).Runs(ctx, 250, stackview.RecentFilter{})
	if err != nil {
		return "", err
	}
	var match []string
	for _, e := range runs {
		if strings.HasPrefix(e.RunID, arg) {
			match = append(match, e.RunID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%w: no recent run of %s starts with %s", errRunNotFound, t.stack.Name, arg)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%s names %d recent runs: give more digits", arg, len(match))
}

// --- status -------------------------------------------------------------

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("status", "status [-stack S] [-local] [-failed] [-since D] [-limit N] [-json] [RUN]", stderr)
	failed := v.fs.Bool("failed", false, "only runs that failed")
	since := v.fs.Duration("since", 0, "only runs of the last `duration` (e.g. 1h)")
	limit := v.fs.Int("limit", 20, "at most this many runs")
	asJSON := v.fs.Bool("json", false, "JSON lines instead of a table")
	if code, ok := v.parse(args, stderr, 0, 1); !ok {
		return code
	}
	if *limit < 1 || *limit > 250 {
		fmt.Fprintf(stderr, "edp status: -limit %d: want 1 to 250\n", *limit)
		return exitUsage
	}
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	if len(v.args) == 1 {
		return runDetail(ctx, t, v.args[0], *asJSON, stdout, stderr)
	}
	f := stackview.RecentFilter{Failed: *failed}
	if *since > 0 {
		f.Since = time.Now().Add(-*since)
	}
	recent := &stackview.Recent{API: t.s3, Bucket: t.bucket()}
	runs, err := recent.Runs(ctx, *limit, f)
	if err != nil {
		return v.fail(stderr, err)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range runs {
			_ = enc.Encode(e)
		}
		return 0
	}
	writeRuns(stdout, runs, time.Now())
	fmt.Fprintf(stdout, "%d runs of %s in %s", len(runs), t.stack.Name, t.where)
	if u := t.stack.Outputs[names.OutputDashboard]; u != "" && !t.local {
		fmt.Fprintf(stdout, " · dashboard: %s", u)
	}
	fmt.Fprintln(stdout)
	return 0
}

// writeRuns prints runs as a table, newest first.
func writeRuns(w io.Writer, runs []runrecord.Entry, now time.Time) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tCONFIG\tSTATUS\tJOB\tATTEMPT\tQUEUED\tDURATION\tAGE\tERROR")
	for _, e := range runs {
		queued, dur := "-", "-"
		if !e.UploadedAt.IsZero() {
			queued = e.StartedAt.Sub(e.UploadedAt).Round(10 * time.Millisecond).String()
		}
		if e.Status == runrecord.StatusRunning {
			dur = now.Sub(e.StartedAt).Round(time.Second).String() + "…"
		} else {
			dur = (time.Duration(e.DurationMS) * time.Millisecond).String()
		}
		age := now.Sub(e.StartedAt).Round(time.Second).String()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", e.RunID[:12], e.Key, e.Status, orDash(e.Job), e.Attempt, queued, dur, age,
			orDash(textlimit.Clip(strings.ReplaceAll(e.Error, "\n", " "), 80)))
	}
	tw.Flush()
}

// runDetail prints one run: its record, its artifacts and its version's
// pointer; a run without a record is shown from its index entry.
func runDetail(ctx context.Context, t *target, arg string, asJSON bool, stdout, stderr io.Writer) int {
	runID, err := resolveRun(ctx, t, arg)
	if err != nil {
		fmt.Fprintf(stderr, "edp status: %v\n", err)
		return exitFailed
	}
	r, err := stackview.RecordOf(ctx, t.s3, t.bucket(), runID)
	if errors.Is(err, stackview.ErrNoRecord) {
		e, ferr := (&stackview.Recent{API: t.s3, Bucket: t.bucket()}).Find(ctx, runID)
		if ferr != nil {
			fmt.Fprintf(stderr, "edp status: %v\n", ferr)
			return exitFailed
		}
		if asJSON {
			_ = json.NewEncoder(stdout).Encode(e)
			return 0
		}
		fmt.Fprintf(stdout, "run      %s\nconfig   s3://%s/%s\nstatus   %s on %s (attempt %d) since %s\n", runID, t.bucket(), e.Key, e.Status, shortTask(e.Task), e.Attempt, e.StartedAt.Format(time.RFC3339))
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "edp status: %v\n", err)
		return exitFailed
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(r)
		return 0
	}
	fmt.Fprintf(stdout, "run      %s\nconfig   s3://%s/%s (version %s)\nstatus   %s", r.RunID, r.Source.Bucket, r.Source.Key, orDash(r.Source.VersionID), r.Status)
	if r.Status == runrecord.StatusFailed {
		kind := "transient"
		if r.Permanent {
			kind = "permanent"
		}
		fmt.Fprintf(stdout, " (%s)", kind)
	}
	fmt.Fprintf(stdout, "\njob      %s", orDash(r.Job))
	if len(r.Command) > 0 {
		fmt.Fprintf(stdout, " %q", r.Command)
	}
	if r.ExitCode != nil {
		fmt.Fprintf(stdout, ", exit status %d", *r.ExitCode)
	}
	if r.Signal != "" {
		fmt.Fprintf(stdout, ", signal %s", r.Signal)
	}
	fmt.Fprintf(stdout, "\nattempt  %d\nstarted  %s\nduration %s\n", r.Attempt, r.StartedAt.Format(time.RFC3339), time.Duration(r.DurationMS)*time.Millisecond)
	if r.Version != "" {
		fmt.Fprintf(stdout, "version  %s\n", r.Version)
	}
	if r.Error != "" {
		fmt.Fprintf(stdout, "error    %s\n", r.Error)
	}
	for _, a := range r.Artifacts {
		fmt.Fprintf(stdout, "artifact s3://%s/%s\n", t.bucket(), a)
	}
	if r.Version != "" && r.Status == runrecord.StatusSucceeded {
		folder := names.VersionFolder(names.ArtifactPrefix, r.Version)
		ptr, err := readPointer(ctx, t, folder)
		switch {
		case err != nil:
			fmt.Fprintf(stdout, "pointer  %s: %v\n", names.PointerKey(folder), err)
		case ptr.RunID == r.RunID:
			fmt.Fprintf(stdout, "pointer  %s names this run: it is the version's current one\n", names.PointerKey(folder))
		default:
			fmt.Fprintf(stdout, "pointer  %s names run %s, of a later upload\n", names.PointerKey(folder), ptr.RunID)
		}
	}
	if r.OutputTail != "" {
		fmt.Fprintf(stdout, "output (end):\n%s\n", indent(r.OutputTail))
	}
	return 0
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// readPointer reads a version folder's pointer.
func readPointer(ctx context.Context, t *target, folder string) (runrecord.Pointer, error) {
	obj, err := t.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket()), Key: aws.String(names.PointerKey(folder))})
	if err != nil {
		return runrecord.Pointer{}, err
	}
	defer obj.Body.Close()
	var p runrecord.Pointer
	err = json.NewDecoder(io.LimitReader(obj.Body, 1<<20)).Decode(&p)
	return p, err
}

// --- logs ---------------------------------------------------------------

func cmdLogs(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	v := newVerb("logs", "logs [-stack S] [-local] [-since D] RUN", stderr)
	since := v.fs.Duration("since", 24*time.Hour, "look this far back (CloudWatch Logs)")
	if code, ok := v.parse(args, stderr, 1); !ok {
		return code
	}
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	runID, err := resolveRun(ctx, t, v.args[0])
	if err != nil {
		return v.fail(stderr, err)
	}
	var n int
	if t.local {
		n, err = localLogs(t.logDir, runID, stdout)
	} else {
		n, err = cloudLogs(ctx, t, runID, time.Now().Add(-*since), stdout)
	}
	if err != nil {
		return v.fail(stderr, err)
	}
	if n == 0 {
		fmt.Fprintf(stderr, "edp logs: no log line names run %s (yet)\n", runID)
		return exitFailed
	}
	return 0
}

// localLogs prints the lines of the local tasks' logs that name runID.
func localLogs(dir, runID string, w io.Writer) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir, "task-*.log"))
	if err != nil {
		return 0, err
	}
	slices.Sort(files)
	n := 0
	for _, f := range files {
		h, err := os.Open(f)
		if err != nil {
			return n, err
		}
		sc := bufio.NewScanner(h)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), runID) {
				fmt.Fprintln(w, sc.Text())
				n++
			}
		}
		h.Close()
	}
	return n, nil
}

// maxLogPages bounds the FilterLogEvents calls of one `edp logs`.
const maxLogPages = 20

// cloudLogs prints the events of the stack's log group that name runID.
func cloudLogs(ctx context.Context, t *target, runID string, since time.Time, w io.Writer) (int, error) {
	groups := t.stack.Resources("AWS::Logs::LogGroup")
	if len(groups) == 0 {
		return 0, fmt.Errorf("stack %s has no log group", t.stack.Name)
	}
	n := 0
	for _, g := range groups {
		in := &cloudwatchlogs.FilterLogEventsInput{
			LogGroupName: aws.String(t.stack.Physical[g]), FilterPattern: aws.String(`"` + runID + `"`), StartTime: aws.Int64(since.UnixMilli()),
		}
		p := cloudwatchlogs.NewFilterLogEventsPaginator(t.logs, in)
		for page := 0; p.HasMorePages() && page < maxLogPages; page++ {
			out, err := p.NextPage(ctx)
			if err != nil {
				return n, fmt.Errorf("read log group %s: %w", t.stack.Physical[g], err)
			}
			for _, e := range out.Events {
				fmt.Fprintln(w, strings.TrimRight(aws.ToString(e.Message), "\n"))
				n++
			}
		}
	}
	return n, nil
}

// --- dlq ----------------------------------------------------------------

func cmdDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "redrive") {
		fmt.Fprintln(stderr, "usage: edp dlq list|redrive [-stack S] [-local] [-json]")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "help") {
			return 0
		}
		return exitUsage
	}
	sub := args[0]
	v := newVerb("dlq "+sub, "dlq "+sub+" [-stack S] [-local] [-queue dead-letters|undelivered] [-json]", stderr)
	asJSON := v.fs.Bool("json", false, "JSON lines instead of a table (list)")
	which := v.fs.String("queue", "dead-letters", "which dead-letter queue: dead-letters (failed jobs) or undelivered (events the rule or the Scheduler could not deliver; redriving them is safe: a run that happened is not repeated)")
	if code, ok := v.parse(args[1:], stderr, 0); !ok {
		return code
	}
	if *which != "dead-letters" && *which != "undelivered" {
		fmt.Fprintf(stderr, "edp dlq: -queue %q: want dead-letters or undelivered\n", *which)
		return exitUsage
	}
	t, err := openTarget(ctx, v.target)
	if err != nil {
		return v.fail(stderr, err)
	}
	url := t.stack.Outputs[names.OutputDLQURL]
	if *which == "undelivered" {
		if url = t.deliveryDLQ(); url == "" {
			return v.fail(stderr, fmt.Errorf("stack %s has no delivery dead-letter queue", t.stack.Name))
		}
	}
	r := &dlq.Reader{SQS: t.sqs, QueueURL: url}
	scan, err := r.Scan(ctx)
	if err != nil {
		return v.fail(stderr, fmt.Errorf("read the dead-letter queue: %w", err))
	}
	if sub == "redrive" {
		res, err := scan.Redrive(ctx, t.stack.Outputs[names.OutputQueueURL])
		fmt.Fprintf(stdout, "redrove %d of %d messages to the work queue (%d copies deleted, %d failed)\n", res.Sent, len(scan.Entries), res.Deleted, res.Failed)
		if err != nil {
			return v.fail(stderr, err)
		}
		return 0
	}
	defer scan.Release(context.WithoutCancel(ctx))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range scan.Entries {
			_ = enc.Encode(map[string]any{"key": dlqKey(e.Body), "copies": e.Copies, "reason": e.Reason, "failed_at": e.FailedAt, "receive_count": e.ReceiveCount})
		}
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CONFIG\tCOPIES\tFAILED AT\tREASON")
	for _, e := range scan.Entries {
		reason := e.Reason
		if reason == "" && e.RedrivenBySQS {
			reason = "moved by the queue's redrive after its last receive (see its run record)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", dlqKey(e.Body), e.Copies, orDash(e.FailedAt), textlimit.Clip(reason, 160))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d messages in the dead-letter queue of %s; `edp dlq redrive%s` sends them back\n", len(scan.Entries), t.stack.Name, targetArgs(v.target))
	return 0
}

// dlqKey is the config a dead-lettered body names, or the body.
func dlqKey(body string) string {
	if m, err := event.Parse([]byte(body)); err == nil && m.Kind == event.KindConfig {
		return m.Key
	}
	return textlimit.Clip(body, 80)
}
