package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/runrecord"
)

// alarmTemplates are synthesized templates shared with the alarm
// evaluator's tests.
const alarmTemplates = "../localcloud/alarms/testdata"

// stackOf builds a Stack from a template, as DescribeStack does.
func stackOf(t *testing.T, name string, raw []byte) *localcloud.Stack {
	t.Helper()
	st := &localcloud.Stack{Name: name, Types: map[string]string{}}
	if err := json.Unmarshal(raw, &st.Template); err != nil {
		t.Fatal(err)
	}
	res, _ := st.Template["Resources"].(map[string]any)
	for id, r := range res {
		st.Types[id], _ = r.(map[string]any)["Type"].(string)
	}
	return st
}

func templateFile(t *testing.T, file string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(alarmTemplates, file))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func scheduleTemplate(expr, tz, state string) []byte {
	raw, _ := json.Marshal(map[string]any{"Resources": map[string]any{
		"Schedule": map[string]any{"Type": "AWS::Scheduler::Schedule", "Properties": map[string]any{
			"ScheduleExpression": expr, "ScheduleExpressionTimezone": tz, "State": state,
		}},
		"Task": map[string]any{"Type": "AWS::ECS::TaskDefinition"},
	}})
	return raw
}

func TestDetectArch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		types []string
		want  Arch
	}{
		{[]string{"AWS::S3::Bucket", "AWS::ECS::TaskDefinition", "AWS::Events::Rule"}, OneOff},
		{[]string{"AWS::ECS::TaskDefinition", "AWS::ECS::Service", "AWS::CloudWatch::Alarm"}, AlarmService},
		{[]string{"AWS::ECS::TaskDefinition", "AWS::Lambda::Function", "AWS::SNS::Topic"}, AlarmDispatch},
		{[]string{"AWS::ECS::TaskDefinition", "AWS::Scheduler::Schedule"}, Cron},
	} {
		st := &localcloud.Stack{Types: map[string]string{}}
		for i, typ := range tc.types {
			st.Types[string(rune('A'+i))] = typ
		}
		if got := DetectArch(st); got != tc.want {
			t.Errorf("%v: got %s, want %s", tc.types, got, tc.want)
		}
	}
}

// The wait follows the deployed stack: the max wait comes from the backlog
// alarm's metric math (step or backlog-per-task mode), the cron wait from
// the schedule, and a cron run too far away is refused before any upload.
func TestMakePlan(t *testing.T) {
	t.Parallel()
	service := templateFile(t, "EdpAlarmService.template.json")
	fiveMinutes := bytes.ReplaceAll(service, []byte("age >= 900"), []byte("age >= 300"))
	// 2026-03-02 is a Monday.
	now := time.Date(2026, 3, 2, 1, 40, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		stack    []byte
		arch     Arch
		timeout  time.Duration
		speedup  float64
		want     time.Duration
		explains string
		refused  string
	}{
		{"one-off on AWS", []byte(`{"Resources":{}}`), OneOff, 0, 0, 5 * time.Minute, "each upload starts a task", ""},
		{"one-off locally", []byte(`{"Resources":{}}`), OneOff, 0, 30, 2 * time.Minute, "", ""},
		{"one-off with -timeout", []byte(`{"Resources":{}}`), OneOff, time.Minute, 0, time.Minute, "-timeout given", ""},
		{"alarm service on AWS", service, AlarmService, 0, 0, 15*time.Minute + 5*time.Minute + 3*time.Minute, "N=10", ""},
		{"alarm service, backlog mode", templateFile(t, "EdpAlarmService-backlog.template.json"), AlarmService, 0, 0, 23 * time.Minute, "`age >= 900`", ""},
		{"alarm service, max wait 5 min", fiveMinutes, AlarmService, 0, 0, 5*time.Minute + 5*time.Minute + 3*time.Minute, "waited 5m0s", ""},
		{"alarm dispatch locally", templateFile(t, "EdpAlarmDispatch.template.json"), AlarmDispatch, 0, 30, 40*time.Second + time.Minute, "30s in the local cloud's time", ""},
		{"cron on AWS, 20 minutes ahead", scheduleTemplate("cron(0 2 * * ? *)", "UTC", "ENABLED"), Cron, 0, 0, 30 * time.Minute, "runs next at 2026-03-02 02:00 UTC, in 20m0s", ""},
		{"cron on AWS, too far", scheduleTemplate("cron(0 2 * * ? *)", "UTC", "ENABLED"), Cron, 0, 0, 0, "",
			"runs next at 2026-03-03 02:00 UTC, in 23h40m0s; waiting for it plus 10m0s exceeds the timeout 30m0s: re-run within 20m0s before the schedule, or pass -timeout 23h50m0s"},
		{"cron on AWS in a time zone, -timeout long enough", scheduleTemplate("cron(30 8 ? * MON-FRI *)", "Europe/Berlin", "ENABLED"), Cron, 8 * time.Hour, 0,
			5*time.Hour + 50*time.Minute + 10*time.Minute, "(Europe/Berlin) runs next at 2026-03-02 08:30 CET", ""},
		{"cron locally", scheduleTemplate("cron(0 2 * * ? *)", "UTC", "ENABLED"), Cron, 0, 30, 2 * time.Minute, "runs its target now", ""},
		{"cron disabled", scheduleTemplate("cron(0 2 * * ? *)", "UTC", "DISABLED"), Cron, 0, 0, 0, "", "is DISABLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			if tc.name == "cron on AWS, too far" {
				clock = now.Add(40 * time.Minute) // 02:20, just after the run
			}
			p, err := makePlan(stackOf(t, "S", tc.stack), tc.arch, clock, tc.timeout, tc.speedup)
			if tc.refused != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("err %v: want ErrRefused saying %q", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.timeout != tc.want {
				t.Errorf("timeout %s, want %s", p.timeout, tc.want)
			}
			if !strings.Contains(p.explain, tc.explains) {
				t.Errorf("explanation %q lacks %q", p.explain, tc.explains)
			}
		})
	}
}

func TestAlarmStackWithoutMaxWaitIsAnError(t *testing.T) {
	t.Parallel()
	st := stackOf(t, "S", []byte(`{"Resources":{"A":{"Type":"AWS::CloudWatch::Alarm","Properties":{"Metrics":[{"Expression":"visible + inflight"}]}}}}`))
	if _, err := makePlan(st, AlarmService, time.Now(), 0, 0); err == nil || !strings.Contains(err.Error(), "max-wait") {
		t.Errorf("err %v: want one naming the missing max-wait condition", err)
	}
}

// fakeS3 is a bucket in memory; it counts list calls.
type fakeS3 struct {
	objects map[string]fakeObject
	lists   int
}

type fakeObject struct {
	body     string
	modified time.Time
}

func (f *fakeS3) PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return nil, errors.New("not used")
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	o, ok := f.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &s3types.NoSuchKey{}
	}
	return &s3.GetObjectOutput{Body: io.NopCloser(strings.NewReader(o.body))}, nil
}

func (f *fakeS3) HeadObject(_ context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if _, ok := f.objects[aws.ToString(in.Key)]; !ok {
		return nil, &s3types.NotFound{}
	}
	return &s3.HeadObjectOutput{}, nil
}

func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.lists++
	out := &s3.ListObjectsV2Output{}
	for k, o := range f.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, s3types.Object{Key: aws.String(k), LastModified: aws.Time(o.modified), ETag: aws.String(`"` + o.body[:8] + `"`)})
		}
	}
	return out, nil
}

func record(key, status string, artifacts ...string) string {
	b, _ := json.Marshal(runrecord.Record{Status: status, Source: runrecord.Source{Key: key}, Artifacts: artifacts})
	return string(b)
}

// The record is found by its predicted run id without listing the bucket
// (a versioned bucket on AWS), and by listing the records written since
// the upload otherwise, skipping other uploads' records and older ones.
func TestFinder(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	upload := time.Now()
	mine := "configs/smoke-1.yaml"

	t.Run("predicted", func(t *testing.T) {
		fs := &fakeS3{objects: map[string]fakeObject{"runs/abc.json": {record(mine, "succeeded", "a/model.json"), upload}}}
		f := &finder{s3: fs, key: mine, since: upload, predicted: "runs/abc.json", checked: map[string]string{}, lastScan: upload}
		r, err := f.find(ctx)
		if err != nil || r == nil || f.found != "runs/abc.json" || fs.lists != 0 {
			t.Fatalf("record %v, found %q, err %v, %d lists: want it by GET alone", r, f.found, err, fs.lists)
		}
	})
	t.Run("scan", func(t *testing.T) {
		fs := &fakeS3{objects: map[string]fakeObject{
			"runs/old.json":   {record(mine, "failed"), upload.Add(-time.Hour)}, // before the upload: not read
			"runs/other.json": {record("configs/other.yaml", "succeeded"), upload.Add(time.Second)},
		}}
		f := &finder{s3: fs, key: mine, since: upload.Add(-recordClockSkew + 10*time.Minute), checked: map[string]string{}}
		if r, err := f.find(ctx); err != nil || r != nil {
			t.Fatalf("record %v, err %v: want none yet", r, err)
		}
		if _, ok := f.checked["runs/other.json"]; !ok || len(f.checked) != 1 {
			t.Errorf("checked %v: want only the other upload's record read", f.checked)
		}
		fs.objects["runs/mine.json"] = fakeObject{record(mine, "failed"), upload.Add(2 * time.Second)}
		r, err := f.find(ctx)
		if err != nil || r == nil || r.Status != "failed" || f.found != "runs/mine.json" {
			t.Fatalf("record %v, found %q, err %v: want runs/mine.json", r, f.found, err)
		}
		// A retry rewrites it; the finder reads the known key again.
		fs.objects["runs/mine.json"] = fakeObject{record(mine, "succeeded", "a/model.json"), upload.Add(3 * time.Second)}
		lists := fs.lists
		if r, _ := f.find(ctx); r == nil || r.Status != "succeeded" || fs.lists != lists {
			t.Errorf("record %v after %d more lists: want the rewritten record by GET", r, fs.lists-lists)
		}
	})
}

func TestRecordChecks(t *testing.T) {
	t.Parallel()
	fs := &fakeS3{objects: map[string]fakeObject{"a/model.json": {"12345678", time.Now()}}}
	rec := &runrecord.Record{Status: "succeeded", Artifacts: []string{"a/model.json", "a/metrics.json"}}
	missing, err := missingArtifacts(t.Context(), fs, "b", rec)
	if err != nil || len(missing) != 1 || !strings.Contains(missing[0], "a/metrics.json is missing") {
		t.Errorf("missing %q, err %v: want a/metrics.json", missing, err)
	}
	for _, tc := range []struct {
		rec  runrecord.Record
		want string
	}{
		{runrecord.Record{Status: "succeeded", Artifacts: []string{"x"}}, ""},
		{runrecord.Record{Status: "succeeded"}, "lists no artifacts"},
		{runrecord.Record{Status: "failed", Permanent: true, Error: "bad test_size"}, "runs/r.json has status failed (permanent): bad test_size"},
		{runrecord.Record{Status: "skipped", Reason: "overwritten"}, "status skipped, want succeeded: overwritten"},
	} {
		got := strings.Join(recordProblems("runs/r.json", &tc.rec), "; ")
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%+v: problems %q, want %q", tc.rec, got, tc.want)
		}
	}
}

func TestUniqueKey(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 1, 40, 5, 0, time.UTC)
	a, b := uniqueKey(now, "rf.json"), uniqueKey(now, "rf.txt")
	if !strings.HasPrefix(a, "configs/smoke-20260302T014005Z-") || !strings.HasSuffix(a, ".json") || !strings.HasSuffix(b, ".yaml") {
		t.Errorf("keys %q, %q", a, b)
	}
	if uniqueKey(now, "rf.yaml") == uniqueKey(now, "rf.yaml") {
		t.Error("two keys of the same second are equal")
	}
}
