package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edp-pipelines/edp/consumer/dlq"
	"github.com/edp-pipelines/edp/internal/faultproxy"
	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/motoserver"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// stack is one deployed stack in a local cloud of its own. Its tasks and
// its Lambda reach moto through proxy; the test's own clients go to moto
// directly, so a fault never hides what the test reads.
type stack struct {
	name    string
	cloud   *localcloud.Cloud
	proxy   *faultproxy.Proxy
	workDir string

	bucket, queueURL, dlqURL string
	s3                       *s3.Client
	sqs                      *sqs.Client

	mu      sync.Mutex
	records map[string]cachedRecord // by object key under runs/
}

type cachedRecord struct {
	etag string
	rec  runRecord
}

// deploy starts moto_server, the fault proxy and the local cloud with the
// stack (whose bucket is versioned, as its template says). Everything stops when t ends; if t
// failed, the tails of the cloud's and the tasks' logs are logged first.
func deploy(t *testing.T, stackName string, opts ...func(*localcloud.Options)) *stack {
	t.Helper()
	ctx := t.Context()
	workDir := t.TempDir()
	moto, err := motoserver.Start(ctx)
	if err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	t.Cleanup(moto.Stop)
	proxy := faultproxy.StartT(t, moto.Endpoint)
	logFile, err := os.Create(filepath.Join(workDir, "cloud.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	s := &stack{name: stackName, proxy: proxy, workDir: workDir, records: map[string]cachedRecord{}}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs(t)
		}
	})
	start := time.Now()
	o := localcloud.Options{
		RepoRoot: repoRoot, Stack: stackName, AssemblyDir: assemblyDir, WorkDir: workDir,
		TaskEndpoint: proxy.URL, Moto: moto, Speedup: speedup,
		Logger: slog.New(slog.NewJSONHandler(logFile, nil)),
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := localcloud.Up(ctx, o)
	if err != nil {
		t.Fatalf("deploy %s into the local cloud: %v", stackName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close the local cloud: %v", err)
		}
	})
	out := c.Stack().Outputs
	s.cloud, s.s3, s.sqs = c, c.Clients().S3, c.Clients().SQS
	s.bucket, s.queueURL, s.dlqURL = out[names.OutputBucket], out[names.OutputQueueURL], out[names.OutputDLQURL]
	if s.bucket == "" || s.queueURL == "" || s.dlqURL == "" {
		t.Fatalf("stack %s outputs %v: want the bucket, the queue and the DLQ", stackName, out)
	}
	t.Logf("%s deployed in %s", stackName, time.Since(start).Round(time.Millisecond))
	return s
}

// dumpLogs logs the end of the cloud's log and of the Lambda's, and the
// last warnings and errors of the tasks that logged last.
func (s *stack) dumpLogs(t *testing.T) {
	t.Logf("---- %s: the local cloud's log", s.name)
	t.Log(tail(filepath.Join(s.workDir, "cloud.log"), 40, nil))
	lambdas, _ := filepath.Glob(filepath.Join(s.workDir, "logs", "lambda-*.log"))
	for _, f := range lambdas {
		t.Logf("---- %s", filepath.Base(f))
		t.Log(tail(f, 15, nil))
	}
	tasks, _ := filepath.Glob(filepath.Join(s.workDir, "logs", "task-*.log"))
	modified := func(f string) time.Time {
		if fi, err := os.Stat(f); err == nil {
			return fi.ModTime()
		}
		return time.Time{}
	}
	slices.SortFunc(tasks, func(a, b string) int { return modified(b).Compare(modified(a)) })
	problem := func(l string) bool {
		return strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`)
	}
	for _, f := range tasks[:min(len(tasks), 6)] {
		if out := tail(f, 4, problem); out != "" {
			t.Logf("---- %s (warnings and errors)", filepath.Base(f))
			t.Log(out)
		}
	}
}

// tail returns the last n lines of a file that keep accepts (all if nil).
func tail(path string, n int, keep func(string) bool) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for l := range strings.Lines(string(b)) {
		if keep == nil || keep(l) {
			lines = append(lines, strings.TrimRight(l, "\n"))
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// waitFor polls check every 250 ms until it reports done, and fails t when
// timeout passes first, with the last status check gave.
func waitFor(t *testing.T, what string, timeout time.Duration, check func() (done bool, status string, err error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		done, status, err := check()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, status)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: %v", what, t.Context().Err())
		case <-tick.C:
		}
	}
}

// fixture reads a file of testdata.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// object is a file to upload.
type object struct {
	key  string
	body []byte
}

// upload is one upload as S3 acknowledged it.
type upload struct {
	key, versionID string
	// at is when the upload was sent, done when S3 answered.
	at, done time.Time
}

// put uploads one object and returns its version.
func (s *stack) put(t *testing.T, key string, body []byte) upload {
	t.Helper()
	u, err := s.putObject(t.Context(), object{key, body})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (s *stack) putObject(ctx context.Context, o object) (upload, error) {
	at := time.Now()
	out, err := s.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(o.key), Body: bytes.NewReader(o.body)})
	if err != nil {
		return upload{}, fmt.Errorf("upload %s: %w", o.key, err)
	}
	if aws.ToString(out.VersionId) == "" || aws.ToString(out.VersionId) == "null" {
		return upload{}, fmt.Errorf("upload %s: no version id: the bucket is not versioned as its template says", o.key)
	}
	return upload{key: o.key, versionID: aws.ToString(out.VersionId), at: at, done: time.Now()}, nil
}

// putAll uploads the objects as one burst, eight at a time, and returns
// the uploads in the order of objs.
func (s *stack) putAll(t *testing.T, objs []object) []upload {
	t.Helper()
	out := make([]upload, len(objs))
	errs := make([]error, len(objs))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = s.putObject(t.Context(), o)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// remove deletes an object: with versionID "", a delete marker hides it;
// with one, that version is gone for good.
func (s *stack) remove(t *testing.T, key, versionID string) {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	if _, err := s.s3.DeleteObject(t.Context(), in); err != nil {
		t.Fatalf("delete %s (version %q): %v", key, versionID, err)
	}
}

// get reads an object of the bucket.
func (s *stack) get(ctx context.Context, key string) ([]byte, error) {
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// keys lists the bucket's object keys under prefix.
func (s *stack) keys(ctx context.Context, prefix string) (map[string]bool, error) {
	out := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = true
		}
	}
	return out, nil
}

// runRecord is the part of a run record (docs/pipeline.md) the tests check.
type runRecord struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Source struct {
		Key       string `json:"key"`
		VersionID string `json:"version_id"`
	} `json:"source"`
	Version      string    `json:"version"`
	ModelType    string    `json:"model_type"`
	ConfigSHA256 string    `json:"config_sha256"`
	Error        string    `json:"error"`
	Permanent    bool      `json:"permanent"`
	Artifacts    []string  `json:"artifacts"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	// A command job's (docs/jobs.md).
	Job        string `json:"job"`
	ExitCode   *int   `json:"exit_code"`
	Signal     string `json:"signal"`
	OutputTail string `json:"output_tail"`
	Attempt    int    `json:"attempt"`
}

// recordsUnder returns the run records of configs under prefix. Records are
// read again only when their ETag changes (a failed attempt's record is
// replaced by the retry's).
func (s *stack) recordsUnder(ctx context.Context, prefix string) ([]runRecord, error) {
	p := s3.NewListObjectsV2Paginator(s.s3, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(names.RecordPrefix), Delimiter: aws.String("/")})
	var out []runRecord
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list run records: %w", err)
		}
		for _, o := range page.Contents {
			key, etag := aws.ToString(o.Key), aws.ToString(o.ETag)
			s.mu.Lock()
			c, ok := s.records[key]
			s.mu.Unlock()
			if !ok || c.etag != etag {
				b, err := s.get(ctx, key)
				if err != nil {
					return nil, err
				}
				c = cachedRecord{etag: etag}
				if err := json.Unmarshal(b, &c.rec); err != nil {
					return nil, fmt.Errorf("run record %s: %w", key, err)
				}
				s.mu.Lock()
				s.records[key] = c
				s.mu.Unlock()
			}
			if strings.HasPrefix(c.rec.Source.Key, prefix) {
				out = append(out, c.rec)
			}
		}
	}
	slices.SortFunc(out, func(a, b runRecord) int { return strings.Compare(a.Source.Key, b.Source.Key) })
	return out, nil
}

// expect is an upload and the status its run must end in.
type expect struct {
	upload
	status string
}

// waitSettled waits until every expected upload has a run record with its
// status and the work queue holds nothing visible or in flight, then
// checks that the records under prefix are exactly one per upload, with
// distinct run ids, and returns them.
func (s *stack) waitSettled(t *testing.T, prefix string, want []expect, timeout time.Duration) []runRecord {
	t.Helper()
	ctx := t.Context()
	var recs []runRecord
	waitFor(t, fmt.Sprintf("%d uploads under %s settled", len(want), prefix), timeout, func() (bool, string, error) {
		var err error
		if recs, err = s.recordsUnder(ctx, prefix); err != nil {
			return false, "", err
		}
		done := 0
		var odd []string
		for _, w := range want {
			r, ok := recordOf(recs, w.upload)
			switch {
			case ok && r.Status == w.status:
				done++
			case ok:
				odd = append(odd, fmt.Sprintf("%s is %s (%.120s)", w.key, r.Status, r.Error))
			}
		}
		d, err := stackview.Depth(ctx, s.cloud.Clients().SQS, s.queueURL)
		if err != nil {
			return false, "", err
		}
		status := fmt.Sprintf("%d of %d runs as expected, %d records; queue: %d visible, %d in flight; tasks: %s%s",
			done, len(want), len(recs), d.Visible, d.InFlight, s.taskSummary(), s.alarmSummary())
		if len(odd) > 0 {
			status += "; not as expected: " + strings.Join(odd[:min(len(odd), 5)], "; ")
		}
		return done == len(want) && d.Visible == 0 && d.InFlight == 0, status, nil
	})
	var uploads []upload
	for _, w := range want {
		uploads = append(uploads, w.upload)
	}
	checkOnePerUpload(t, recs, uploads)
	return recs
}

// recordOf finds the record of one upload.
func recordOf(recs []runRecord, u upload) (runRecord, bool) {
	for _, r := range recs {
		if r.Source.Key == u.key && r.Source.VersionID == u.versionID {
			return r, true
		}
	}
	return runRecord{}, false
}

// checkOnePerUpload checks that recs hold exactly one record per upload
// (none lost, none duplicated) and no other, with distinct run ids.
func checkOnePerUpload(t *testing.T, recs []runRecord, uploads []upload) {
	t.Helper()
	want := map[string]bool{}
	for _, u := range uploads {
		want[u.key+"#"+u.versionID] = true
	}
	seen := map[string]int{}
	runIDs := map[string]string{}
	for _, r := range recs {
		id := r.Source.Key + "#" + r.Source.VersionID
		if !want[id] {
			t.Errorf("record %s of %s (version %s): no such upload", r.RunID, r.Source.Key, r.Source.VersionID)
		}
		seen[id]++
		if other, dup := runIDs[r.RunID]; dup {
			t.Errorf("run id %s names two records: %s and %s", r.RunID, other, id)
		}
		runIDs[r.RunID] = id
	}
	for _, u := range uploads {
		if n := seen[u.key+"#"+u.versionID]; n != 1 {
			t.Errorf("upload %s (version %s): %d run records, want exactly 1", u.key, u.versionID, n)
		}
	}
}

// deadLetter is one original message in the DLQ, its copies counted once.
type deadLetter struct {
	key, reason string
	copies      int
}

// deadLetters reads the DLQ with the consumer's own tooling (consumer/dlq,
// what `consumer dlq list` runs), which counts the copies of one message
// once, and returns the originals whose config is under prefix.
func (s *stack) deadLetters(t *testing.T, prefix string) []deadLetter {
	t.Helper()
	ctx := t.Context()
	r := &dlq.Reader{SQS: s.sqs, QueueURL: s.dlqURL, Hold: 30 * time.Second}
	scan, err := r.Scan(ctx)
	if err != nil {
		t.Fatalf("read the DLQ: %v", err)
	}
	defer scan.Release(context.WithoutCancel(ctx))
	var out []deadLetter
	for _, e := range scan.Entries {
		k := eventKey(e.Body)
		if k == "" {
			k = e.Body // not an S3 event: show the body
		}
		if strings.HasPrefix(k, prefix) {
			out = append(out, deadLetter{key: k, reason: e.Reason, copies: e.Copies})
		}
	}
	slices.SortFunc(out, func(a, b deadLetter) int { return strings.Compare(a.key, b.key) })
	return out
}

// eventKey is the object key of an EventBridge S3 event, "" for other
// bodies.
func eventKey(body string) string {
	var e struct {
		Detail struct {
			Object struct {
				Key string `json:"key"`
			} `json:"object"`
		} `json:"detail"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.Detail.Object.Key
}

// taskSummary counts the local tasks by status, for progress messages.
func (s *stack) taskSummary() string {
	n := map[string]int{}
	for _, ti := range s.cloud.Tasks() {
		n[ti.LastStatus]++
	}
	return fmt.Sprintf("%d running, %d pending, %d stopped", n[ecsemu.StatusRunning], n[ecsemu.StatusPending], n[ecsemu.StatusStopped])
}

// alarmSummary shows the alarms' states and last values, for progress
// messages.
func (s *stack) alarmSummary() string {
	var b strings.Builder
	for _, a := range s.cloud.Alarms() {
		fmt.Fprintf(&b, "; %s %s", a.LogicalID, a.State)
		if a.HasValue {
			fmt.Fprintf(&b, " (%g)", a.Value)
		}
	}
	return b.String()
}

// tasksSince returns the tasks created at or after since.
func (s *stack) tasksSince(since time.Time) []ecsemu.TaskInfo {
	var out []ecsemu.TaskInfo
	for _, ti := range s.cloud.Tasks() {
		if !ti.CreatedAt.Before(since) {
			out = append(out, ti)
		}
	}
	return out
}

// waitTasksStopped waits until every task created in [from, to) has
// stopped (a zero to: up to now) and returns them.
func (s *stack) waitTasksStopped(t *testing.T, from, to time.Time, timeout time.Duration) []ecsemu.TaskInfo {
	t.Helper()
	var tasks []ecsemu.TaskInfo
	waitFor(t, "tasks stopped", timeout, func() (bool, string, error) {
		tasks = tasks[:0]
		running := 0
		for _, ti := range s.tasksSince(from) {
			if !to.IsZero() && !ti.CreatedAt.Before(to) {
				continue
			}
			tasks = append(tasks, ti)
			if ti.LastStatus != ecsemu.StatusStopped {
				running++
			}
		}
		return running == 0, fmt.Sprintf("%d of %d tasks not stopped", running, len(tasks)), nil
	})
	return tasks
}

// checkExitedCleanly checks that every task exited with code 0.
func checkExitedCleanly(t *testing.T, tasks []ecsemu.TaskInfo) {
	t.Helper()
	for _, ti := range tasks {
		if ti.ExitCode == nil || *ti.ExitCode != 0 {
			code := "none"
			if ti.ExitCode != nil {
				code = strconv.Itoa(*ti.ExitCode)
			}
			t.Errorf("task %s (started by %s) ended with exit code %s, want 0 (%s: %s)", taskID(ti.Arn), ti.StartedBy, code, ti.StopCode, ti.StoppedReason)
		}
	}
}

// taskID is the id at the end of a task ARN (the task logs are named by it).
func taskID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// logLine is the part of a consumer log line the tests read.
type logLine struct {
	task         string
	Time         time.Time `json:"time"`
	Msg          string    `json:"msg"`
	Key          string    `json:"s3_key"`
	ReceiveCount int       `json:"receive_count"`
}

// jobStarts returns the consumer's "job started" lines for key, from every
// task's log, oldest first.
func (s *stack) jobStarts(key string) []logLine {
	var out []logLine
	for _, id := range s.loggedTasks() {
		_ = s.eachTaskLine(id, func(l logLine) bool {
			if l.Msg == "job started" && l.Key == key {
				out = append(out, l)
			}
			return true
		})
	}
	slices.SortFunc(out, func(a, b logLine) int { return a.Time.Compare(b.Time) })
	return out
}

// loggedTasks returns the ids of the tasks that have a log.
func (s *stack) loggedTasks() []string {
	files, _ := filepath.Glob(filepath.Join(s.workDir, "logs", "task-*.log"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "task-"), ".log"))
	}
	return out
}

// eachTaskLine calls f with each JSON line of one task's log (task id)
// until f returns false; lines that are not JSON are skipped.
func (s *stack) eachTaskLine(id string, f func(logLine) bool) error {
	fh, err := os.Open(filepath.Join(s.workDir, "logs", "task-"+id+".log"))
	if err != nil {
		return err
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := logLine{task: id}
		if json.Unmarshal(sc.Bytes(), &l) == nil && !f(l) {
			return nil
		}
	}
	return sc.Err()
}

// taskLog returns the JSON lines of one task's log (task id), decoded;
// lines that are not JSON objects are left out.
func (s *stack) taskLog(id string) []map[string]any {
	b, err := os.ReadFile(filepath.Join(s.workDir, "logs", "task-"+id+".log"))
	if err != nil {
		return nil
	}
	var out []map[string]any
	for l := range strings.Lines(string(b)) {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// taskPID finds the process of a local task: the one whose environment
// holds the agent URI the emulator gives that task alone
// (ECS_AGENT_URI=<endpoint>/agent/<task-id>). Linux only (/proc).
func taskPID(ecsEndpoint, id string) (int, error) {
	want := []byte("\x00" + ecsemu.AgentURIEnv + "=" + ecsEndpoint + "/agent/" + id + "\x00")
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("find the process of task %s: %w", id, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(append([]byte{0}, env...), want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no process has task %s's agent URI", id)
}

// isGet reports whether r reads key of the bucket (path-style S3, any
// version).
func (s *stack) isGet(r *http.Request, key string) bool {
	return r.Method == http.MethodGet && r.URL.Path == "/"+s.bucket+"/"+key
}

// isGetUnder reports whether r reads a key of the bucket under prefix.
func (s *stack) isGetUnder(r *http.Request, prefix string) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/"+s.bucket+"/"+prefix)
}

// serviceName is the name of the stack's ECS service.
func (s *stack) serviceName(t *testing.T) string {
	t.Helper()
	ids := s.cloud.Stack().Resources("AWS::ECS::Service")
	if len(ids) != 1 {
		t.Fatalf("stack %s has %d services, want 1", s.name, len(ids))
	}
	p := s.cloud.Stack().Physical[ids[0]]
	return p[strings.LastIndex(p, "/")+1:]
}

// nextFire is the next fire of the stack's (one) schedule, in real time.
func (s *stack) nextFire(t *testing.T) time.Time {
	t.Helper()
	next := s.cloud.NextScheduledRun()
	if len(next) != 1 {
		t.Fatalf("stack %s has %d schedules, want 1", s.name, len(next))
	}
	for _, at := range next {
		return at
	}
	return time.Time{}
}

// quietBeforeFire waits until no task runs and the next fire of the
// schedule is at least margin away, and returns that fire: uploads made now
// wait in the queue for it.
func (s *stack) quietBeforeFire(t *testing.T, margin time.Duration) time.Time {
	t.Helper()
	var fire time.Time
	waitFor(t, "no task running, the next fire ahead", 3*localcloud.ScheduleInterval, func() (bool, string, error) {
		fire = s.nextFire(t)
		for _, ti := range s.cloud.Tasks() {
			if ti.LastStatus != ecsemu.StatusStopped {
				return false, s.taskSummary(), nil
			}
		}
		return time.Until(fire) >= margin, "next fire in " + time.Until(fire).String(), nil
	})
	return fire
}
