package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edp-pipelines/edp/internal/faultproxy"
	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
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
//     deleted while they wait for the next fire;
//   - TaskCap (taskCap): fires while drain tasks work start none beyond
//     maxTasks.
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
				d, err := stackview.Depth(t.Context(), s.cloud.Clients().SQS, s.queueURL)
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
	t.Run("TaskCap", s.taskCap)
}

// capHold is how long the fault proxy holds each config read of taskCap:
// longer than three fire intervals, so that the first fire's task still
// works when the fourth fire comes.
const capHold = 45 * time.Second

// skipBound is how soon a task over the cap must have exited after it
// started: at once, no receive, no job.
const skipBound = 5 * time.Second

// taskCap proves that Scheduler fires while drain tasks work start no more
// than maxTasks working tasks (consumer/taskcap, EDP_MAX_TASKS from
// edp:maxTasks). Each config read of 2×maxTasks uploads is held capHold by
// the fault proxy, so the tasks of the first fires hold messages, or wait
// for the messages other tasks hold, across several fires. Every task
// started meanwhile either works — logs "consuming", from which time until
// it stops it counts as working — or skips: it logs "drain skipped: task
// cap reached" naming at least maxTasks other tasks and the cap, exits 0
// within skipBound, and starts no job. At no time do more than maxTasks
// tasks work; the cap is reached (maxTasks at once), at least one fire's
// task skips, and every upload runs exactly once.
func (s *stack) taskCap(t *testing.T) {
	const prefix = "configs/cap/"
	var held atomic.Int32
	remove := s.proxy.Add(faultproxy.Rule{Fault: faultproxy.Delay, Delay: capHold,
		Match: func(r *http.Request, _ []byte) bool {
			ok := s.isGetUnder(r, prefix)
			if ok {
				held.Add(1)
			}
			return ok
		}})
	defer remove()
	s.quietBeforeFire(t, 3*time.Second)
	from := time.Now()
	var want []expect
	for i := range 2 * maxTasks {
		want = append(want, expect{s.put(t, fmt.Sprintf("%sheld-%d.yaml", prefix, i), fixture(t, "good/dt-gini.yaml")), "succeeded"})
	}
	s.waitSettled(t, prefix, want, capHold*3+2*time.Minute)
	settled := time.Now()
	tasks := s.waitTasksStopped(t, from, settled, 2*time.Minute)
	checkExitedCleanly(t, tasks)

	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	worked, skipped := 0, 0
	for _, ti := range tasks {
		id := taskID(ti.Arn)
		lines := s.taskLog(id)
		var consuming, skip map[string]any
		jobs := 0
		for _, l := range lines {
			switch l["msg"] {
			case "consuming":
				consuming = l
			case "drain skipped: task cap reached":
				skip = l
			case "job started":
				jobs++
			}
		}
		switch {
		case consuming != nil && skip == nil:
			worked++
			at, err := time.Parse(time.RFC3339Nano, consuming["time"].(string))
			if err != nil {
				t.Fatalf("task %s: consuming at %v: %v", id, consuming["time"], err)
			}
			edges = append(edges, edge{at, +1}, edge{ti.StoppedAt, -1})
		case skip != nil && consuming == nil:
			skipped++
			if n, _ := skip["running_tasks"].(float64); int(n) < maxTasks || skip["max_tasks"] != float64(maxTasks) {
				t.Errorf("task %s skipped with %v other tasks running and cap %v, want at least %d and %d", id, skip["running_tasks"], skip["max_tasks"], maxTasks, maxTasks)
			}
			if reason, _ := skip["reason"].(string); !strings.Contains(reason, fmt.Sprintf("already run, cap %d", maxTasks)) {
				t.Errorf("task %s: skip reason %q does not name the cap", id, reason)
			}
			if ran := ti.StoppedAt.Sub(ti.StartedAt); ran > skipBound || jobs > 0 {
				t.Errorf("task %s skipped, yet ran %s and started %d jobs; want an exit within %s and no job", id, ran, jobs, skipBound)
			}
		default:
			t.Errorf("task %s (started by %s): consuming %v, skip %v; want exactly one of them", id, ti.StartedBy, consuming != nil, skip != nil)
		}
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // a stop before a start at the same instant
	})
	working, most := 0, 0
	for _, e := range edges {
		working += e.delta
		most = max(most, working)
	}
	if most > maxTasks {
		t.Errorf("%d tasks worked at once, want at most maxTasks = %d", most, maxTasks)
	}
	if most < maxTasks {
		t.Errorf("at most %d tasks worked at once, want the cap %d reached (the held reads keep the first fires' tasks busy)", most, maxTasks)
	}
	if skipped == 0 {
		t.Errorf("no task skipped among %d; want the fires while %d tasks worked to skip", len(tasks), maxTasks)
	}
	if held.Load() < int32(len(want)) {
		t.Errorf("%d config reads held, want at least %d", held.Load(), len(want))
	}
	t.Logf("cap: %d tasks in %s, %d worked (at most %d at once), %d skipped at start", len(tasks), settled.Sub(from).Round(time.Second), worked, most, skipped)
}
