package smoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// recordClockSkew is how much older than the upload (by S3's clock) a
// record may look and still be read: S3's and this machine's clocks differ.
const recordClockSkew = 15 * time.Minute

// scanEvery is how often the records are listed when the run id is
// predicted (a safety net for an event without the version id).
const scanEvery = 30 * time.Second

// settleWait bounds the wait for the work queue to empty after the record
// (a failed run's message reaches the DLQ after its record).
const settleWait = time.Minute

// finder looks for the run record of one uploaded key: by its predicted
// run id when the bucket is versioned, else (and every scanEvery) by
// reading the records written since the upload.
type finder struct {
	s3          S3API
	bucket, key string
	since       time.Time
	// predicted is the record key the run id predicts ("" if unknown).
	predicted string
	// found is the record key known to be the upload's.
	found string
	// checked maps record keys read and found to be other uploads' to
	// their ETags (re-read only when rewritten).
	checked  map[string]string
	lastScan time.Time
}

// find returns the upload's record as it stands now, or nil.
func (f *finder) find(ctx context.Context) (*runrecord.Record, error) {
	if f.found != "" {
		return f.read(ctx, f.found) // read again: a retry may rewrite it
	}
	if f.predicted != "" {
		r, err := f.read(ctx, f.predicted)
		if r != nil {
			f.found = f.predicted
		}
		if r != nil || err != nil || time.Since(f.lastScan) < scanEvery {
			return r, err
		}
	}
	return f.scan(ctx)
}

// scan reads the records written since the upload that it has not read yet.
func (f *finder) scan(ctx context.Context) (*runrecord.Record, error) {
	f.lastScan = time.Now()
	p := s3.NewListObjectsV2Paginator(f.s3, &s3.ListObjectsV2Input{Bucket: aws.String(f.bucket), Prefix: aws.String(names.RecordPrefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list run records: %w", err)
		}
		for _, o := range page.Contents {
			k, etag := aws.ToString(o.Key), aws.ToString(o.ETag)
			if !strings.HasSuffix(k, ".json") || aws.ToTime(o.LastModified).Before(f.since) || f.checked[k] == etag {
				continue
			}
			r, err := f.read(ctx, k)
			if err != nil {
				return nil, err
			}
			if r != nil {
				f.found = k
				return r, nil
			}
			f.checked[k] = etag
		}
	}
	return nil, nil
}

// read reads one record; nil when it does not exist or is another upload's.
func (f *finder) read(ctx context.Context, key string) (*runrecord.Record, error) {
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(key)})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run record %s: %w", key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read run record %s: %w", key, err)
	}
	var r runrecord.Record
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("parse run record %s: %w", key, err)
	}
	if r.Source.Key != f.key {
		return nil, nil
	}
	return &r, nil
}

// isNotFound reports whether an S3 error says the key does not exist.
func isNotFound(err error) bool {
	var nsk *s3types.NoSuchKey
	var nf *s3types.NotFound
	var api smithy.APIError
	return errors.As(err, &nsk) || errors.As(err, &nf) ||
		errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}

// watch waits for one upload's run, printing progress.
type watch struct {
	o               *Options
	queue           string
	finder          *finder
	start, deadline time.Time
	lastPrint       time.Time
}

// untilRecord polls until the upload's record is final — succeeded,
// skipped, or failed for good (a transient failure is retried by the
// queue and may still succeed) — or the deadline passes. It returns the
// record (nil if none) and the queue's last depth.
func (w *watch) untilRecord(ctx context.Context) (*runrecord.Record, stackview.QueueDepth, error) {
	var (
		rec  *runrecord.Record
		last stackview.QueueDepth
	)
	for {
		d, err := stackview.Depth(ctx, w.o.SQS, w.queue)
		if err != nil {
			return nil, last, err
		}
		last = d
		if rec, err = w.finder.find(ctx); err != nil {
			return nil, last, err
		}
		final := rec != nil && (rec.Status != runrecord.StatusFailed || rec.Permanent)
		w.progress(d, rec, final)
		if final {
			return rec, last, nil
		}
		if !time.Now().Before(w.deadline) {
			if rec == nil && w.finder.predicted != "" {
				// The event may have named no version: look once more by source key.
				if rec, err = w.finder.scan(ctx); err != nil {
					return nil, last, err
				}
			}
			return rec, last, nil
		}
		if err := sleep(ctx, min(w.o.Poll, time.Until(w.deadline))); err != nil {
			return nil, last, err
		}
	}
}

// untilQueueSettles waits (up to settleWait, within the deadline) until the
// work queue has nothing visible or in flight, so that a failed message has
// reached the dead-letter queue before it is read. Other uploads can keep a
// shared queue busy; the wait then simply ends.
func (w *watch) untilQueueSettles(ctx context.Context) error {
	end := time.Now().Add(settleWait)
	for {
		d, err := stackview.Depth(ctx, w.o.SQS, w.queue)
		if err != nil {
			return err
		}
		if d.Visible+d.InFlight == 0 || time.Now().After(end) {
			return nil
		}
		w.progress(d, nil, false)
		if err := sleep(ctx, w.o.Poll); err != nil {
			return err
		}
	}
}

// progress prints a line every few seconds, and when the record is final.
func (w *watch) progress(d stackview.QueueDepth, rec *runrecord.Record, final bool) {
	if !final && time.Since(w.lastPrint) < progressEvery {
		return
	}
	w.lastPrint = time.Now()
	state := "not yet"
	if rec != nil {
		state = rec.Status
		if !final {
			state += " (transient: waiting for the retry)"
		}
	}
	fmt.Fprintf(w.o.Out, "  %6s  queue %d visible / %d in flight · record: %s\n",
		time.Since(w.start).Round(time.Second), d.Visible, d.InFlight, state)
}

// progressEvery is the time between two progress lines.
const progressEvery = 5 * time.Second

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
