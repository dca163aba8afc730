package benchreport

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// A command name with a space and a parenthesis, as moto_server's
	// Python may be shown; utime 1234 and stime 66 ticks.
	const line = "4049 (moto server) (x) S 4000 4049 4049 0 -1 4194560 2000 0 0 0 1234 66 0 0 20 0 3 0 100 200000 3000 18446744073709551615\n"
	got, err := parseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := (procStat{PPID: 4000, CPU: 13 * time.Second}); got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "4049 (moto) S 1 2", "4049 (moto) S x 4049 4049 0 -1 0 0 0 0 0 1 1 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
}

func TestParseMachineCPU(t *testing.T) {
	t.Parallel()
	// user nice system idle iowait irq softirq steal guest guest_nice
	const stat = "cpu  100 10 40 800 50 5 5 0 30 0\ncpu0 50 5 20 400 25 2 3 0 15 0\n"
	got, err := parseMachineCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	// busy: 100+10+40+5+5+0 = 160 ticks; total adds idle and iowait: 1010.
	if want := (machineCPU{Busy: 1600 * time.Millisecond, Total: 10100 * time.Millisecond}); got != want {
		t.Errorf("parseMachineCPU = %+v, want %+v", got, want)
	}
	if _, err := parseMachineCPU("intr 1 2 3\n"); err == nil {
		t.Error("parseMachineCPU of a file without the cpu line: no error")
	}
}

func TestParseJobsDone(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/task-ceiling.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseJobsDone(f)
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time { x, _ := time.Parse(time.RFC3339Nano, s); return x }
	want := []jobDone{
		{At: at("2026-12-07T05:00:01Z"), Outcome: "succeeded", Duration: 150 * time.Millisecond},
		{At: at("2026-12-07T05:00:02Z"), Outcome: "succeeded", Duration: 1600 * time.Millisecond},
		{At: at("2026-12-07T05:00:03.5Z"), Outcome: "released", Duration: 20 * time.Millisecond},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseJobsDone (-want +got):\n%s", d)
	}
}

// jobsEvery is n jobs done, one every gap from t0.
func jobsEvery(t0 time.Time, n int, gap time.Duration) []jobDone {
	out := make([]jobDone, n)
	for i := range out {
		out[i] = jobDone{At: t0.Add(time.Duration(i) * gap), Outcome: "succeeded"}
	}
	return out
}

func TestSteadyRate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	// 100 jobs, 10 per second in the middle; a slow start (one every
	// 2 s) and a slow end stay outside the 10th–90th percentile.
	var done []jobDone
	done = append(done, jobsEvery(t0, 10, 2*time.Second)...)
	done = append(done, jobsEvery(t0.Add(20*time.Second), 81, 100*time.Millisecond)...)
	done = append(done, jobsEvery(t0.Add(40*time.Second), 9, 3*time.Second)...)
	if got := steadyRate(done); got < 9.99 || got > 10.01 {
		t.Errorf("steadyRate = %v, want 10 jobs/s", got)
	}
	if got := steadyRate(jobsEvery(t0, 5, 500*time.Millisecond)); got != 2 {
		t.Errorf("steadyRate of 5 jobs, one every 0.5 s = %v, want 2", got)
	}
	for _, d := range [][]jobDone{nil, jobsEvery(t0, 1, time.Second), jobsEvery(t0, 3, 0)} {
		if got := steadyRate(d); got != 0 {
			t.Errorf("steadyRate of %d jobs = %v, want 0 (cannot be told)", len(d), got)
		}
	}
}

func TestCeilingFigures(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	s := ceilingSample{
		Configs: 20, Took: 2 * time.Second,
		Done:    jobsEvery(t0, 20, 100*time.Millisecond),
		TaskOps: map[string]int{"PutObject": 200, "GetObject": 60, "ReceiveMessage": 20, "DeleteMessageBatch": 20},
		HostOps: map[string]int{"PutObject": 20, "GetQueueAttributes": 4},
		MotoCPU: 1500 * time.Millisecond, TasksCPU: 400 * time.Millisecond, SelfCPU: 200 * time.Millisecond,
		Machine:   machineCPU{Busy: 3 * time.Second, Total: 4 * time.Second},
		PeakTasks: 3,
	}
	want := map[string]float64{
		unitJobsPerS:     10, // 15 jobs in 1.5 s from the 10th to the 90th percentile
		unitTook:         2,
		unitReqPerJob:    15,  // 300 task requests / 20 jobs
		unitMotoReqPerS:  162, // (300 + 24) / 2 s
		unitMotoCPU:      75,
		unitMotoMSPerReq: 1500.0 / 324,
		unitMotoBound:    1000 / (1500.0 / 324 * 15),
		unitTasksCPU:     20,
		unitSelfCPU:      10,
		unitMachine:      1.5,
		unitPeakTasks:    3,
	}
	if d := cmp.Diff(want, s.figures(), cmpopts.EquateApprox(0, 1e-9)); d != "" {
		t.Errorf("figures (-want +got):\n%s", d)
	}
	row := ceilingRow("alarm-service, 3 tasks", []ceilingSample{s, s})
	if len(row.Figures) != len(ceilingUnits) || row.Figures[0].Unit != unitJobsPerS || row.Figures[0].S.N != 2 {
		t.Errorf("row figures %+v, want every unit, jobs/s first, over 2 runs", row.Figures)
	}
	for _, want := range []string{"40 of 40 jobs succeeded", "requests per job: PutObject 10, GetObject 3, DeleteMessageBatch 1, ReceiveMessage 1",
		"per second (besides the uploads): GetQueueAttributes 2"} {
		if !strings.Contains(row.Note, want) {
			t.Errorf("note %q lacks %q", row.Note, want)
		}
	}
	if strings.Contains(row.Note, "PutObject 0") || strings.Contains(row.Note, "second (besides the uploads): PutObject") {
		t.Errorf("note %q counts the uploads as the runtime's requests", row.Note)
	}
}
