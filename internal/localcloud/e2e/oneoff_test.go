package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
)

// TestOneOff runs EdpOneOff, where the upload rule's second target starts
// one drain task per event:
//
//   - Batch (see batch), and each matching upload started exactly one task
//     whose trigger override names it, the ignored uploads none, and every
//     task exited 0 once the queue stayed empty;
//   - KillMidJob (killMidJob): the other tasks of the uploads wait for the
//     hidden message and one of them runs it;
//   - StrandedRetry (strandedRetry): uploads whose RunTask found no
//     capacity run once capacity is back, started by the stranded-work
//     alarm's rule, with no new upload;
//   - EmulatorOutage (emulatorOutage), SameKeyTwice (sameKeyTwice) and
//     DeletedBeforeProcessing (deletedBeforeProcessing, reads held).
func TestOneOff(t *testing.T) {
	t.Parallel()
	s := deploy(t, names.StackOneOff)
	t.Run("Batch", func(t *testing.T) {
		b := s.batch(t, batchOptions{})
		tasks := s.waitTasksStopped(t, b.started, time.Time{}, time.Minute)
		triggered := map[string]int{}
		for _, ti := range tasks {
			if !strings.HasPrefix(ti.StartedBy, "events-rule/") {
				t.Errorf("task %s started by %q, want the upload rule", taskID(ti.Arn), ti.StartedBy)
			}
			if ti.OverrideEnv[names.EnvTriggerBucket] != s.bucket {
				t.Errorf("task %s: trigger bucket %q, want %s", taskID(ti.Arn), ti.OverrideEnv[names.EnvTriggerBucket], s.bucket)
			}
			triggered[ti.OverrideEnv[names.EnvTriggerKey]]++
		}
		for _, u := range b.matching() {
			if n := triggered[u.key]; n != 1 {
				t.Errorf("%s started %d tasks, want 1", u.key, n)
			}
			delete(triggered, u.key)
		}
		for _, u := range b.ignored {
			if n := triggered[u.key]; n > 0 {
				t.Errorf("ignored upload %s started %d tasks", u.key, n)
			}
			delete(triggered, u.key)
		}
		for k, n := range triggered {
			t.Errorf("%d tasks were started for %q, which was not uploaded", n, k)
		}
		checkExitedCleanly(t, tasks)
		t.Logf("one-off: %d tasks for %d matching uploads, all exited 0", len(tasks), len(b.matching()))
	})
	t.Run("KillMidJob", func(t *testing.T) { s.killMidJob(t, 2) })
	t.Run("StrandedRetry", s.strandedRetry)
	t.Run("EmulatorOutage", s.emulatorOutage)
	t.Run("SameKeyTwice", s.sameKeyTwice)
	t.Run("DeletedBeforeProcessing", func(t *testing.T) { s.deletedBeforeProcessing(t, true) })
}
