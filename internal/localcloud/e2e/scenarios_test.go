package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/faultproxy"
	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/names"
)

// The scenarios every architecture goes through. Each uses keys of its
// own under configs/<scenario>/, so records and DLQ entries of one never
// count for another.

// goodConfigs are the valid fixtures: both models, three file formats,
// six artifact versions, seeds given and derived.
var goodConfigs = []struct{ file, model, version string }{
	{"good/dt-gini.yaml", "DecisionTreeClassifier", "dt-v1"},
	{"good/dt-entropy.yml", "DecisionTreeClassifier", "dt-v2"},
	{"good/dt-minimal.json", "DecisionTreeClassifier", "dt-json"},
	{"good/rf-small.yaml", "RandomForestClassifier", "rf-v1"},
	{"good/rf-log2.yaml", "RandomForestClassifier", "rf-v2"},
	{"good/rf-minimal.json", "RandomForestClassifier", "rf-json"},
}

// badConfigs are invalid fixtures and what their failure must say.
var badConfigs = []struct{ file, wantErr string }{
	{"bad/invalid-yaml.yaml", "not valid YAML"},
	{"bad/unknown-model.yaml", "SupportVectorMachine"},
	{"bad/test-size-150.yaml", "test_size"},
}

// uploadsPerConfig times len(goodConfigs) is the batch's 30 valid uploads.
const uploadsPerConfig = 5

// batchPrefix holds the batch's uploads.
const batchPrefix = "configs/batch/"

// batchOptions adapt the batch to an architecture; the zero value is a
// plain burst.
type batchOptions struct {
	// readDelay, when set, makes every config read of the batch take that
	// long (through the fault proxy).
	readDelay time.Duration
	// uploaded, when set, runs once every upload is in, before the wait
	// for the runs.
	uploaded func(batchResult)
}

// batchResult is what a batch left behind, for the architecture's checks.
type batchResult struct {
	good, bad, ignored []upload
	// records are the run records of the batch.
	records []runRecord
	// started is just before the first upload.
	started time.Time
}

// matching are the uploads the rule passes on (valid and invalid configs).
func (b batchResult) matching() []upload { return append(append([]upload(nil), b.good...), b.bad...) }

// batch proves that a burst of uploads is processed completely and exactly
// once: 30 valid configs (testdata/good, five keys each) end as 30
// succeeded run records, one per upload and none more, named by the
// upload's version, each with the model and version of its config and
// every artifact it lists in the bucket, and each artifact version's
// pointer names one of these runs; 3 invalid configs (testdata/bad) end as
// 3 permanent failure records saying what is wrong and as 3 originals in
// the DLQ (copies counted once, as `consumer dlq list` counts them) with
// that reason; and objects outside configs/ or with another suffix
// (notes/…, .txt, .yaml.bak) start nothing: no record, and no DLQ entry,
// which a message for them would have become (the batch is each
// architecture's first scenario, so the DLQ holds nothing else).
func (s *stack) batch(t *testing.T, o batchOptions) batchResult {
	t.Helper()
	if o.readDelay > 0 {
		remove := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: o.readDelay,
			Match: func(r *http.Request, _ []byte) bool { return s.isGetUnder(r, batchPrefix) }})
		defer remove()
	}
	var res batchResult
	res.started = time.Now()
	// The ignored uploads go first: an event they caused would be ahead of
	// every other in the queue.
	for _, key := range []string{"notes/dt-gini.yaml", batchPrefix + "readme.txt", batchPrefix + "dt-gini.yaml.bak"} {
		res.ignored = append(res.ignored, s.put(t, key, fixture(t, "good/dt-gini.yaml")))
	}
	var objs []object
	for i := range uploadsPerConfig {
		for _, g := range goodConfigs {
			ext := path.Ext(g.file)
			objs = append(objs, object{fmt.Sprintf("%s%s-%d%s", batchPrefix, strings.TrimSuffix(path.Base(g.file), ext), i, ext), fixture(t, g.file)})
		}
	}
	for _, b := range badConfigs {
		objs = append(objs, object{batchPrefix + path.Base(b.file), fixture(t, b.file)})
	}
	ups := s.putAll(t, objs)
	res.good, res.bad = ups[:len(ups)-len(badConfigs)], ups[len(ups)-len(badConfigs):]
	if o.uploaded != nil {
		o.uploaded(res)
	}

	var want []expect
	for _, u := range res.good {
		want = append(want, expect{u, "succeeded"})
	}
	for _, u := range res.bad {
		want = append(want, expect{u, "failed"})
	}
	recs := s.waitSettled(t, batchPrefix, want, 3*time.Minute)
	res.records = recs
	t.Logf("batch: %d valid and %d invalid configs settled %s after the first upload", len(res.good), len(res.bad), time.Since(res.started).Round(10*time.Millisecond))

	// Every valid config: its model, its version, its artifacts.
	artifacts, err := s.keys(t.Context(), names.ArtifactPrefix)
	if err != nil {
		t.Fatal(err)
	}
	runsOfVersion := map[string]map[string]bool{}
	for i, u := range res.good {
		g := goodConfigs[i%len(goodConfigs)]
		r, _ := recordOf(recs, u)
		if r.ModelType != g.model || r.Version != g.version {
			t.Errorf("%s: model %s version %s, want %s version %s (from %s)", u.key, r.ModelType, r.Version, g.model, g.version, g.file)
		}
		if len(r.Artifacts) == 0 || path.Base(r.Artifacts[len(r.Artifacts)-1]) != "run.json" {
			t.Errorf("%s: artifacts %q, want a list ending in run.json", u.key, r.Artifacts)
		}
		for _, a := range r.Artifacts {
			if !artifacts[a] {
				t.Errorf("%s: artifact %s is listed in the run record but not in the bucket", u.key, a)
			}
		}
		if runsOfVersion[r.Version] == nil {
			runsOfVersion[r.Version] = map[string]bool{}
		}
		runsOfVersion[r.Version][r.RunID] = true
	}
	for version, runs := range runsOfVersion {
		p := s.pointer(t, version)
		if !runs[p.RunID] {
			t.Errorf("artifacts/%s/latest.json names run %s, not one of the batch's %d runs of that version", version, p.RunID, len(runs))
		}
	}

	// Every invalid config: a permanent failure saying why, and one DLQ
	// original with the same reason; nothing else in the DLQ.
	dead := map[string]deadLetter{}
	for _, d := range s.deadLetters(t, "") {
		if _, dup := dead[d.key]; dup {
			t.Errorf("DLQ: two originals for %s", d.key)
		}
		dead[d.key] = d
	}
	for i, u := range res.bad {
		b := badConfigs[i]
		r, _ := recordOf(recs, u)
		if !r.Permanent || !strings.Contains(r.Error, b.wantErr) {
			t.Errorf("%s: failure record permanent=%v error %q, want a permanent failure mentioning %q", u.key, r.Permanent, r.Error, b.wantErr)
		}
		d, ok := dead[u.key]
		if !ok {
			t.Errorf("%s: not in the DLQ", u.key)
			continue
		}
		if !strings.Contains(d.reason, b.wantErr) {
			t.Errorf("%s: DLQ reason %q, want it to mention %q", u.key, d.reason, b.wantErr)
		}
		delete(dead, u.key)
	}
	for k := range dead {
		t.Errorf("DLQ holds %q, which is not an invalid config (an ignored upload that reached the queue?)", k)
	}

	// The ignored uploads: no record either.
	all, err := s.recordsUnder(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range res.ignored {
		if _, ok := recordOf(all, u); ok {
			t.Errorf("%s has a run record: only configs/ keys ending .yaml, .yml or .json may run", u.key)
		}
	}

	// Nothing waits silently: the invalid configs in the DLQ take the
	// stack's dead-letter alarm to ALARM, which publishes to the alert topic.
	deadLetters := s.cloud.Stack().Name + "-dead-letters"
	waitFor(t, "the dead-letter alert", 5*alarmPeriod, func() (bool, string, error) {
		for _, a := range s.cloud.Alerts() {
			if a.AlarmName == deadLetters && a.NewStateValue == "ALARM" {
				return true, "", nil
			}
		}
		return false, s.alarmSummary(), nil
	})
	return res
}

// pointerDoc is the part of a version's latest.json the tests read.
type pointerDoc struct {
	RunID string   `json:"run_id"`
	Files []string `json:"files"`
}

// pointer reads artifacts/<version>/latest.json.
func (s *stack) pointer(t *testing.T, version string) pointerDoc {
	t.Helper()
	key := names.PointerKey(names.VersionFolder(names.ArtifactPrefix, version))
	b, err := s.get(t.Context(), key)
	if err != nil {
		t.Fatalf("read the pointer of version %s: %v", version, err)
	}
	var p pointerDoc
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return p
}

// killMidJob proves that a task killed with SIGKILL while it holds a
// message loses nothing: the config's read is held by the fault proxy, so
// the task that took the message is inside the job when it is killed (its
// log says "job started", its process is found by its agent URI); the task
// ends with exit code 137; after the 30 s visibility timeout another task
// receives the message again (receive count 2) and runs it: exactly one
// succeeded record, started after the kill, and nothing in the DLQ. The
// companion configs uploaded with it run too.
func (s *stack) killMidJob(t *testing.T, companions int) {
	t.Helper()
	const prefix = "configs/kill/"
	key := prefix + "held.yaml"
	held, remove := s.holdRead(key, 10*time.Minute)
	defer remove()
	ups := []upload{s.put(t, key, fixture(t, "good/rf-small.yaml"))}
	for i := range companions {
		ups = append(ups, s.put(t, fmt.Sprintf("%scompanion-%d.yaml", prefix, i), fixture(t, "good/dt-gini.yaml")))
	}

	var victim logLine
	waitFor(t, "a task inside the job of "+key, 2*time.Minute, func() (bool, string, error) {
		starts := s.jobStarts(key)
		if !held.Load() || len(starts) == 0 {
			return false, fmt.Sprintf("read held: %v, job starts: %d; tasks: %s", held.Load(), len(starts), s.taskSummary()), nil
		}
		victim = starts[0]
		return true, "", nil
	})
	pid, err := taskPID(s.cloud.ECSEndpoint(), victim.task)
	if err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill task %s (pid %d): %v", victim.task, pid, err)
	}
	t.Logf("killed task %s (pid %d) %s after it started the job of %s", victim.task, pid, killedAt.Sub(victim.Time).Round(time.Millisecond), key)
	waitFor(t, "the killed task stopped", 30*time.Second, func() (bool, string, error) {
		for _, ti := range s.cloud.Tasks() {
			if taskID(ti.Arn) == victim.task {
				if ti.LastStatus != ecsemu.StatusStopped {
					return false, ti.LastStatus, nil
				}
				if ti.ExitCode == nil || *ti.ExitCode != 128+int(syscall.SIGKILL) {
					return false, "", fmt.Errorf("killed task stopped with exit code %v, want %d", ti.ExitCode, 128+int(syscall.SIGKILL))
				}
				return true, "", nil
			}
		}
		return false, "", fmt.Errorf("task %s is not listed", victim.task)
	})

	var want []expect
	for _, u := range ups {
		want = append(want, expect{u, "succeeded"})
	}
	recs := s.waitSettled(t, prefix, want, visibilitySeconds*time.Second+2*time.Minute)
	r, _ := recordOf(recs, ups[0])
	if r.StartedAt.Before(killedAt) {
		t.Errorf("%s: run started at %s, before the kill at %s", key, r.StartedAt, killedAt)
	}
	starts := s.jobStarts(key)
	last := starts[len(starts)-1]
	if len(starts) < 2 || last.task == victim.task {
		t.Errorf("%s: job started %d times, last in task %s; want a later start in another task than the killed %s", key, len(starts), last.task, victim.task)
	}
	if last.ReceiveCount < 2 {
		t.Errorf("%s: the run that succeeded had receive count %d, want ≥ 2 (the message came back)", key, last.ReceiveCount)
	}
	if gap := last.Time.Sub(victim.Time); gap < visibilitySeconds*time.Second-time.Second {
		t.Errorf("%s: received again %s after the kill, before the visibility timeout (%d s) ran out", key, gap, visibilitySeconds)
	}
	if d := s.deadLetters(t, prefix); len(d) > 0 {
		t.Errorf("DLQ holds %v, want nothing from the kill", d)
	}
	t.Logf("%s ran again in task %s (receive count %d) %s after the kill", key, last.task, last.ReceiveCount, last.Time.Sub(killedAt).Round(time.Millisecond))
}

// holdRead delays the first read of key by d (through the fault proxy);
// held reports once that read has begun. remove ends the rule.
func (s *stack) holdRead(key string, d time.Duration) (held *atomic.Bool, remove func()) {
	held = new(atomic.Bool)
	remove = s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: d, Times: 1,
		Match: func(r *http.Request, _ []byte) bool {
			ok := s.isGet(r, key)
			if ok {
				held.Store(true)
			}
			return ok
		}})
	return held, remove
}

// outageUploads is how many configs the outage scenario uploads.
const outageUploads = 12

// emulatorOutage proves that the emulator becoming unreachable for 5 s in
// the middle of a drain loses nothing: the fault proxy resets every request
// of the tasks (and the Lambda) once some of the 12 uploaded configs have
// run and the others are still being read (each read is slowed by 200 ms
// times its index, so the drain is spread out); afterwards every config
// ends as exactly one succeeded record and nothing is in the DLQ.
func (s *stack) emulatorOutage(t *testing.T) {
	t.Helper()
	const prefix = "configs/outage/"
	var objs []object
	for i := range outageUploads {
		g := goodConfigs[i%len(goodConfigs)]
		key := fmt.Sprintf("%so-%02d%s", prefix, i, path.Ext(g.file))
		objs = append(objs, object{key, fixture(t, g.file)})
		remove := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: time.Duration(i+1) * 200 * time.Millisecond, Times: 1,
			Match: func(r *http.Request, _ []byte) bool { return s.isGet(r, key) }})
		defer remove()
	}
	ups := s.putAll(t, objs)
	var want []expect
	for _, u := range ups {
		want = append(want, expect{u, "succeeded"})
	}
	waitFor(t, "the drain under way", 2*time.Minute, func() (bool, string, error) {
		recs, err := s.recordsUnder(t.Context(), prefix)
		return len(recs) >= 3, fmt.Sprintf("%d records; tasks: %s", len(recs), s.taskSummary()), err
	})
	var resets atomic.Int64
	remove := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Reset,
		Match: func(*http.Request, []byte) bool { resets.Add(1); return true }})
	before, err := s.recordsUnder(t.Context(), prefix)
	if err != nil {
		remove()
		t.Fatal(err)
	}
	// The outage's length is the fault itself, not a wait for something.
	select {
	case <-time.After(5 * time.Second):
	case <-t.Context().Done():
	}
	remove()
	if resets.Load() == 0 {
		t.Fatal("the outage reset no request: nothing was talking to the emulator")
	}
	recs := s.waitSettled(t, prefix, want, visibilitySeconds*time.Second+2*time.Minute)
	if d := s.deadLetters(t, prefix); len(d) > 0 {
		t.Errorf("DLQ holds %v, want nothing from the outage", d)
	}
	t.Logf("outage: %d requests reset; %d of %d runs were done before it, all %d after", resets.Load(), len(before), len(ups), len(recs))
}

// sameKeyTwice proves run identity as docs/consumer.md defines it: a run
// is one upload (the object version), not one key or one content. A key
// uploaded twice with different content runs twice, each run on its own
// version's content (a tree, then a forest), and the version folder's
// pointer names the later upload's run; a key uploaded twice with the same
// bytes also runs twice — two records with distinct run ids and the same
// config hash — and, the config's seeds being fixed, both runs wrote the
// same model.json byte for byte.
func (s *stack) sameKeyTwice(t *testing.T) {
	t.Helper()
	const prefix = "configs/twice/"
	first := s.put(t, prefix+"changed.yaml", fixture(t, "twice/first.yaml"))
	// Which of two uploads of a key is the later one, the consumer reads
	// from the events' S3 sequencers, then their times (whole seconds).
	// moto gives every event the same sequencer, so the second upload is
	// made in a later second than the first, as S3's sequencer would tell
	// it apart in AWS.
	waitFor(t, "the next second", 2*time.Second, func() (bool, string, error) {
		return time.Now().Truncate(time.Second).After(first.done.Truncate(time.Second)), "", nil
	})
	changed := []upload{first, s.put(t, prefix+"changed.yaml", fixture(t, "twice/second.yaml"))}
	same := []upload{
		s.put(t, prefix+"same.yaml", fixture(t, "good/dt-gini.yaml")),
		s.put(t, prefix+"same.yaml", fixture(t, "good/dt-gini.yaml")),
	}
	var want []expect
	for _, u := range append(append([]upload(nil), changed...), same...) {
		want = append(want, expect{u, "succeeded"})
	}
	recs := s.waitSettled(t, prefix, want, 2*time.Minute)

	c1, _ := recordOf(recs, changed[0])
	c2, _ := recordOf(recs, changed[1])
	if c1.ModelType != "DecisionTreeClassifier" || c2.ModelType != "RandomForestClassifier" || c1.ConfigSHA256 == c2.ConfigSHA256 {
		t.Errorf("changed content: runs %s (%s, config %.12s) and %s (%s, config %.12s), want a tree then a forest from two different configs",
			c1.RunID, c1.ModelType, c1.ConfigSHA256, c2.RunID, c2.ModelType, c2.ConfigSHA256)
	}
	if p := s.pointer(t, "twice-v1"); p.RunID != c2.RunID {
		t.Errorf("artifacts/twice-v1/latest.json names run %s, want %s of the later upload", p.RunID, c2.RunID)
	}

	s1, _ := recordOf(recs, same[0])
	s2, _ := recordOf(recs, same[1])
	if s1.ConfigSHA256 == "" || s1.ConfigSHA256 != s2.ConfigSHA256 {
		t.Errorf("same content: config hashes %q and %q, want equal", s1.ConfigSHA256, s2.ConfigSHA256)
	}
	m1, m2 := s.artifact(t, s1, "model.json"), s.artifact(t, s2, "model.json")
	if !bytes.Equal(m1, m2) {
		t.Errorf("same content with fixed seeds: runs %s and %s wrote different model.json", s1.RunID, s2.RunID)
	}
}

// artifact reads one of a run's artifacts by file name.
func (s *stack) artifact(t *testing.T, r runRecord, name string) []byte {
	t.Helper()
	for _, a := range r.Artifacts {
		if path.Base(a) == name {
			b, err := s.get(t.Context(), a)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("run %s lists no %s in %q", r.RunID, name, r.Artifacts)
	return nil
}

// deletedBeforeProcessing proves that a config deleted between its event
// and its job is never a silent drop. Deleted the usual way (a delete
// marker), the version its event announced still exists and is what the
// job trains on (docs/consumer.md: a job reads exactly the announced
// version): one succeeded record for that version. With the version itself
// deleted, the job cannot read it: one permanent failure record naming the
// missing version and one DLQ original with that reason. The deletes land
// while the jobs wait: held reads (the fault proxy holds each config read
// for 3 s and the test deletes meanwhile), or, with holdReads false (cron),
// uploads made right after a schedule fire, which wait for the next one.
func (s *stack) deletedBeforeProcessing(t *testing.T, holdReads bool) {
	t.Helper()
	const prefix = "configs/deleted/"
	marker, version := prefix+"marker.yaml", prefix+"version.yaml"
	var nextFire time.Time
	var heldMarker, heldVersion atomic.Bool
	if holdReads {
		for key, held := range map[string]*atomic.Bool{marker: &heldMarker, version: &heldVersion} {
			remove := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: 3 * time.Second, Times: 1,
				Match: func(r *http.Request, _ []byte) bool {
					ok := s.isGet(r, key)
					if ok {
						held.Store(true)
					}
					return ok
				}})
			defer remove()
		}
	} else {
		nextFire = s.quietBeforeFire(t, 3*time.Second)
	}
	um := s.put(t, marker, fixture(t, "good/dt-gini.yaml"))
	uv := s.put(t, version, fixture(t, "good/rf-small.yaml"))
	if holdReads {
		waitFor(t, "both config reads held", 2*time.Minute, func() (bool, string, error) {
			return heldMarker.Load() && heldVersion.Load(), fmt.Sprintf("held: %v, %v; tasks: %s", heldMarker.Load(), heldVersion.Load(), s.taskSummary()), nil
		})
	}
	s.remove(t, marker, "")
	s.remove(t, version, uv.versionID)
	if !holdReads {
		if time.Now().After(nextFire) {
			t.Fatalf("the deletes came after the schedule fire at %s: the test is too slow to prove anything", nextFire)
		}
		if recs, err := s.recordsUnder(t.Context(), prefix); err != nil || len(recs) > 0 {
			t.Fatalf("records before the fire: %v, %v", recs, err)
		}
	}
	recs := s.waitSettled(t, prefix, []expect{{um, "succeeded"}, {uv, "failed"}}, 2*time.Minute)
	r, _ := recordOf(recs, uv)
	if !r.Permanent || !strings.Contains(r.Error, "NoSuchVersion") {
		t.Errorf("%s: failure record permanent=%v error %q, want a permanent failure naming the missing version", version, r.Permanent, r.Error)
	}
	dead := s.deadLetters(t, prefix)
	if len(dead) != 1 || dead[0].key != version || !strings.Contains(dead[0].reason, "NoSuchVersion") {
		t.Errorf("DLQ originals %+v, want exactly one for %s with the missing version as the reason", dead, version)
	}
}

// dispatchTasks is how many tasks the dispatcher starts for a backlog:
// ceil(backlog/messagesPerTask), capped at maxTasks.
func dispatchTasks(backlog int) int {
	return min(maxTasks, int(math.Ceil(float64(backlog)/messagesPerTask)))
}
