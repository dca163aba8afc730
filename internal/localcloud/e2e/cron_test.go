package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
)

// fireSlack is how far a task's creation may lag its schedule fire.
const fireSlack = time.Second

// TestCron runs EdpCron, where an EventBridge Scheduler schedule (daily,
// firing every 10 s at the speed-up) starts a drain task:
//
//   - Batch (see batch), uploaded right after a fire: until the next fire
//     nothing runs and no task starts, the uploads wait in the queue; every
//     run starts at or after that fire, in a task the schedule started
//     then; the schedule's tasks were started one interval apart and all
//     exited 0 once the queue stayed empty;
//   - KillMidJob (killMidJob): a task of a later fire runs the message once
//     it is visible again;
//   - EmulatorOutage (emulatorOutage) and SameKeyTwice (sameKeyTwice);
//   - DeletedBeforeProcessing (deletedBeforeProcessing): the uploads are
//     deleted while they wait for the next fire.
func TestCron(t *testing.T) {
	t.Parallel()
	s := deploy(t, names.StackCron)
	t.Run("Batch", func(t *testing.T) {
		fire := s.quietBeforeFire(t, 3*time.Second)
		b := s.batch(t, batchOptions{uploaded: func(b batchResult) {
			if time.Now().After(fire) {
				t.Fatalf("the uploads took until after the fire at %s: the test is too slow to prove anything", fire)
			}
			waitFor(t, "the fire", time.Until(fire)+localcloud.ScheduleInterval, func() (bool, string, error) {
				// Up to the fire, nothing may run and no task start.
				recs, err := s.recordsUnder(t.Context(), batchPrefix)
				if err != nil {
					return false, "", err
				}
				d, err := localcloud.Depth(t.Context(), s.cloud.Clients(), s.queueURL)
				if err != nil {
					return false, "", err
				}
				before := time.Now().Before(fire)
				if tasks := s.tasksSince(b.started); before && (len(recs) > 0 || len(tasks) > 0 || d.InFlight > 0) {
					return false, "", fmt.Errorf("before the fire at %s: %d records, %d tasks, %d messages in flight; want the uploads waiting in the queue", fire, len(recs), len(tasks), d.InFlight)
				}
				return !before, "", nil
			})
		}})
		settled := time.Now()
		for _, r := range b.records {
			if r.StartedAt.Before(fire) {
				t.Errorf("%s ran at %s, before the schedule fired at %s", r.Source.Key, r.StartedAt, fire)
			}
		}
		tasks := s.waitTasksStopped(t, b.started, settled, time.Minute)
		if len(tasks) == 0 || tasks[0].CreatedAt.Before(fire) || tasks[0].CreatedAt.Sub(fire) > fireSlack {
			t.Errorf("first task after the uploads: %+v, want one created at the fire %s", tasks, fire)
		}
		all := s.waitTasksStopped(t, time.Time{}, settled, time.Minute)
		for i, ti := range all {
			if !strings.HasPrefix(ti.StartedBy, "scheduler/") {
				t.Errorf("task %s started by %q, want the schedule", taskID(ti.Arn), ti.StartedBy)
			}
			if i > 0 {
				if gap := ti.CreatedAt.Sub(all[i-1].CreatedAt); gap < localcloud.ScheduleInterval-fireSlack || gap > localcloud.ScheduleInterval+fireSlack {
					t.Errorf("tasks %d and %d of the schedule started %s apart, want one interval (%s)", i-1, i, gap, localcloud.ScheduleInterval)
				}
			}
		}
		checkExitedCleanly(t, all)
		t.Logf("cron: the uploads waited %s for the fire; %d schedule tasks so far, one interval apart", fire.Sub(b.good[len(b.good)-1].done).Round(10*time.Millisecond), len(all))
	})
	t.Run("KillMidJob", func(t *testing.T) { s.killMidJob(t, 2) })
	t.Run("EmulatorOutage", s.emulatorOutage)
	t.Run("SameKeyTwice", s.sameKeyTwice)
	t.Run("DeletedBeforeProcessing", func(t *testing.T) { s.deletedBeforeProcessing(t, false) })
}
