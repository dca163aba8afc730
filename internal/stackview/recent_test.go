package stackview

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// bucket is an in-memory bucket that answers LIST as S3 does (keys in
// order, MaxKeys, continuation) and counts what it serves.
type bucket struct {
	objects map[string][]byte
	keys    []string // sorted
	listed  int      // keys returned by LISTs
}

func newBucket() *bucket { return &bucket{objects: map[string][]byte{}} }

func (b *bucket) put(key string, body []byte) {
	if _, ok := b.objects[key]; !ok {
		i, _ := slices.BinarySearch(b.keys, key)
		b.keys = slices.Insert(b.keys, i, key)
	}
	b.objects[key] = body
}

func (b *bucket) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	start, _ := slices.BinarySearch(b.keys, aws.ToString(in.Prefix))
	if tok := aws.ToString(in.ContinuationToken); tok != "" {
		start, _ = strconv.Atoi(tok)
	}
	max := int(aws.ToInt32(in.MaxKeys))
	if max <= 0 || max > 1000 {
		max = 1000
	}
	out := &s3.ListObjectsV2Output{}
	i := start
	for ; i < len(b.keys) && strings.HasPrefix(b.keys[i], aws.ToString(in.Prefix)); i++ {
		if len(out.Contents) == max {
			out.IsTruncated, out.NextContinuationToken = aws.Bool(true), aws.String(strconv.Itoa(i))
			break
		}
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(b.keys[i])})
	}
	b.listed += len(out.Contents)
	return out, nil
}

func (b *bucket) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	body, ok := b.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(body))}, nil
}

// runID is the i-th test run id.
func testRunID(i int) string { return fmt.Sprintf("%032x", i) }

// addRun writes a run's index entries as the consumer does: started at,
// ended a second later with status (none when "").
func (b *bucket) addRun(t testing.TB, i int, at time.Time, status string) {
	t.Helper()
	id := testRunID(i)
	e := runrecord.Entry{Format: runrecord.EntryFormat, RunID: id, Status: runrecord.StatusRunning, Key: fmt.Sprintf("configs/c%d.yaml", i), StartedAt: at}
	body, _ := json.Marshal(e)
	b.put(runrecord.EntryKey(names.RecentPrefix, at, id, e.Status), body)
	if status == "" {
		return
	}
	e.Status, e.FinishedAt = status, at.Add(time.Second)
	body, _ = json.Marshal(e)
	b.put(runrecord.EntryKey(names.RecentPrefix, e.FinishedAt, id, status), body)
}

// A refresh reads a bounded window of the index, whatever its size: with
// 10,000 runs (20,000 entries), the 20 newest cost one LIST and 20 GETs,
// and the next refresh one LIST and only what is new.
func TestRecentIsBoundedWithTenThousandRuns(t *testing.T) {
	t.Parallel()
	b := newBucket()
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 10000 {
		status := runrecord.StatusSucceeded
		if i%7 == 0 {
			status = runrecord.StatusFailed
		}
		b.addRun(t, i, t0.Add(time.Duration(i)*time.Minute), status)
	}
	r := &Recent{API: b, Bucket: "b"}
	runs, err := r.Runs(t.Context(), 20, RecentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 20 || runs[0].RunID != testRunID(9999) || runs[19].RunID != testRunID(9980) {
		t.Fatalf("got %d runs from %s to %s, want the 20 newest, newest first", len(runs), runs[0].RunID, runs[len(runs)-1].RunID)
	}
	for _, e := range runs {
		if e.Status == runrecord.StatusRunning {
			t.Errorf("run %s: the running entry, want the newer final one", e.RunID)
		}
	}
	if s := r.Stats(); s.Lists != 1 || s.Gets != 20 || b.listed > keysPerRun*20 {
		t.Errorf("first refresh: %+v and %d keys listed, want 1 LIST of at most %d keys and 20 GETs", s, b.listed, keysPerRun*20)
	}
	if _, err := r.Runs(t.Context(), 20, RecentFilter{}); err != nil {
		t.Fatal(err)
	}
	b.addRun(t, 10000, t0.Add(10000*time.Minute), "")
	again, err := r.Runs(t.Context(), 20, RecentFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Lists != 3 || s.Gets != 21 {
		t.Errorf("after two more refreshes and one new run: %+v, want 3 LISTs and 21 GETs", s)
	}
	if again[0].RunID != testRunID(10000) || again[0].Status != runrecord.StatusRunning {
		t.Errorf("newest %+v, want the new run, running", again[0])
	}
}

func TestRecentFilters(t *testing.T) {
	t.Parallel()
	b := newBucket()
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 50 {
		status := runrecord.StatusSucceeded
		if i%5 == 0 {
			status = runrecord.StatusFailed
		}
		b.addRun(t, i, t0.Add(time.Duration(i)*time.Minute), status)
	}
	r := &Recent{API: b, Bucket: "b"}
	failed, err := r.Runs(t.Context(), 3, RecentFilter{Failed: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range failed {
		ids = append(ids, e.RunID)
	}
	if want := []string{testRunID(45), testRunID(40), testRunID(35)}; !slices.Equal(ids, want) {
		t.Errorf("failed runs %v, want %v", ids, want)
	}
	since, err := r.Runs(t.Context(), 100, RecentFilter{Since: t0.Add(47 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if len(since) != 3 {
		t.Errorf("%d runs since minute 47, want 3 (47, 48, 49)", len(since))
	}
	e, err := r.Find(t.Context(), testRunID(12))
	if err != nil || e.RunID != testRunID(12) || e.Status != runrecord.StatusSucceeded {
		t.Errorf("Find = %+v, %v", e, err)
	}
	if _, err := r.Find(t.Context(), testRunID(999)); !errors.Is(err, ErrNotRecent) {
		t.Errorf("Find of an unknown run: %v, want ErrNotRecent", err)
	}
}

// A reader that only wants ended runs reads no running entry: one GET per
// ended run, none for the runs in progress.
func TestRecentEndedReadsNoRunningEntry(t *testing.T) {
	t.Parallel()
	b := newBucket()
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 30 {
		status := runrecord.StatusSucceeded
		switch {
		case i%3 == 0:
			status = "" // still running
		case i%5 == 0:
			status = runrecord.StatusFailed
		}
		b.addRun(t, i, t0.Add(time.Duration(i)*time.Minute), status)
	}
	r := &Recent{API: b, Bucket: "b"}
	runs, err := r.Runs(t.Context(), 100, RecentFilter{Ended: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 20 {
		t.Errorf("%d runs, want the 20 that ended", len(runs))
	}
	for _, e := range runs {
		if e.Status == runrecord.StatusRunning {
			t.Errorf("run %s is running, want only ended runs", e.RunID)
		}
	}
	if s := r.Stats(); s.Gets != 20 {
		t.Errorf("%d GETs, want 20: one per ended run, none for the 10 running", s.Gets)
	}
}
