package job

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/consumer/failure"
	"github.com/edp-pipelines/edp/consumer/store"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// The tests in this file run two jobs of the same run_config.version at
// once against one in-memory bucket whose writes wait for the test's
// go-ahead, so the test decides how the two runs' writes interleave, and
// which of them fail. After every write a reader looks at the version
// folder as any reader would; it must see either nothing or the complete
// files of one run, never a mix.

// objects is the shared in-memory bucket. Its ETags are S3's for
// single-part uploads (etagOf), as the events of its configs carry them.
type objects struct {
	mu sync.Mutex
	m  map[string]store.Object
}

func newObjects() *objects { return &objects{m: map[string]store.Object{}} }

func (o *objects) Get(_ context.Context, key string) (store.Object, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	obj, ok := o.m[key]
	if !ok {
		return store.Object{}, fmt.Errorf("get %s: %w", key, store.ErrNotFound)
	}
	return obj, nil
}

func (o *objects) Put(ctx context.Context, key string, body []byte, _ string) error {
	return o.put(key, body, nil)
}

func (o *objects) PutIfMatch(ctx context.Context, key string, body []byte, _, etag string) error {
	return o.put(key, body, &etag)
}

// put writes key; with ifMatch set, only if the key's ETag is *ifMatch (""
// meaning absent), as S3's conditional writes do.
func (o *objects) put(key string, body []byte, ifMatch *string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ifMatch != nil {
		cur, ok := o.m[key]
		if (*ifMatch == "" && ok) || (*ifMatch != "" && (!ok || cur.ETag != *ifMatch)) {
			return fmt.Errorf("put %s: %w", key, store.ErrPreconditionFailed)
		}
	}
	o.m[key] = store.Object{Body: bytes.Clone(body), ETag: etagOf(body)}
	return nil
}

// write is one write a run asks for, held until the test lets it happen.
type write struct {
	run     string
	key     string
	body    []byte
	ifMatch *string
	done    chan error
}

// gated is one run's view of the bucket: reads go straight through, writes
// wait in line for the test.
type gated struct {
	run    string
	o      *objects
	writes chan<- *write
}

func (g gated) Get(ctx context.Context, key string) (store.Object, error) { return g.o.Get(ctx, key) }

func (g gated) Put(_ context.Context, key string, body []byte, _ string) error {
	return g.submit(key, body, nil)
}

func (g gated) PutIfMatch(_ context.Context, key string, body []byte, _, etag string) error {
	return g.submit(key, body, &etag)
}

func (g gated) submit(key string, body []byte, ifMatch *string) error {
	w := &write{run: g.run, key: key, body: body, ifMatch: ifMatch, done: make(chan error)}
	g.writes <- w
	return <-w.done
}

// errInjected is the failure the test gives a write it fails.
var errInjected = errors.New("injected: connection reset")

// outcome is what becomes of a write the test lets go.
type outcome int

const (
	// written: the write happens and the writer hears so.
	written outcome = iota
	// failed: nothing is written and the writer gets an error.
	failed
	// lost: the write happens but the writer gets an error (the response
	// was lost), as S3 clients see after a timeout.
	lost
)

// schedule decides, at each step, which of the runs waiting to write goes
// next (ready is sorted), and what becomes of its write.
type schedule func(step int, ready []string, next map[string]*write) (run string, o outcome)

// interleave runs each job of jobs (by run name) on its own goroutine
// against o, one write at a time in the order sched picks, calling after
// when a write has happened (or failed) and before its run goes on. A job
// may call Run more than once (a redelivery after a failure). It returns
// once every job has returned.
func interleave(t *testing.T, o *objects, jobs map[string]func(store.Store), sched schedule, after func(step int, w *write, err error)) {
	t.Helper()
	writes := make(chan *write)
	finished := make(chan string)
	for name, job := range jobs {
		go func() {
			job(gated{run: name, o: o, writes: writes})
			finished <- name
		}()
	}
	live := len(jobs)
	next := map[string]*write{}
	for step := 0; live > 0; step++ {
		// Wait until every live run is blocked on a write or has
		// finished, so that the order depends on sched alone.
		for len(next) < live {
			select {
			case w := <-writes:
				next[w.run] = w
			case <-finished:
				live--
			}
		}
		if live == 0 {
			break
		}
		ready := make([]string, 0, len(next))
		for r := range next {
			ready = append(ready, r)
		}
		slices.Sort(ready)
		run, oc := sched(step, ready, next)
		w := next[run]
		delete(next, run)
		err := errInjected
		if oc != failed {
			err = o.put(w.key, w.body, w.ifMatch)
		}
		after(step, w, err)
		if oc == lost {
			err = errInjected
		}
		w.done <- err
	}
}

// alternate lets the runs write in turns, in name order.
func alternate(step int, ready []string, _ map[string]*write) (string, outcome) {
	return ready[step%len(ready)], written
}

// testRun is one job of a test: a config upload and the result of its last
// Run call.
type testRun struct {
	name   string
	config []byte
	src    Source
	res    Result
	err    error
	calls  int
}

// job runs r's upload like the queue would: again after a transient
// failure (a redelivery), at most tries times.
func (r *testRun) job(clock func() time.Time, tries int) func(store.Store) {
	return func(s store.Store) {
		runner := &Runner{In: s, Out: s, Version: "test", Now: clock}
		for range tries {
			r.calls++
			r.res, r.err = runner.Run(context.Background(), r.src)
			if r.err == nil || errors.Is(r.err, failure.ErrPermanent) {
				return
			}
		}
	}
}

// twoUploads returns two uploads of version "v1" with different models:
// "a" uploaded at 12:00, "b" at 12:01 (b is the later upload).
func twoUploads() (a, b *testRun) {
	cfg := func(depth int) []byte {
		return fmt.Appendf(nil, "run_config: {version: v1}\nmodel: {type: DecisionTreeClassifier, params: {max_depth: %d}}\n", depth)
	}
	t0 := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	a = &testRun{name: "a", config: cfg(1)}
	a.src = Source{Bucket: "b", Key: "configs/a.yaml", ETag: etagOf(a.config), Sequencer: "0A", EventTime: t0}
	b = &testRun{name: "b", config: cfg(3)}
	b.src = Source{Bucket: "b", Key: "configs/b.yaml", ETag: etagOf(b.config), Sequencer: "0B", EventTime: t0.Add(time.Minute)}
	return a, b
}

// fixedClock is a clock for runners; a fixed time keeps run.json's
// timings, and so every file, the same whatever the scheduling.
func fixedClock() time.Time { return time.Date(2026, 3, 4, 13, 0, 0, 0, time.UTC) }

// runFiles is the files a reader took from a version folder, by name, and
// the run id run.json names.
type runFiles struct {
	runID string
	files map[string][]byte
}

// solo runs r alone on a fresh bucket and returns what a reader then sees:
// the complete file set of r's run.
func solo(t *testing.T, r *testRun) runFiles {
	t.Helper()
	o := newObjects()
	if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
		t.Fatal(err)
	}
	runner := &Runner{In: o, Version: "test", Now: fixedClock}
	if _, err := runner.Run(context.Background(), r.src); err != nil {
		t.Fatalf("run %s alone: %v", r.name, err)
	}
	got, ok := readVersion(t, o, "artifacts/v1/")
	if !ok {
		t.Fatalf("run %s alone published nothing", r.name)
	}
	return got
}

// readVersion is what a reader of a version folder does: it reads the
// pointer once, then every file of the run the pointer names. ok is false
// when no run is published. A file the pointer lists but the reader cannot
// find fails the test.
func readVersion(t *testing.T, s store.Store, folder string) (runFiles, bool) {
	t.Helper()
	ctx := context.Background()
	p, err := ReadPointer(ctx, s, folder)
	if errors.Is(err, store.ErrNotFound) {
		return runFiles{}, false
	}
	if err != nil {
		t.Fatalf("read pointer: %v", err)
	}
	got := runFiles{files: map[string][]byte{}}
	for _, name := range p.Files {
		obj, err := s.Get(ctx, p.FileKey(folder, name))
		if err != nil {
			t.Fatalf("the pointer names run %s, whose %s cannot be read: %v", p.RunID, name, err)
		}
		got.files[name] = obj.Body
	}
	var rec runrecord.Record
	if err := json.Unmarshal(got.files[runrecord.RunFile], &rec); err != nil {
		t.Fatalf("run.json of run %s: %v", p.RunID, err)
	}
	got.runID = rec.RunID
	return got, true
}

// whose returns the name of the run of want whose complete files got is,
// or "" with what differs.
func whose(got runFiles, want map[string]runFiles) (string, string) {
	var diffs []string
	for name, w := range want {
		var d []string
		if got.runID != w.runID {
			d = append(d, fmt.Sprintf("run.json names run %s", got.runID))
		}
		for f, body := range w.files {
			if !bytes.Equal(got.files[f], body) {
				d = append(d, f)
			}
		}
		if len(got.files) != len(w.files) {
			d = append(d, fmt.Sprintf("%d files, want %d", len(got.files), len(w.files)))
		}
		if len(d) == 0 {
			return name, ""
		}
		diffs = append(diffs, fmt.Sprintf("not run %s (%s)", name, strings.Join(d, ", ")))
	}
	slices.Sort(diffs)
	return "", strings.Join(diffs, "; ")
}

// coherent returns an after-write check that a reader of o sees nothing
// or exactly one of want's runs, and counts which it saw.
func coherent(t *testing.T, o *objects, want map[string]runFiles, seen map[string]int) func(int, *write, error) {
	return func(step int, w *write, err error) {
		t.Helper()
		got, ok := readVersion(t, o, "artifacts/v1/")
		if !ok {
			seen[""]++
			return
		}
		name, diff := whose(got, want)
		if name == "" {
			t.Fatalf("step %d (run %s wrote %s, error %v): the reader sees a mix: %s", step, w.run, w.key, err, diff)
		}
		seen[name]++
	}
}

// Two runs of the same version, writing file by file in turns: at every
// step the folder serves nothing or one whole run, and in the end the run
// of the later upload.
func TestInterleavedRunsNeverMix(t *testing.T) {
	t.Parallel()
	a, b := twoUploads()
	want := map[string]runFiles{"a": solo(t, a), "b": solo(t, b)}
	o := newObjects()
	for _, r := range []*testRun{a, b} {
		if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	interleave(t, o, map[string]func(store.Store){"a": a.job(fixedClock, 1), "b": b.job(fixedClock, 1)}, alternate, coherent(t, o, want, seen))
	if a.err != nil || b.err != nil {
		t.Fatalf("runs failed: a %v, b %v", a.err, b.err)
	}
	if got, _ := readVersion(t, o, "artifacts/v1/"); got.runID != want["b"].runID {
		t.Errorf("the folder serves run %s, want b's (%s), the later upload", got.runID, want["b"].runID)
	}
	if seen[""] == 0 || seen["b"] == 0 {
		t.Errorf("reader saw %v: want nothing at first, b in the end", seen)
	}
}

// The later upload's run fails on its last write and is redelivered; the
// other run goes on in between. The folder never mixes them and ends with
// the later upload's run.
func TestLastWriteFailsThenRetried(t *testing.T) {
	t.Parallel()
	a, b := twoUploads()
	want := map[string]runFiles{"a": solo(t, a), "b": solo(t, b)}
	// The key of b's last write when it runs alone: the write to fail.
	last := soloLastWrite(t, b)
	o := newObjects()
	for _, r := range []*testRun{a, b} {
		if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
			t.Fatal(err)
		}
	}
	failedOnce := false
	sched := func(step int, ready []string, next map[string]*write) (string, outcome) {
		run, _ := alternate(step, ready, next)
		if run == "b" && next["b"].key == last && !failedOnce {
			failedOnce = true
			return "b", failed
		}
		return run, written
	}
	seen := map[string]int{}
	interleave(t, o, map[string]func(store.Store){"a": a.job(fixedClock, 1), "b": b.job(fixedClock, 3)}, sched, coherent(t, o, want, seen))
	if !failedOnce || b.calls != 2 {
		t.Fatalf("b's last write failed: %v, b ran %d times; want the failure and one redelivery", failedOnce, b.calls)
	}
	if a.err != nil || b.err != nil {
		t.Fatalf("runs failed: a %v, b %v", a.err, b.err)
	}
	if got, _ := readVersion(t, o, "artifacts/v1/"); got.runID != want["b"].runID {
		t.Errorf("the folder serves run %s, want b's (%s)", got.runID, want["b"].runID)
	}
}

// soloLastWrite returns the key of the last write of r's run alone, the
// recent-runs index aside (its entries are best effort: their failure
// fails nothing).
func soloLastWrite(t *testing.T, r *testRun) string {
	t.Helper()
	o := newObjects()
	if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
		t.Fatal(err)
	}
	var last string
	alone := *r
	interleave(t, o, map[string]func(store.Store){r.name: alone.job(fixedClock, 1)}, alternate, func(_ int, w *write, _ error) {
		if !strings.HasPrefix(w.key, names.RecentPrefix) {
			last = w.key
		}
	})
	return last
}

// The run of the older upload finishes last (a retry, a slow task): it is
// not published over the newer one, and its record says which run the
// version serves instead.
func TestOlderUploadFinishingLastIsNotPublished(t *testing.T) {
	t.Parallel()
	a, b := twoUploads()
	want := map[string]runFiles{"a": solo(t, a), "b": solo(t, b)}
	o := newObjects()
	for _, r := range []*testRun{a, b} {
		if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
			t.Fatal(err)
		}
	}
	bFirst := func(_ int, ready []string, _ map[string]*write) (string, outcome) {
		if slices.Contains(ready, "b") {
			return "b", written
		}
		return ready[0], written
	}
	seen := map[string]int{}
	interleave(t, o, map[string]func(store.Store){"a": a.job(fixedClock, 1), "b": b.job(fixedClock, 1)}, bFirst, coherent(t, o, want, seen))
	if a.err != nil || b.err != nil {
		t.Fatalf("runs failed: a %v, b %v", a.err, b.err)
	}
	if got, _ := readVersion(t, o, "artifacts/v1/"); got.runID != want["b"].runID {
		t.Errorf("the folder serves run %s, want b's (%s): an older upload replaced a newer one", got.runID, want["b"].runID)
	}
	if seen["a"] != 0 {
		t.Errorf("the reader saw run a %d times; it was never the latest upload's", seen["a"])
	}
	if a.res.Status != runrecord.StatusSucceeded || a.res.SupersededBy != want["b"].runID {
		t.Errorf("run a: %+v, want succeeded and superseded by b", a.res)
	}
	if rec := readRecord(t, o, a.res.RecordKey); rec.Status != runrecord.StatusSucceeded || rec.SupersededBy != want["b"].runID {
		t.Errorf("a's record: status %s, superseded_by %q; want succeeded, superseded by b", rec.Status, rec.SupersededBy)
	}
}

// Many seeded random interleavings of the two runs, with random write
// failures, lost responses and redeliveries: never a mix, and whenever
// both runs succeeded, the folder serves the later upload's.
func TestRandomInterleavings(t *testing.T) {
	t.Parallel()
	a0, b0 := twoUploads()
	want := map[string]runFiles{"a": solo(t, a0), "b": solo(t, b0)}
	for seed := range uint64(60) {
		a, b := twoUploads()
		o := newObjects()
		for _, r := range []*testRun{a, b} {
			if err := o.Put(context.Background(), r.src.Key, r.config, ""); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(seed, 9))
		sched := func(_ int, ready []string, _ map[string]*write) (string, outcome) {
			oc := written
			switch rng.IntN(12) {
			case 0:
				oc = failed
			case 1:
				oc = lost
			}
			return ready[rng.IntN(len(ready))], oc
		}
		seen := map[string]int{}
		interleave(t, o, map[string]func(store.Store){"a": a.job(fixedClock, 6), "b": b.job(fixedClock, 6)}, sched, coherent(t, o, want, seen))
		if a.err == nil && b.err == nil {
			if got, _ := readVersion(t, o, "artifacts/v1/"); got.runID != want["b"].runID {
				t.Errorf("seed %d: the folder serves run %s, want b's (%s)", seed, got.runID, want["b"].runID)
			}
		}
	}
}
