package settings

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edp-pipelines/edp/internal/names"
)

// jobDirFor writes a job directory with a Dockerfile and the given files.
func jobDirFor(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files = mergeFiles(map[string]string{"Dockerfile": "FROM python:3.12-slim\n"}, files)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mergeFiles(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestJobDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults()
	want := Settings{
		Job: names.JobIris, JobMaxConfigBytes: 1 << 20, JobMaxOutputFiles: 1000, JobMaxOutputBytes: 1 << 30,
		JobTimeoutMinutes: 15, JobKillGraceSeconds: 10, JobConcurrency: 1, JobReadPrefixes: []string{"data/"},
	}
	got := Settings{
		Job: d.Job, JobDir: d.JobDir, JobCommand: d.JobCommand, JobValidateCommand: d.JobValidateCommand,
		JobMaxConfigBytes: d.JobMaxConfigBytes, JobMaxOutputFiles: d.JobMaxOutputFiles, JobMaxOutputBytes: d.JobMaxOutputBytes,
		JobTimeoutMinutes: d.JobTimeoutMinutes, JobKillGraceSeconds: d.JobKillGraceSeconds, JobConcurrency: d.JobConcurrency,
		JobReadPrefixes: d.JobReadPrefixes, JobReadBuckets: d.JobReadBuckets,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("job defaults (-want +got):\n%s", diff)
	}
	// Defaults hands out its own list: changing one does not change the next.
	d.JobReadPrefixes[0] = "changed/"
	if Defaults().JobReadPrefixes[0] != "data/" {
		t.Error("Defaults shares its JobReadPrefixes")
	}
}

// A command job read from context as cdk.json and job.json give it (JSON
// values) and as the command line gives it (strings).
func TestCommandJobFromContext(t *testing.T) {
	t.Parallel()
	dir := jobDirFor(t, nil)
	want := Defaults()
	want.Job, want.JobDir = names.JobCommand, dir
	want.JobCommand = []string{"python3", "./train.py", "--config", "config.yaml"}
	want.JobValidateCommand = []string{"python3", "./train.py", "--check"}
	want.JobMaxConfigBytes, want.JobMaxOutputFiles, want.JobMaxOutputBytes = 16<<20, 100000, 20<<30
	want.JobTimeoutMinutes, want.JobKillGraceSeconds, want.JobConcurrency = 720, 60, 64
	want.JobReadPrefixes = []string{"data/", "reference/sets/"}
	want.JobReadBuckets = []string{"ref-data", "shared.models-2"}
	cases := map[string]map[string]any{
		"JSON": {
			KeyJob: "command", KeyJobDir: dir,
			KeyJobCommand:         []any{"python3", "./train.py", "--config", "config.yaml"},
			KeyJobValidateCommand: []any{"python3", "./train.py", "--check"},
			KeyJobMaxConfigBytes:  float64(16 << 20), KeyJobMaxOutputFiles: float64(100000), KeyJobMaxOutputBytes: float64(20 << 30),
			KeyJobTimeoutMinutes: float64(720), KeyJobKillGraceSeconds: float64(60), KeyJobConcurrency: float64(64),
			KeyJobReadPrefixes: []any{"data/", "reference/sets/"}, KeyJobReadBuckets: []any{"ref-data", "shared.models-2"},
		},
		"command line": {
			KeyJob: " command ", KeyJobDir: " " + dir + " ",
			KeyJobCommand:         `["python3", "./train.py", "--config", "config.yaml"]`,
			KeyJobValidateCommand: ` ["python3","./train.py","--check"] `,
			KeyJobMaxConfigBytes:  "16777216", KeyJobMaxOutputFiles: "100000", KeyJobMaxOutputBytes: "21474836480",
			KeyJobTimeoutMinutes: "720", KeyJobKillGraceSeconds: "60", KeyJobConcurrency: "64",
			KeyJobReadPrefixes: "data/, reference/sets/", KeyJobReadBuckets: `["ref-data","shared.models-2"]`,
		},
	}
	for name, ctx := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := FromContext(lookup(ctx))
			if err != nil {
				t.Fatalf("FromContext: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// An empty read list grants nothing; it is not the default.
func TestEmptyReadPrefixesMeanNone(t *testing.T) {
	t.Parallel()
	dir := jobDirFor(t, nil)
	for _, v := range []any{[]any{}, "[]", ""} {
		got, err := FromContext(lookup(map[string]any{KeyJob: "command", KeyJobDir: dir, KeyJobCommand: `["run"]`, KeyJobReadPrefixes: v}))
		if err != nil {
			t.Fatalf("%#v: %v", v, err)
		}
		if got.JobReadPrefixes == nil || len(got.JobReadPrefixes) != 0 {
			t.Errorf("%#v: JobReadPrefixes = %#v, want an empty list", v, got.JobReadPrefixes)
		}
	}
}

func TestInvalidJobContextNamesTheKey(t *testing.T) {
	t.Parallel()
	dir := jobDirFor(t, nil)
	noDockerfile := t.TempDir()
	file := filepath.Join(dir, "Dockerfile")
	cmd := func(extra map[string]any) map[string]any {
		return mergeAny(map[string]any{KeyJob: "command", KeyJobDir: dir, KeyJobCommand: []any{"python3", "./train.py"}}, extra)
	}
	long := make([]any, 65)
	for i := range long {
		long[i] = "a"
	}
	cases := []struct {
		name string
		ctx  map[string]any
		want []keyWant
	}{
		{"job kind", map[string]any{KeyJob: "python"}, bad(KeyJob, `"iris", "command"`)},
		{"job kind not a string", map[string]any{KeyJob: 1.0}, bad(KeyJob, "got 1")},
		{"command without a directory", map[string]any{KeyJob: "command", KeyJobCommand: `["x"]`}, bad(KeyJobDir, "required when edp:job=command")},
		{"command without a command", map[string]any{KeyJob: "command", KeyJobDir: dir}, bad(KeyJobCommand, "required when edp:job=command")},
		{"command with neither", map[string]any{KeyJob: "command"}, []keyWant{{KeyJobDir, "required"}, {KeyJobCommand, "required"}}},
		{"directory missing", cmd(map[string]any{KeyJobDir: filepath.Join(dir, "nope")}), bad(KeyJobDir, "no such directory")},
		{"directory is a file", cmd(map[string]any{KeyJobDir: file}), bad(KeyJobDir, "not a directory")},
		{"directory without Dockerfile", cmd(map[string]any{KeyJobDir: noDockerfile}), bad(KeyJobDir, "holds no Dockerfile")},
		{"directory not a string", cmd(map[string]any{KeyJobDir: []any{dir}}), bad(KeyJobDir, "a directory holding a Dockerfile")},
		{"command as words", cmd(map[string]any{KeyJobCommand: "python3 ./train.py"}), bad(KeyJobCommand, `JSON array of strings such as ["python3", "./train.py"], got "python3 ./train.py"`)},
		{"command bad JSON", cmd(map[string]any{KeyJobCommand: `["python3",`}), bad(KeyJobCommand, "JSON array")},
		{"command JSON not strings", cmd(map[string]any{KeyJobCommand: `["python3", 3]`}), bad(KeyJobCommand, "JSON array")},
		{"command list not strings", cmd(map[string]any{KeyJobCommand: []any{"python3", 3.0}}), bad(KeyJobCommand, "JSON array")},
		{"command a number", cmd(map[string]any{KeyJobCommand: 3.0}), bad(KeyJobCommand, "got 3")},
		{"command JSON null", cmd(map[string]any{KeyJobCommand: "null"}), bad(KeyJobCommand, "JSON array")},
		{"command empty", cmd(map[string]any{KeyJobCommand: []any{}}), bad(KeyJobCommand, "the command is empty")},
		{"command empty program", cmd(map[string]any{KeyJobCommand: `["", "x"]`}), bad(KeyJobCommand, "the program (the first element) is empty")},
		{"command blank program", cmd(map[string]any{KeyJobCommand: `[" "]`}), bad(KeyJobCommand, "program")},
		{"command NUL", cmd(map[string]any{KeyJobCommand: []any{"a", "b\x00"}}), bad(KeyJobCommand, "element 1 holds a NUL byte")},
		{"command too many args", cmd(map[string]any{KeyJobCommand: long}), bad(KeyJobCommand, "65 arguments, more than 64")},
		{"command too long", cmd(map[string]any{KeyJobCommand: []any{"a", strings.Repeat("x", 4100)}}), bad(KeyJobCommand, "more than 4096")},
		{"validate command as words", cmd(map[string]any{KeyJobValidateCommand: "check it"}), bad(KeyJobValidateCommand, "JSON array")},
		{"validate command empty", cmd(map[string]any{KeyJobValidateCommand: "[]"}), bad(KeyJobValidateCommand, "empty")},
		{"max config zero", cmd(map[string]any{KeyJobMaxConfigBytes: "0"}), bad(KeyJobMaxConfigBytes, "from 1 to 16777216")},
		{"max config too big", cmd(map[string]any{KeyJobMaxConfigBytes: float64(16<<20 + 1)}), bad(KeyJobMaxConfigBytes, "from 1 to 16777216")},
		{"max config a word", cmd(map[string]any{KeyJobMaxConfigBytes: "1MiB"}), bad(KeyJobMaxConfigBytes, `got "1MiB"`)},
		{"max files zero", cmd(map[string]any{KeyJobMaxOutputFiles: 0.0}), bad(KeyJobMaxOutputFiles, "from 1 to 100000")},
		{"max files too many", cmd(map[string]any{KeyJobMaxOutputFiles: "100001"}), bad(KeyJobMaxOutputFiles, "from 1 to 100000")},
		{"max bytes beyond the storage", cmd(map[string]any{KeyJobMaxOutputBytes: float64(20<<30 + 1)}), bad(KeyJobMaxOutputBytes, "from 1 to 21474836480, got 21474836481: a run's outputs must fit the task's ephemeral storage")},
		{"max bytes fractional", cmd(map[string]any{KeyJobMaxOutputBytes: 1.5}), bad(KeyJobMaxOutputBytes, "got 1.5")},
		{"timeout zero", cmd(map[string]any{KeyJobTimeoutMinutes: "0"}), bad(KeyJobTimeoutMinutes, "from 1 to 720")},
		{"timeout too long", cmd(map[string]any{KeyJobTimeoutMinutes: "721"}), bad(KeyJobTimeoutMinutes, "from 1 to 720")},
		{"kill grace zero", cmd(map[string]any{KeyJobKillGraceSeconds: "0"}), bad(KeyJobKillGraceSeconds, "from 1 to 60")},
		{"kill grace too long", cmd(map[string]any{KeyJobKillGraceSeconds: 61.0}), bad(KeyJobKillGraceSeconds, "from 1 to 60")},
		{"kill grace past the hidden time", cmd(map[string]any{KeyJobKillGraceSeconds: "15", KeyVisibilityTimeout: "30"}), bad(KeyJobKillGraceSeconds, "must be less than half of edp:visibilityTimeoutSeconds (30 s)")},
		{"concurrency zero", cmd(map[string]any{KeyJobConcurrency: "0"}), bad(KeyJobConcurrency, "from 1 to 64")},
		{"concurrency too high", cmd(map[string]any{KeyJobConcurrency: "65"}), bad(KeyJobConcurrency, "from 1 to 64")},
		{"prefix without slash", cmd(map[string]any{KeyJobReadPrefixes: "data"}), bad(KeyJobReadPrefixes, `prefix "data" does not end in "/"`)},
		{"prefix whole bucket", cmd(map[string]any{KeyJobReadPrefixes: []any{"/"}}), bad(KeyJobReadPrefixes, "whole bucket")},
		{"prefix empty element", cmd(map[string]any{KeyJobReadPrefixes: `[""]`}), bad(KeyJobReadPrefixes, "whole bucket")},
		{"prefix wildcard", cmd(map[string]any{KeyJobReadPrefixes: "da*/"}), bad(KeyJobReadPrefixes, "segments of letters")},
		{"prefix policy variable", cmd(map[string]any{KeyJobReadPrefixes: "${aws:username}/"}), bad(KeyJobReadPrefixes, "segments of letters")},
		{"prefix leading slash", cmd(map[string]any{KeyJobReadPrefixes: "/data/"}), bad(KeyJobReadPrefixes, "segments of letters")},
		{"prefix empty segment", cmd(map[string]any{KeyJobReadPrefixes: "data//"}), bad(KeyJobReadPrefixes, "none empty")},
		{"prefix twice", cmd(map[string]any{KeyJobReadPrefixes: "data/,data/"}), bad(KeyJobReadPrefixes, `"data/" twice`)},
		{"prefixes too many", cmd(map[string]any{KeyJobReadPrefixes: "a/,b/,c/,d/,e/,f/,g/,h/,i/,j/,k/"}), bad(KeyJobReadPrefixes, "11 prefixes, more than 10")},
		{"prefixes not strings", cmd(map[string]any{KeyJobReadPrefixes: []any{1.0}}), bad(KeyJobReadPrefixes, "list of key prefixes")},
		{"prefix too long", cmd(map[string]any{KeyJobReadPrefixes: strings.Repeat("a", 300) + "/"}), bad(KeyJobReadPrefixes, "longer than 256")},
		{"bucket upper case", cmd(map[string]any{KeyJobReadBuckets: "Ref-Data"}), bad(KeyJobReadBuckets, `"Ref-Data" is not a bucket name`)},
		{"bucket too short", cmd(map[string]any{KeyJobReadBuckets: "ab"}), bad(KeyJobReadBuckets, "3 to 63")},
		{"bucket an ARN", cmd(map[string]any{KeyJobReadBuckets: "arn:aws:s3:::ref-data"}), bad(KeyJobReadBuckets, "not a bucket name")},
		{"bucket two dots", cmd(map[string]any{KeyJobReadBuckets: "ref..data"}), bad(KeyJobReadBuckets, "two adjacent dots")},
		{"bucket IP", cmd(map[string]any{KeyJobReadBuckets: "192.168.5.4"}), bad(KeyJobReadBuckets, "IP address")},
		{"bucket reserved prefix", cmd(map[string]any{KeyJobReadBuckets: "xn--data"}), bad(KeyJobReadBuckets, `reserved "xn--"`)},
		{"bucket reserved suffix", cmd(map[string]any{KeyJobReadBuckets: "data-s3alias"}), bad(KeyJobReadBuckets, `reserved "-s3alias"`)},
		{"bucket twice", cmd(map[string]any{KeyJobReadBuckets: []any{"ref-data", "ref-data"}}), bad(KeyJobReadBuckets, "twice")},
		{"buckets too many", cmd(map[string]any{KeyJobReadBuckets: "b01,b02,b03,b04,b05,b06,b07,b08,b09,b10,b11"}), bad(KeyJobReadBuckets, "11 buckets, more than 10")},
		{"buckets a number", cmd(map[string]any{KeyJobReadBuckets: 3.0}), bad(KeyJobReadBuckets, "got 3")},

		// The Iris job uses no job key: a value other than the default is
		// refused, naming the key.
		{"iris with a directory", map[string]any{KeyJobDir: dir}, bad(KeyJobDir, "only used with edp:job=command (got edp:job=iris)")},
		{"iris with a command", map[string]any{KeyJob: "iris", KeyJobCommand: `["x"]`}, bad(KeyJobCommand, "only used with edp:job=command")},
		{"iris with a validate command", map[string]any{KeyJobValidateCommand: `["x"]`}, bad(KeyJobValidateCommand, "only used with")},
		{"iris with limits", map[string]any{KeyJobMaxConfigBytes: "5", KeyJobMaxOutputFiles: "5", KeyJobMaxOutputBytes: "5", KeyJobTimeoutMinutes: "5", KeyJobKillGraceSeconds: "5", KeyJobConcurrency: "5"},
			[]keyWant{{KeyJobMaxConfigBytes, "only used with"}, {KeyJobMaxOutputFiles, "only used with"}, {KeyJobMaxOutputBytes, "only used with"},
				{KeyJobTimeoutMinutes, "only used with"}, {KeyJobKillGraceSeconds, "only used with"}, {KeyJobConcurrency, "only used with"}}},
		{"iris with read grants", map[string]any{KeyJobReadPrefixes: "models/", KeyJobReadBuckets: "ref-data"},
			[]keyWant{{KeyJobReadPrefixes, "only used with"}, {KeyJobReadBuckets, "only used with"}}},
		{"iris with no read prefixes", map[string]any{KeyJobReadPrefixes: "[]"}, bad(KeyJobReadPrefixes, "only used with")},
		// A bad value is reported once, not again as "only with command".
		{"iris with a bad limit", map[string]any{KeyJobConcurrency: "0"}, bad(KeyJobConcurrency, "from 1 to 64")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := FromContext(lookup(tc.ctx))
			if err == nil {
				t.Fatalf("want an error for %v", tc.ctx)
			}
			if diff := cmp.Diff(Settings{}, got); diff != "" {
				t.Errorf("settings returned with an error (-want +got):\n%s", diff)
			}
			checkProblems(t, err, tc.want)
		})
	}
}

// With the Iris job, a job key set to its default is not a mistake.
func TestIrisAcceptsJobDefaults(t *testing.T) {
	t.Parallel()
	_, err := FromContext(lookup(map[string]any{KeyJob: "iris", KeyJobConcurrency: "1", KeyJobReadPrefixes: `["data/"]`, KeyJobTimeoutMinutes: 15.0}))
	if err != nil {
		t.Fatal(err)
	}
}

func mergeAny(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// The job directory's job.json is a layer below the app's context: `-c
// edp:jobDir=DIR` alone deploys the job, and explicit context wins.
func TestJobFileLayering(t *testing.T) {
	t.Parallel()
	dir := jobDirFor(t, map[string]string{names.JobContextFile: `{
		"edp:job": "command",
		"edp:jobCommand": ["python3", "./train.py"],
		"edp:jobMaxOutputFiles": 100,
		"edp:jobReadPrefixes": ["data/", "ref/"]
	}`})
	read := func(ctx map[string]any) Settings {
		t.Helper()
		get, err := WithJobFile(lookup(ctx))
		if err != nil {
			t.Fatalf("WithJobFile: %v", err)
		}
		s, err := FromContext(get)
		if err != nil {
			t.Fatalf("FromContext: %v", err)
		}
		return s
	}

	s := read(map[string]any{KeyJobDir: dir})
	want := Defaults()
	want.Job, want.JobDir, want.JobCommand, want.JobMaxOutputFiles = names.JobCommand, dir, []string{"python3", "./train.py"}, 100
	want.JobReadPrefixes = []string{"data/", "ref/"}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("from the file (-want +got):\n%s", diff)
	}

	s = read(map[string]any{KeyJobDir: dir, KeyJobMaxOutputFiles: "7", KeyJobCommand: `["./run"]`, KeyMaxTasks: 3.0})
	want.JobMaxOutputFiles, want.JobCommand, want.MaxTasks = 7, []string{"./run"}, 3
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("explicit context wins (-want +got):\n%s", diff)
	}

	// The file's edp:job=command is overridden too: then the file's keys
	// are refused as Iris keys, each named.
	get, err := WithJobFile(lookup(map[string]any{KeyJobDir: dir, KeyJob: "iris"}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = FromContext(get)
	checkProblems(t, err, []keyWant{{KeyJobDir, "only used with"}, {KeyJobCommand, "only used with"}, {KeyJobMaxOutputFiles, "only used with"}, {KeyJobReadPrefixes, "only used with"}})

	// Without a file, or without a directory, the lookup is the context's.
	for _, ctx := range []map[string]any{{KeyJobDir: jobDirFor(t, nil)}, {}, {KeyJobDir: 3.0}} {
		get, err := WithJobFile(lookup(ctx))
		if err != nil {
			t.Fatalf("%v: %v", ctx, err)
		}
		if got := get(KeyJob); got != nil {
			t.Errorf("%v: edp:job = %v without a job file", ctx, got)
		}
	}
}

func TestBadJobFileNamesTheFile(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, body, want string }{
		{"not JSON", `{"edp:job": "command",`, "not a JSON object of context keys"},
		{"an array", `["edp:job"]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"names the directory", `{"edp:job": "command", "edp:jobDir": "."}`, `key "edp:jobDir": a job file cannot name the job directory`},
		{"another key", `{"edp:job": "command", "edp:maxTasks": 3}`, `key "edp:maxTasks": a job file holds job keys only`},
		{"a CDK flag", `{"@aws-cdk/core:stackRelativeExports": true}`, "job keys only"},
		{"a misspelt job key", `{"edp:jobComand": ["x"]}`, `key "edp:jobComand": no such key`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := jobDirFor(t, map[string]string{names.JobContextFile: tc.body})
			_, err := WithJobFile(lookup(map[string]any{KeyJobDir: dir}))
			if !errors.Is(err, ErrJobFile) {
				t.Fatalf("err = %v, want ErrJobFile", err)
			}
			for _, frag := range []string{filepath.Join(dir, names.JobContextFile), tc.want} {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error %q does not say %q", err, frag)
				}
			}
		})
	}
	// A job file that cannot be read (here: a directory) is an error too.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, names.JobContextFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := WithJobFile(lookup(map[string]any{KeyJobDir: dir})); !errors.Is(err, ErrJobFile) {
		t.Errorf("unreadable job file: err = %v, want ErrJobFile", err)
	}
}
