package localcloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// index is an in-memory recent-runs index that counts the GETs it serves.
type index struct {
	objects map[string][]byte
	gets    int
}

func (x *index) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	var keys []string
	for k := range x.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	for _, k := range keys[:min(len(keys), int(aws.ToInt32(in.MaxKeys)))] {
		out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k)})
	}
	return out, nil
}

func (x *index) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	x.gets++
	b, ok := x.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(b))}, nil
}

func (x *index) add(t *testing.T, i int, at time.Time, status string) {
	t.Helper()
	e := runrecord.Entry{Format: runrecord.EntryFormat, RunID: fmt.Sprintf("%032x", i), Status: status, Key: fmt.Sprintf("configs/c%d.yaml", i), StartedAt: at}
	if status != runrecord.StatusRunning {
		e.FinishedAt = at
	}
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	x.objects[runrecord.EntryKey(names.RecentPrefix, at, e.RunID, status)] = body
}

// The progress of a local cloud reads the entries of ended runs only: a
// run in progress costs its LIST line, not a GET from the moto_server its
// tasks are waiting on.
func TestEndedRunsReadsNoRunningEntry(t *testing.T) {
	t.Parallel()
	x := &index{objects: map[string][]byte{}}
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		x.add(t, i, t0.Add(time.Duration(i)*time.Second), runrecord.StatusRunning)
		if i < 3 {
			x.add(t, i, t0.Add(time.Duration(i)*time.Second+time.Millisecond), runrecord.StatusSucceeded)
		}
	}
	runs, err := endedRuns(t.Context(), &stackview.Recent{API: x, Bucket: "b"}, 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 || x.gets != 3 {
		t.Errorf("%d runs read with %d GETs, want the 3 that ended with 3 GETs (none for the 2 running)", len(runs), x.gets)
	}
	uploaded := map[string]time.Time{}
	for i := range 3 {
		uploaded[fmt.Sprintf("configs/c%d.yaml", i)] = t0
	}
	if !(Status{Runs: runs}).Settled(uploaded) {
		t.Error("not settled, want settled: every upload's run ended and the queue is empty")
	}
}
