package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/names"
)

// TestAlarmDispatch runs EdpAlarmDispatch, where the backlog alarm
// notifies SNS and the real alarm-dispatch bootstrap starts drain tasks
// through the local ECS API:
//
//   - Batch (see batch), and the 33 matching uploads made the Lambda start
//     ceil(33/messagesPerTask) = 7 tasks capped at maxTasks = 3, all with
//     startedBy edp-alarm-dispatch and the drain command, no other task,
//     and all exited 0 once the queue stayed empty;
//   - KillMidJob (killMidJob, with two companion configs): the dispatched
//     task dies holding a message while others wait; the dispatch alarm is
//     gated on the function's own invocations, so it goes back to ALARM,
//     notifies again and a new dispatched task runs the message once it is
//     visible again;
//   - DispatchStartsNothing (dispatchStartsNothing): a dispatch without
//     Fargate capacity starts nothing, and the work runs once capacity is
//     back, with no new upload;
//   - BurstWhileWorking (burstWhileWorking): a burst behind one busy
//     dispatched task scales out to maxTasks;
//   - EmulatorOutage (emulatorOutage), SameKeyTwice (sameKeyTwice) and
//     DeletedBeforeProcessing (deletedBeforeProcessing, reads held).
func TestAlarmDispatch(t *testing.T) {
	t.Parallel()
	s := deploy(t, names.StackAlarmDispatch)
	t.Run("Batch", func(t *testing.T) {
		b := s.batch(t, batchOptions{})
		tasks := s.waitTasksStopped(t, b.started, time.Time{}, time.Minute)
		want := dispatchTasks(len(b.matching()))
		if len(tasks) != want {
			t.Errorf("%d tasks started for a backlog of %d, want min(%d, ceil(%d/%d)) = %d",
				len(tasks), len(b.matching()), maxTasks, len(b.matching()), messagesPerTask, want)
		}
		for _, ti := range tasks {
			if ti.StartedBy != names.DefaultStartedBy || !slices.Contains(ti.Command, names.ModeDrain) {
				t.Errorf("task %s: started by %q with command %q, want %s and %s", taskID(ti.Arn), ti.StartedBy, ti.Command, names.DefaultStartedBy, names.ModeDrain)
			}
		}
		checkExitedCleanly(t, tasks)
		t.Logf("dispatch: %d tasks for %d matching uploads, all exited 0", len(tasks), len(b.matching()))
	})
	t.Run("KillMidJob", func(t *testing.T) { s.killMidJob(t, 2) })
	t.Run("DispatchStartsNothing", s.dispatchStartsNothing)
	t.Run("BurstWhileWorking", s.burstWhileWorking)
	t.Run("EmulatorOutage", s.emulatorOutage)
	t.Run("SameKeyTwice", s.sameKeyTwice)
	t.Run("DeletedBeforeProcessing", func(t *testing.T) { s.deletedBeforeProcessing(t, true) })
}
