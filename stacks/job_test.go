package stacks_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/stacks"
)

// jobDockerfile is a job's Dockerfile with what edp must keep in place:
// parser directives, a global ARG, a comment, two stages, a continued line.
const jobDockerfile = `# syntax=docker/dockerfile:1
# check=skip=JSONArgsRecommended
ARG PY_VERSION=3.12

# dependencies in a stage of their own
FROM python:${PY_VERSION}-slim AS deps
COPY requirements.txt .
RUN pip install --no-cache-dir --target /deps \
    -r requirements.txt

FROM python:${PY_VERSION}-slim
ENV PYTHONPATH=/deps
COPY --from=deps /deps /deps
WORKDIR /job
COPY . .
USER 1000:1000
`

// jobFiles are a job directory's files: what the image needs, what its
// .dockerignore leaves out (README.md), and what staging never copies.
var jobFiles = map[string]string{
	"Dockerfile":                           jobDockerfile,
	".dockerignore":                        "README.md",
	"README.md":                            "# my job\n",
	"train.py":                             "print('train')\n",
	"requirements.txt":                     "scikit-learn==1.5.2\n",
	"configs/example.json":                 `{"n": 1}`,
	names.JobContextFile:                   `{"edp:job": "command"}`,
	".git/HEAD":                            "ref: refs/heads/main\n",
	"node_modules/left-pad/index.js":       "x",
	"__pycache__/train.cpython-312.pyc":    "x",
	"lib/__pycache__/util.cpython-312.pyc": "x",
	"lib/util.py":                          "x = 1\n",
	".venv/bin/python":                     "x",
}

func writeFiles(t testing.TB, dir string, files map[string]string) {
	if t != nil {
		t.Helper()
	}
	for name, body := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			panic(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			panic(err)
		}
	}
}

// commandSettings is a command job of dir with every job key set.
func commandSettings(dir string) settings.Settings {
	s := defaults
	s.Job, s.JobDir = names.JobCommand, dir
	s.JobCommand = []string{"python3", "./train.py", "--config", "config.json"}
	s.JobValidateCommand = []string{"python3", "./train.py", "--check"}
	s.JobMaxConfigBytes, s.JobMaxOutputFiles, s.JobMaxOutputBytes = 65536, 100, 5<<30
	s.JobTimeoutMinutes, s.JobKillGraceSeconds, s.JobConcurrency = 90, 30, 2
	s.JobReadPrefixes = []string{"data/", "reference/sets/"}
	s.JobReadBuckets = []string{"ref-data", "shared.models-2"}
	return s
}

// The command-job builds: every stack with a command job (the cron one on
// x86_64), and one-off without read grants; built once, in one App.
var jobBuilds struct {
	once   sync.Once
	dir    string // the job directory
	outdir string // the App's cloud assembly
	builds []build
}

func commandBuilds() []build {
	jobBuilds.once.Do(func() {
		jobBuilds.dir = tempDir(nil)
		cleanups = append(cleanups, jobBuilds.dir)
		writeFiles(nil, jobBuilds.dir, jobFiles)
		if err := stacks.ValidateJob(commandSettings(jobBuilds.dir)); err != nil {
			panic(err)
		}
		app := newApp(nil)
		jobBuilds.outdir = *app.Outdir()
		cleanups = append(cleanups, jobBuilds.outdir)
		add := func(kind, name string, s settings.Settings) {
			p := &stacks.Props{Settings: s, RepoRoot: ".."}
			jobBuilds.builds = append(jobBuilds.builds, build{name: name, kind: kind, settings: s, env: agnostic, stack: constructors[kind](app, jsii.String(name), p)})
		}
		for kind := range constructors {
			s := commandSettings(jobBuilds.dir)
			if kind == names.StackCron {
				s.Architecture = "x86_64"
			}
			add(kind, kind+"-command", s)
		}
		bare := commandSettings(jobBuilds.dir)
		bare.JobReadPrefixes, bare.JobReadBuckets, bare.JobValidateCommand = []string{}, nil, nil
		add(names.StackOneOff, names.StackOneOff+"-command-noreads", bare)
		asm := app.Synth(nil)
		for i := range jobBuilds.builds {
			b := &jobBuilds.builds[i]
			b.doc = templateDoc(assertions.Template_FromStack(b.stack, nil))
			for _, m := range *asm.GetStackArtifact(b.stack.ArtifactId()).Messages() {
				if data := fmt.Sprint(m.Entry.Data); m.Level != cxapi.SynthesisMessageLevel_INFO && strings.Contains(data, "AwsSolutions-") {
					b.nag = append(b.nag, string(m.Level)+": "+data)
				}
			}
		}
		sort.Slice(jobBuilds.builds, func(i, j int) bool { return jobBuilds.builds[i].name < jobBuilds.builds[j].name })
	})
	return jobBuilds.builds
}

func commandBuild(t *testing.T, name string) build {
	t.Helper()
	for _, b := range commandBuilds() {
		if b.name == name {
			return b
		}
	}
	t.Fatalf("no build %s", name)
	return build{}
}

// docResources returns the resources of typ in a template document.
func docResources(doc map[string]any, typ string) map[string]map[string]any {
	return resourcesOf(doc, typ)
}

// consumerContainer is the consumer's container definition of a template.
func consumerContainer(t *testing.T, doc map[string]any) map[string]any {
	t.Helper()
	for _, td := range docResources(doc, "AWS::ECS::TaskDefinition") {
		for _, c := range anyList(td["ContainerDefinitions"]) {
			if m := c.(map[string]any); m["Name"] == names.ContainerName {
				return m
			}
		}
	}
	t.Fatal("no consumer container")
	return nil
}

func TestCommandJobBuildsPassNag(t *testing.T) {
	for _, b := range commandBuilds() {
		for _, finding := range b.nag {
			t.Errorf("%s: cdk-nag: %s", b.name, finding)
		}
	}
}

// A command job's container gets the job's settings as the consumer reads
// them; the Iris job's gets none of them.
func TestCommandJobEnvironment(t *testing.T) {
	for _, b := range commandBuilds() {
		t.Run(b.name, func(t *testing.T) {
			env := map[string]any{}
			for _, e := range anyList(consumerContainer(t, b.doc)["Environment"]) {
				kv := e.(map[string]any)
				env[kv["Name"].(string)] = kv["Value"]
			}
			want := map[string]any{
				names.EnvJob:                names.JobCommand,
				names.EnvJobCommand:         `["python3","./train.py","--config","config.json"]`,
				names.EnvJobValidateCommand: `["python3","./train.py","--check"]`,
				names.EnvJobMaxConfigBytes:  "65536",
				names.EnvJobMaxOutputFiles:  "100",
				names.EnvJobMaxOutputBytes:  "5368709120",
				names.EnvJobKillGrace:       "30s",
				names.EnvJobTimeout:         "90m",
				names.EnvConcurrency:        "2",
				names.EnvWorkDir:            names.WorkDirInImage,
				"GOMEMLIMIT":                stacks.GoMemLimit(b.settings.MemoryMiB),
			}
			if b.settings.JobValidateCommand == nil {
				want[names.EnvJobValidateCommand] = nil
			}
			for k, v := range want {
				if env[k] != v {
					t.Errorf("%s = %v, want %v", k, env[k], v)
				}
			}
		})
	}
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		env := containerEnv(t, tpl)
		for _, k := range []string{names.EnvJob, names.EnvJobCommand, names.EnvJobTimeout, names.EnvWorkDir, names.EnvConcurrency} {
			if v, ok := env[k]; ok {
				t.Errorf("the Iris job sets %s=%v", k, v)
			}
		}
	})
}

// The runs' work directory is a task volume mounted read-write; the root
// file system stays read-only.
func TestCommandJobWorkVolume(t *testing.T) {
	for _, b := range commandBuilds() {
		t.Run(b.name, func(t *testing.T) {
			for _, td := range docResources(b.doc, "AWS::ECS::TaskDefinition") {
				if got := asJSON(td["Volumes"]); got != `[{"Name":"`+stacks.WorkVolume+`"}]` {
					t.Errorf("Volumes = %s, want one volume %q without a host path", got, stacks.WorkVolume)
				}
			}
			c := consumerContainer(t, b.doc)
			want := `[{"ContainerPath":"` + names.WorkDirInImage + `","ReadOnly":false,"SourceVolume":"` + stacks.WorkVolume + `"}]`
			if got := asJSON(c["MountPoints"]); got != want {
				t.Errorf("MountPoints = %s, want %s", got, want)
			}
			if c["ReadonlyRootFilesystem"] != true {
				t.Errorf("ReadonlyRootFilesystem = %v, want true", c["ReadonlyRootFilesystem"])
			}
		})
	}
	forEachStack(t, func(t *testing.T, tpl assertions.Template) {
		for _, td := range props(t, tpl, "AWS::ECS::TaskDefinition") {
			if v, ok := td["Volumes"]; ok {
				t.Errorf("the Iris task has volumes %v", v)
			}
		}
	})
}

// The task role reads exactly the job's prefixes and buckets, and lists the
// extra buckets; without read grants there is no statement at all.
func TestCommandJobReadGrants(t *testing.T) {
	b := commandBuild(t, names.StackOneOff+"-command")
	c := b.checker()
	sids := map[string]map[string]any{}
	for _, st := range policyStatements(b.doc, "AWS::IAM::Policy") {
		if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "Job") {
			sids[sid] = st
		}
	}
	resolved := func(st map[string]any) []string {
		var out []string
		for _, r := range anyList(st["Resource"]) {
			out = append(out, scalar(c.resolve(r)))
		}
		sort.Strings(out)
		return out
	}
	bucket := c.arnOf(mustLogicalID(t, c, "AWS::S3::Bucket", "PipelineBucket"))
	want := map[string]string{
		"JobReadsOwnBucketPrefixes": `{"Action":"s3:GetObject","Resource":["` + bucket + `/data/*","` + bucket + `/reference/sets/*"]}`,
		"JobReadsOtherBuckets":      `{"Action":"s3:GetObject","Resource":["arn:aws:s3:::ref-data/*","arn:aws:s3:::shared.models-2/*"]}`,
		"JobListsOtherBuckets":      `{"Action":"s3:ListBucket","Resource":["arn:aws:s3:::ref-data","arn:aws:s3:::shared.models-2"]}`,
	}
	for sid, w := range want {
		st, ok := sids[sid]
		if !ok {
			t.Errorf("no statement %s", sid)
			continue
		}
		if st["Condition"] != nil || st["Effect"] != "Allow" {
			t.Errorf("%s: %v", sid, st)
		}
		got := asJSON(map[string]any{"Action": st["Action"], "Resource": resolved(st)})
		if got != w {
			t.Errorf("%s = %s, want %s", sid, got, w)
		}
	}
	if len(sids) != len(want) {
		t.Errorf("job statements %v, want %d", sids, len(want))
	}
	for _, st := range policyStatements(commandBuild(t, names.StackOneOff+"-command-noreads").doc, "AWS::IAM::Policy") {
		if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "Job") {
			t.Errorf("without read grants: statement %v", st)
		}
	}
}

func mustLogicalID(t *testing.T, c *checker, typ, id string) string {
	t.Helper()
	lid, err := c.logicalID(typ, id)
	if err != nil {
		t.Fatal(err)
	}
	return lid
}

// dockerImage is a stack's one Docker image asset, from the cloud
// assembly's asset manifest.
type dockerImage struct {
	hash       string
	directory  string // absolute
	dockerFile string
	platform   string
}

func stackImage(t *testing.T, outdir, artifactID string) dockerImage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(outdir, artifactID+".assets.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		DockerImages map[string]struct {
			Source struct {
				Directory  string `json:"directory"`
				DockerFile string `json:"dockerFile"`
				Platform   string `json:"platform"`
			} `json:"source"`
		} `json:"dockerImages"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	if len(manifest.DockerImages) != 1 {
		t.Fatalf("%d docker images, want 1", len(manifest.DockerImages))
	}
	for hash, img := range manifest.DockerImages {
		return dockerImage{hash, filepath.Join(outdir, img.Source.Directory), img.Source.DockerFile, img.Source.Platform}
	}
	return dockerImage{}
}

// The image is built from the staged context: ".edp/Dockerfile" for the
// task's platform. Same job, same platform: the same asset.
func TestCommandJobImageAsset(t *testing.T) {
	builds := commandBuilds()
	hashes := map[string]string{}
	for _, b := range builds {
		img := stackImage(t, jobBuilds.outdir, *b.stack.ArtifactId())
		want := "linux/arm64"
		if b.settings.Architecture == "x86_64" {
			want = "linux/amd64"
		}
		if img.dockerFile != stacks.JobDockerfile || img.platform != want {
			t.Errorf("%s: image file %q platform %q, want %q %q", b.name, img.dockerFile, img.platform, stacks.JobDockerfile, want)
		}
		if prev, ok := hashes[img.platform]; ok && prev != img.hash {
			t.Errorf("%s: asset %s, another stack of the same job and platform has %s", b.name, img.hash, prev)
		}
		hashes[img.platform] = img.hash
		image := asJSON(consumerContainer(t, b.doc)["Image"])
		if !strings.Contains(image, img.hash) {
			t.Errorf("%s: container image %s is not asset %s", b.name, image, img.hash)
		}
	}
}

// tree lists the files under dir (slash-separated relative paths).
func tree(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The build context holds the job's files (not version control, caches or
// virtual environments; not what its .dockerignore leaves out) and edp's
// folder: the consumer's sources without tests and the Dockerfile.
func TestCommandJobBuildContext(t *testing.T) {
	b := commandBuild(t, names.StackOneOff+"-command")
	img := stackImage(t, jobBuilds.outdir, *b.stack.ArtifactId())
	files := tree(t, img.directory)
	for _, f := range []string{"Dockerfile", "train.py", "requirements.txt", "configs/example.json", "lib/util.py", names.JobContextFile,
		".edp/Dockerfile", ".edp/src/go.mod", ".edp/src/go.sum", ".edp/src/consumer/main.go", ".edp/src/internal/names/names.go"} {
		if !files[f] {
			t.Errorf("build context lacks %s", f)
		}
	}
	for f := range files {
		switch {
		case f == "README.md":
			t.Errorf("build context holds %s, which the job's .dockerignore leaves out", f)
		case regexp.MustCompile(`(^|/)(\.git|node_modules|__pycache__|\.venv)/`).MatchString(f):
			t.Errorf("build context holds %s", f)
		case strings.HasPrefix(f, ".edp/") && (strings.HasSuffix(f, "_test.go") || strings.Contains(f, "/testdata/")):
			t.Errorf("build context holds %s", f)
		case strings.HasPrefix(f, ".edp/") && !strings.HasPrefix(f, ".edp/src/") && f != ".edp/" && f != ".edp/Dockerfile":
			t.Errorf("unexpected edp file %s", f)
		}
	}
	ignore, err := os.ReadFile(filepath.Join(img.directory, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(ignore), "README.md\n") || !strings.HasSuffix(string(ignore), "\n!.edp\n!.edp/**\n") {
		t.Errorf(".dockerignore = %q, want the job's patterns, then !.edp and !.edp/**", ignore)
	}
}

// instruction is one Dockerfile instruction: the keyword in upper case and
// its arguments, continued lines joined.
type instruction struct{ keyword, args string }

// instructions lists a Dockerfile's instructions (no comments, no
// here-documents: the test's Dockerfiles have none).
func instructions(dockerfile string) []instruction {
	var out []instruction
	text := ""
	for _, line := range strings.Split(dockerfile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			text += cont
			continue
		}
		text += line
		k, a, _ := strings.Cut(text, " ")
		out = append(out, instruction{strings.ToUpper(k), strings.TrimSpace(a)})
		text = ""
	}
	return out
}

// The generated Dockerfile: the job's parser directives and global ARG
// first, then edp's build stage, then the job's Dockerfile from its first
// FROM, verbatim, then the consumer added to the job's final stage.
func TestCommandJobDockerfile(t *testing.T) {
	b := commandBuild(t, names.StackOneOff+"-command")
	img := stackImage(t, jobBuilds.outdir, *b.stack.ArtifactId())
	raw, err := os.ReadFile(filepath.Join(img.directory, img.dockerFile))
	if err != nil {
		t.Fatal(err)
	}
	got := string(raw)
	if !strings.HasPrefix(got, "# syntax=docker/dockerfile:1\n# check=skip=JSONArgsRecommended\n") {
		t.Errorf("the parser directives are not first:\n%s", got)
	}
	userBody := jobDockerfile[strings.Index(jobDockerfile, "FROM python"):]
	if !strings.Contains(got, userBody) {
		t.Errorf("the job's Dockerfile from its first FROM is not kept verbatim:\n%s", got)
	}
	gomod, _ := os.ReadFile(filepath.Join("..", "go.mod"))
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(string(gomod))[1]

	ins := instructions(got)
	var froms []int
	for i, in := range ins {
		if in.keyword == "FROM" {
			froms = append(froms, i)
		}
	}
	if len(froms) != 3 {
		t.Fatalf("%d FROMs, want edp's and the job's two:\n%s", len(froms), got)
	}
	want := []instruction{
		{"ARG", "PY_VERSION=3.12"},
		{"FROM", "--platform=$BUILDPLATFORM golang:" + goVersion + " AS " + stacks.JobBuildStage},
		{"ARG", "TARGETOS TARGETARCH"},
	}
	for i, w := range want {
		if ins[i] != w {
			t.Errorf("instruction %d = %v, want %v", i, ins[i], w)
		}
	}
	build := ""
	for _, in := range ins[froms[0]:froms[1]] {
		build += in.keyword + " " + in.args + "\n"
	}
	for _, frag := range []string{"COPY .edp/src/ ./", "CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out/edp/bin/edp-consumer ./consumer",
		"RUN mkdir -p /out/edp/work && chmod 1777 /out/edp/work"} {
		if !strings.Contains(build, frag) {
			t.Errorf("edp's build stage lacks %q:\n%s", frag, build)
		}
	}
	if ins[froms[1]] != (instruction{"FROM", "python:${PY_VERSION}-slim AS deps"}) {
		t.Errorf("the job's first FROM follows edp's stage: got %v", ins[froms[1]])
	}
	tail := ins[len(ins)-5:]
	wantTail := []instruction{
		{"USER", "1000:1000"},
		{"COPY", "--from=" + stacks.JobBuildStage + " /out/edp/ /edp/"},
		{"VOLUME", `["` + names.WorkDirInImage + `"]`},
		{"ENTRYPOINT", `["` + stacks.JobConsumerPath + `"]`},
		{"CMD", `["drain"]`},
	}
	for i, w := range wantTail {
		if tail[i] != w {
			t.Errorf("final stage instruction %d = %v, want %v", i, tail[i], w)
		}
	}
}

// Every arrow of a command job's stacks, and none it must not have.
func TestCommandJobEdges(t *testing.T) {
	for _, b := range commandBuilds() {
		t.Run(b.name, func(t *testing.T) {
			edges := stacks.EdgesFor(b.kind, b.settings)
			forbidden := 0
			for _, e := range edges {
				if e.Forbidden {
					forbidden++
				}
			}
			if want := 1 + len(b.settings.JobReadPrefixes) + len(b.settings.JobReadBuckets); forbidden != want {
				t.Errorf("%d forbidden edges, want %d", forbidden, want)
			}
			for _, err := range checkEdges(b.checker(), edges) {
				t.Error(err)
			}
		})
	}
}
