package localcloud

import (
	"context"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// Status is one progress reading of a running local cloud.
type Status struct {
	Queue, DLQ stackview.QueueDepth
	// Running is the number of RUNNING local tasks.
	Running int
	// Records are every run record so far; Succeeded and Failed count them.
	Records           []runrecord.Record
	Succeeded, Failed int
}

// Snapshot reads the queue, the DLQ, the local tasks and the run records.
func Snapshot(ctx context.Context, c *Cloud) (Status, error) {
	var s Status
	var err error
	out := c.Stack().Outputs
	if s.Queue, err = stackview.Depth(ctx, c.Clients().SQS, out[names.OutputQueueURL]); err != nil {
		return s, err
	}
	if s.DLQ, err = stackview.Depth(ctx, c.Clients().SQS, out[names.OutputDLQURL]); err != nil {
		return s, err
	}
	for _, t := range c.Tasks() {
		if t.LastStatus == "RUNNING" {
			s.Running++
		}
	}
	if s.Records, err = stackview.Records(ctx, c.Clients().S3, out[names.OutputBucket]); err != nil {
		return s, err
	}
	for _, r := range s.Records {
		switch r.Status {
		case "succeeded":
			s.Succeeded++
		case "failed":
			s.Failed++
		}
	}
	return s, nil
}

// Settled reports whether every uploaded key has a run record and the
// queue holds nothing visible or in flight.
func (s Status) Settled(uploaded map[string]time.Time) bool {
	have := map[string]bool{}
	for _, r := range s.Records {
		have[r.Source.Key] = true
	}
	for k := range uploaded {
		if !have[k] {
			return false
		}
	}
	return s.Queue.Visible == 0 && s.Queue.InFlight == 0
}
