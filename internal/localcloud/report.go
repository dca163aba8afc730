package localcloud

import (
	"context"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/runrecord"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// Status is one progress reading of a running local cloud.
type Status struct {
	Queue, DLQ stackview.QueueDepth
	// Running is the number of RUNNING local tasks, Starting of those on
	// their way (PENDING).
	Running, Starting int
	// Runs are the newest index entries (stackview.Recent) of the recent
	// runs that ended; Succeeded and Failed count those that ended so.
	Runs              []runrecord.Entry
	Succeeded, Failed int
}

// Snapshot reads the queue, the DLQ, the local tasks and the newest window
// ended runs of the recent-runs index through recent — one LIST and a GET
// per newly ended run, however many runs the bucket holds. A running
// run's entry is not read: the key says it is running, and Settled and
// the counts need only runs that ended; every GET spared is one request
// less to the moto_server the tasks are waiting on.
func Snapshot(ctx context.Context, c *Cloud, recent *stackview.Recent, window int) (Status, error) {
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
		switch t.LastStatus {
		case ecsemu.StatusRunning:
			s.Running++
		case ecsemu.StatusPending:
			s.Starting++
		}
	}
	if s.Runs, err = endedRuns(ctx, recent, window); err != nil {
		return s, err
	}
	for _, r := range s.Runs {
		switch r.Status {
		case runrecord.StatusSucceeded:
			s.Succeeded++
		case runrecord.StatusFailed:
			s.Failed++
		}
	}
	return s, nil
}

// endedRuns are the newest window runs of the index that ended.
func endedRuns(ctx context.Context, recent *stackview.Recent, window int) ([]runrecord.Entry, error) {
	return recent.Runs(ctx, window, stackview.RecentFilter{Ended: true})
}

// Settled reports whether every key uploaded has a run that ended since
// its upload, and the queue holds nothing visible or in flight.
func (s Status) Settled(uploaded map[string]time.Time) bool {
	ended := map[string]bool{}
	for _, r := range s.Runs {
		if r.Status != runrecord.StatusRunning && !r.FinishedAt.Before(uploaded[r.Key]) {
			ended[r.Key] = true
		}
	}
	for k := range uploaded {
		if !ended[k] {
			return false
		}
	}
	return s.Queue.Visible == 0 && s.Queue.InFlight == 0
}
