package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud/ecsemu"
	"github.com/edp-pipelines/edp/internal/names"
)

// maxWait is the stacks' max wait (edp:maxWaitMinutes) in real time.
const maxWait = time.Duration(maxWaitMinutes) * time.Minute / speedup

// TestAlarmService runs EdpAlarmService, an ECS service in serve mode that
// only the deployed alarms and scaling policies size:
//
//   - Batch (see batch), with the service going 0 → n → 0 by the alarms
//     alone: the new service (1 task, as ECS starts a service without
//     DesiredCount) is first taken to 0 by the idle alarm; the burst,
//     whose config reads are slowed to 500 ms so that the backlog outlasts
//     several alarm periods as a burst of slow jobs does, makes the backlog
//     alarm's step policy raise the desired count above 1 (never above
//     maxTasks); once the queue stays empty the idle alarm takes it back to
//     0, and every task stopped by a scale-in exited 0;
//   - BelowThreshold: 2 configs, fewer than N, wait with the service at 0
//     until the max-wait condition of the backlog alarm holds (10 s at the
//     speed-up), then the service scales out and runs them, and scales in
//     again;
//   - KillMidJob (killMidJob): ECS replaces the killed task and a service
//     task runs the message once it is visible again;
//   - EmulatorOutage (emulatorOutage), SameKeyTwice (sameKeyTwice) and
//     DeletedBeforeProcessing (deletedBeforeProcessing, reads held).
func TestAlarmService(t *testing.T) {
	t.Parallel()
	s := deploy(t, names.StackAlarmService)
	svc := s.serviceName(t)
	t.Run("Batch", func(t *testing.T) {
		s.waitServiceIdle(t, svc)
		w := s.watchDesired(svc)
		b := s.batch(t, batchOptions{readDelay: 500 * time.Millisecond})
		s.waitServiceIdle(t, svc)
		peak, _ := w.stop()
		if peak < 2 || peak > maxTasks {
			t.Errorf("desired count peaked at %d during the burst, want 2..%d", peak, maxTasks)
		}
		var stopped []ecsemu.TaskInfo
		for _, ti := range s.tasksSince(time.Time{}) {
			if ti.Service != svc {
				t.Errorf("task %s started by %q, not by the service", taskID(ti.Arn), ti.StartedBy)
			}
			stopped = append(stopped, ti)
		}
		checkExitedCleanly(t, stopped)
		t.Logf("service: desired 0 → %d → 0 for %d configs; %d tasks in all", peak, len(b.matching()), len(stopped))
	})
	t.Run("BelowThreshold", func(t *testing.T) {
		s.waitServiceIdle(t, svc)
		w := s.watchDesired(svc)
		const prefix = "configs/below/"
		ups := []upload{
			s.put(t, prefix+"a.yaml", fixture(t, "good/dt-gini.yaml")),
			s.put(t, prefix+"b.json", fixture(t, "good/rf-minimal.json")),
		}
		recs := s.waitSettled(t, prefix, []expect{{ups[0], "succeeded"}, {ups[1], "succeeded"}}, 2*time.Minute)
		_, woke := w.stop()
		if woke.Sub(ups[0].at) < maxWait-500*time.Millisecond {
			t.Errorf("the service left 0 tasks %s after the upload, before the max wait (%s): not the max-wait condition", woke.Sub(ups[0].at), maxWait)
		}
		for _, r := range recs {
			if r.StartedAt.Sub(ups[0].at) < maxWait-500*time.Millisecond {
				t.Errorf("%s ran %s after its upload, before the max wait (%s)", r.Source.Key, r.StartedAt.Sub(ups[0].at), maxWait)
			}
		}
		s.waitServiceIdle(t, svc)
		t.Logf("below N: the service woke %s after the upload (max wait %s)", woke.Sub(ups[0].at).Round(10*time.Millisecond), maxWait)
	})
	t.Run("KillMidJob", func(t *testing.T) {
		s.waitServiceIdle(t, svc)
		s.killMidJob(t, 2)
	})
	t.Run("EmulatorOutage", s.emulatorOutage)
	t.Run("SameKeyTwice", s.sameKeyTwice)
	t.Run("DeletedBeforeProcessing", func(t *testing.T) { s.deletedBeforeProcessing(t, true) })
}

// waitServiceIdle waits until the service's desired count is 0 and every
// task of it has stopped (a task still stopping would release what its
// last long poll brought, adding a receive to a message).
func (s *stack) waitServiceIdle(t *testing.T, svc string) {
	t.Helper()
	e := s.cloud.ECS()
	waitFor(t, "the service at 0 tasks", 2*time.Minute, func() (bool, string, error) {
		live := 0
		for _, ti := range s.cloud.Tasks() {
			if ti.Service == svc && ti.LastStatus != ecsemu.StatusStopped {
				live++
			}
		}
		d := e.DesiredCount(svc)
		return d == 0 && live == 0, fmt.Sprintf("desired %d, %d tasks not stopped", d, live), nil
	})
}

// desiredWatch samples a service's desired count every 50 ms.
type desiredWatch struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int
	// woke is when the desired count was first seen above 0.
	woke time.Time
}

func (s *stack) watchDesired(svc string) *desiredWatch {
	w := &desiredWatch{done: make(chan struct{})}
	w.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			n := s.cloud.ECS().DesiredCount(svc)
			w.peak = max(w.peak, n)
			if n > 0 && w.woke.IsZero() {
				w.woke = time.Now()
			}
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	})
	return w
}

// stop ends the sampling and returns the peak and when it first woke.
func (w *desiredWatch) stop() (peak int, woke time.Time) {
	close(w.done)
	w.wg.Wait()
	return w.peak, w.woke
}
