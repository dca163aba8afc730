package stackview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// Bounds of a read of the recent-runs index.
const (
	// keysPerRun is how many index keys one LIST asks for per run wanted:
	// a run has two entries (started, ended), more with retries.
	keysPerRun = 4
	// maxListKeys is S3's most keys per LIST.
	maxListKeys = 1000
	// maxPages bounds the LISTs of one read when runs have many entries.
	maxPages = 3
)

// Recent reads the recent-runs index (runrecord.Entry under
// names.RecentPrefix) with a bounded number of requests, whatever the
// number of runs the bucket holds: one LIST of keysPerRun×n keys (a few
// more pages only while fewer than n runs are found, at most maxPages), and
// one GET per entry it has not read before — entries are never rewritten,
// so a reader that refreshes reads only what is new. The zero value is
// not usable: set API and Bucket. Safe for concurrent use.
type Recent struct {
	API    Objects
	Bucket string

	mu    sync.Mutex
	cache map[string]runrecord.Entry // by key
	stats RequestStats
}

// RequestStats counts a reader's S3 requests.
type RequestStats struct{ Lists, Gets int }

// Stats returns the requests made so far.
func (r *Recent) Stats() RequestStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// RecentFilter narrows Runs.
type RecentFilter struct {
	// Since, when set, stops at entries written before it.
	Since time.Time
	// Failed keeps only runs whose newest entry says failed.
	Failed bool
	// Ended keeps only runs whose newest entry says they ended (succeeded,
	// failed or skipped): the entries of runs still running are not read.
	Ended bool
}

// Runs returns the newest entry of each of the n most recent runs that
// pass f, newest first (fewer when the index holds fewer).
func (r *Recent) Runs(ctx context.Context, n int, f RecentFilter) ([]runrecord.Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	kept := 0
	keys, err := r.newest(ctx, min(maxListKeys, keysPerRun*n), maxPages, func(k indexKey) (keep, stop bool) {
		if !f.Since.IsZero() && k.at.Before(f.Since) {
			return false, true
		}
		if f.Failed && k.status != runrecord.StatusFailed {
			return false, false
		}
		if f.Ended && k.status == runrecord.StatusRunning {
			return false, false
		}
		kept++
		return true, kept >= n
	})
	if err != nil {
		return nil, err
	}
	out := make([]runrecord.Entry, 0, len(keys))
	for _, k := range keys {
		e, err := r.entry(ctx, k.key)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// ErrNotRecent is Find's error for a run with no entry among the newest.
var ErrNotRecent = errors.New("no entry among the recent runs")

// Find returns the newest entry of runID among the newest maxListKeys
// entries of the index: one LIST, and a GET unless read before.
func (r *Recent) Find(ctx context.Context, runID string) (runrecord.Entry, error) {
	keys, err := r.newest(ctx, maxListKeys, 1, func(k indexKey) (bool, bool) { return k.runID == runID, k.runID == runID })
	if err != nil {
		return runrecord.Entry{}, err
	}
	for _, k := range keys {
		if k.runID == runID {
			return r.entry(ctx, k.key)
		}
	}
	return runrecord.Entry{}, fmt.Errorf("run %s: %w", runID, ErrNotRecent)
}

// indexKey is one parsed key of the index.
type indexKey struct {
	key, runID, status string
	at                 time.Time
}

// newest lists index keys newest first and offers each run's newest key to
// visit, which says whether to keep it and whether to stop; at most pages
// LISTs.
func (r *Recent) newest(ctx context.Context, pageSize, pages int, visit func(indexKey) (keep, stop bool)) ([]indexKey, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(r.Bucket), Prefix: aws.String(names.RecentPrefix), MaxKeys: aws.Int32(int32(pageSize))}
	seen := map[string]bool{}
	var out []indexKey
	for range pages {
		r.count(func(s *RequestStats) { s.Lists++ })
		page, err := r.API.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("list recent runs: %w", err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			at, runID, status, ok := runrecord.ParseEntryKey(strings.TrimPrefix(key, names.RecentPrefix))
			if !ok || seen[runID] {
				continue
			}
			seen[runID] = true
			k := indexKey{key: key, runID: runID, status: status, at: at}
			keep, stop := visit(k)
			if keep {
				out = append(out, k)
			}
			if stop {
				return out, nil
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	return out, nil
}

// entry reads one index entry, from the cache when read before.
func (r *Recent) entry(ctx context.Context, key string) (runrecord.Entry, error) {
	r.mu.Lock()
	e, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		return e, nil
	}
	r.count(func(s *RequestStats) { s.Gets++ })
	obj, err := r.API.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.Bucket), Key: aws.String(key)})
	if err != nil {
		return runrecord.Entry{}, fmt.Errorf("read %s: %w", key, err)
	}
	defer obj.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(obj.Body, 64<<10))
	if err != nil {
		return runrecord.Entry{}, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return runrecord.Entry{}, fmt.Errorf("parse %s: %w", key, err)
	}
	r.mu.Lock()
	if r.cache == nil {
		r.cache = map[string]runrecord.Entry{}
	}
	r.cache[key] = e
	r.mu.Unlock()
	return e, nil
}

func (r *Recent) count(f func(*RequestStats)) {
	r.mu.Lock()
	f(&r.stats)
	r.mu.Unlock()
}

// ErrNoRecord is matched by RecordOf's error for a run without a record
// (not finished, or unknown).
var ErrNoRecord = errors.New("no run record")

// RecordOf reads the run record of runID: one GET.
func RecordOf(ctx context.Context, api Objects, bucket, runID string) (runrecord.Record, error) {
	key := names.RecordPrefix + runID + ".json"
	obj, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *s3types.NoSuchKey
	if errors.As(err, &nsk) {
		return runrecord.Record{}, fmt.Errorf("run %s: %w", runID, ErrNoRecord)
	}
	if err != nil {
		return runrecord.Record{}, fmt.Errorf("read %s: %w", key, err)
	}
	defer obj.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(obj.Body, 1<<20))
	if err != nil {
		return runrecord.Record{}, fmt.Errorf("read %s: %w", key, err)
	}
	var r runrecord.Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return runrecord.Record{}, fmt.Errorf("parse %s: %w", key, err)
	}
	return r, nil
}
