package stacks

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// A command job's image (docs/jobs.md, "The image") is the user's
// Dockerfile with edp's consumer added: at synth, a build context is staged
// that holds a copy of the job directory plus JobImageDir with the
// consumer's Go sources and a generated Dockerfile. That Dockerfile keeps
// the user's parser directives and global ARGs first, then builds the
// consumer in a stage of its own (JobBuildStage), then holds the user's
// Dockerfile from its first FROM on, and finally appends to the user's
// final stage the consumer binary, the work directory and the entrypoint.
const (
	// JobImageDir is edp's folder in the staged build context; a job
	// directory may not have one of its own.
	JobImageDir = ".edp"
	// JobDockerfile is the generated Dockerfile, relative to the staged
	// build context.
	JobDockerfile = JobImageDir + "/Dockerfile"
	// JobBuildStage is the name of the stage that builds the consumer; a
	// job's Dockerfile may not name a stage so.
	JobBuildStage = "edp-consumer-build"
	// JobConsumerPath is the consumer binary in a command job's image.
	JobConsumerPath = "/edp/bin/edp-consumer"
)

// jobSkipped are never copied from a job directory: version control,
// dependency and byte-code caches, virtual environments.
var jobSkipped = map[string]bool{".git": true, "node_modules": true, "__pycache__": true, ".venv": true}

// ValidateJob checks what synth will need of a command job's directory
// (s.JobDir, which settings has checked holds a Dockerfile): a Dockerfile
// edp can extend, and no JobImageDir of its own. It returns nil for the
// Iris job. The app calls it before building any stack, so a bad
// Dockerfile fails synth with a message naming edp:jobDir.
func ValidateJob(s settings.Settings) error {
	if s.Job != names.JobCommand {
		return nil
	}
	if err := checkJobDir(s.JobDir); err != nil {
		return fmt.Errorf("%w: context key %q: %w", settings.ErrInvalid, settings.KeyJobDir, err)
	}
	return nil
}

func checkJobDir(dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, JobImageDir)); err == nil {
		return fmt.Errorf("%s holds %s, a name edp reserves for its own files in the image's build context", dir, JobImageDir)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		return err
	}
	if _, err := parseDockerfile(raw); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, "Dockerfile"), err)
	}
	return nil
}

// jobImage stages the build context of a command job's image under the
// app's output directory and returns the image built from it for platform.
// A problem ValidateJob reports panics here: the app checks first.
func jobImage(scope constructs.Construct, s settings.Settings, repoRoot string, platform awsecrassets.Platform) awsecs.ContainerImage {
	staged := filepath.Join(*awscdk.Stage_Of(scope).Outdir(), "edp-job-"+*awscdk.Stack_Of(scope).ArtifactId())
	if err := stageJobContext(staged, s.JobDir, repoRoot); err != nil {
		panic(fmt.Sprintf("edp: context key %q: stage the job image: %v", settings.KeyJobDir, err))
	}
	return awsecs.ContainerImage_FromAsset(jsii.String(staged), &awsecs.AssetImageProps{
		File:       jsii.String(JobDockerfile),
		Platform:   platform,
		IgnoreMode: awscdk.IgnoreMode_DOCKER,
	})
}

// stageJobContext writes the build context of a command job's image to
// staged (replacing what was there): the job directory's files (without
// jobSkipped), JobImageDir/src with the consumer's Go sources under
// repoRoot (go.mod, go.sum, consumer/, internal/; no tests, no testdata),
// and JobDockerfile. The same inputs give the same files, so the asset's
// hash changes only when they do.
func stageJobContext(staged, jobDir, repoRoot string) error {
	if err := checkJobDir(jobDir); err != nil {
		return err
	}
	user, err := os.ReadFile(filepath.Join(jobDir, "Dockerfile"))
	if err != nil {
		return err
	}
	goVersion, err := goVersionOf(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		return err
	}
	dockerfile, err := jobDockerfile(user, goVersion)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(staged); err != nil {
		return err
	}
	absStaged, err := filepath.Abs(staged)
	if err != nil {
		return err
	}
	if err := copyTree(jobDir, staged, func(rel string, d fs.DirEntry) bool {
		if jobSkipped[d.Name()] {
			return true
		}
		// A job directory that holds the app's output directory (and so
		// the staged context) is not copied into itself.
		abs, err := filepath.Abs(filepath.Join(jobDir, rel))
		return err == nil && d.IsDir() && (abs == absStaged || abs == filepath.Dir(absStaged))
	}); err != nil {
		return err
	}
	src := filepath.Join(staged, JobImageDir, "src")
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := copyFile(filepath.Join(repoRoot, f), filepath.Join(src, f)); err != nil {
			return err
		}
	}
	for _, d := range []string{"consumer", "internal"} {
		if err := copyTree(filepath.Join(repoRoot, d), filepath.Join(src, d), func(_ string, e fs.DirEntry) bool {
			return e.IsDir() && e.Name() == "testdata" || !e.IsDir() && strings.HasSuffix(e.Name(), "_test.go")
		}); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(staged, JobDockerfile), dockerfile, 0o644); err != nil {
		return err
	}
	// A .dockerignore of the job applies to the whole context; edp's
	// folder must stay in it, whatever the job's patterns exclude.
	ignore := filepath.Join(staged, ".dockerignore")
	if raw, err := os.ReadFile(ignore); err == nil {
		if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\n")) {
			raw = append(raw, '\n')
		}
		raw = append(raw, "# added by edp: its consumer's sources and Dockerfile\n!"+JobImageDir+"\n!"+JobImageDir+"/**\n"...)
		if err := os.WriteFile(ignore, raw, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies the regular files, directories and symbolic links under
// from to to, in lexical order, keeping permission bits; skip leaves out an
// entry (and, for a directory, everything under it) by its path relative to
// from.
func copyTree(from, to string, skip func(rel string, d fs.DirEntry) bool) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if rel != "." && skip(rel, d) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			return copyFile(path, dst)
		}
		return nil // sockets, devices, pipes: not build inputs
	})
}

func copyFile(from, to string) error {
	fi, err := os.Stat(from)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, raw, fi.Mode().Perm()|0o644)
}

var goDirective = regexp.MustCompile(`(?m)^go\s+([0-9]+\.[0-9]+(\.[0-9]+)?)\s*$`)

// goVersionOf is the go directive of a go.mod: the Go the consumer is
// built with (the tag of the golang image).
func goVersionOf(gomod string) (string, error) {
	raw, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	m := goDirective.FindSubmatch(raw)
	if m == nil {
		return "", fmt.Errorf("%s has no go directive", gomod)
	}
	return string(m[1]), nil
}

// dockerfile is a user's Dockerfile cut where edp adds its parts.
type dockerfile struct {
	directives string // the leading parser directives (syntax, escape, check)
	prelude    string // after them, up to the first FROM: global ARGs and comments
	body       string // from the first FROM to the end; its last stage is the image
	stages     int    // the FROM instructions
}

// jobDockerfile is the Dockerfile of a command job's image: the user's
// Dockerfile with the consumer's build stage before its first FROM and the
// consumer added to its final stage. No line edp writes is continued, so
// the user's escape directive cannot change them.
func jobDockerfile(user []byte, goVersion string) ([]byte, error) {
	d, err := parseDockerfile(user)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(d.directives)
	b.WriteString(d.prelude)
	fmt.Fprintf(&b, `# --- added by edp: the consumer, cross-compiled for the task's platform (docs/jobs.md) ---
FROM --platform=$BUILDPLATFORM golang:%s AS %s
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY %s/src/ ./
ENV GOCACHE=/cache/go-build
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/cache/go-build CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags='-s -w' -o /out%s ./consumer
RUN mkdir -p /out%s && chmod 1777 /out%s
# --- the job's Dockerfile ---
`, goVersion, JobBuildStage, JobImageDir, JobConsumerPath, names.WorkDirInImage, names.WorkDirInImage)
	b.WriteString(d.body)
	if !strings.HasSuffix(d.body, "\n") {
		b.WriteString("\n")
	}
	// /out/edp is copied as a whole: COPY of a directory copies its
	// contents, so copying /out/edp/work itself would create /edp/work
	// with the default mode instead of 1777.
	fmt.Fprintf(&b, `# --- added by edp to the final stage: the consumer runs the job (docs/jobs.md) ---
COPY --from=%s /out/edp/ /edp/
VOLUME ["%s"]
ENTRYPOINT ["%s"]
CMD ["%s"]
`, JobBuildStage, names.WorkDirInImage, JobConsumerPath, names.ModeDrain)
	return []byte(b.String()), nil
}

var (
	directiveRe = regexp.MustCompile(`(?i)^#\s*(syntax|escape|check)\s*=\s*(.*?)\s*$`)
	heredocRe   = regexp.MustCompile(`<<(-?)(["']?)([A-Za-z_][A-Za-z0-9_]*)(["']?)`)
)

// parseDockerfile cuts a Dockerfile at its first FROM, following the
// Dockerfile syntax far enough to find instructions: parser directives,
// comments, line continuations (with the escape directive's character)
// and here-documents.
func parseDockerfile(raw []byte) (dockerfile, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return dockerfile{}, err
	}
	escape := `\`
	i := 0
	for ; i < len(lines); i++ {
		m := directiveRe.FindStringSubmatch(strings.TrimRight(lines[i], "\r"))
		if m == nil {
			break
		}
		if strings.EqualFold(m[1], "escape") {
			escape = m[2]
			if escape != `\` && escape != "`" {
				return dockerfile{}, fmt.Errorf("line %d: escape directive %q: the escape character must be \\ or `", i+1, escape)
			}
		}
	}
	directives := i
	firstFrom, froms := -1, 0
	for i < len(lines) {
		line := strings.TrimSpace(strings.TrimRight(lines[i], "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			i++
			continue
		}
		start := i
		// One instruction: its line and every continued one (comment and
		// blank lines inside a continuation do not end it).
		text := line
		for strings.HasSuffix(text, escape) {
			text = strings.TrimSuffix(text, escape)
			i++
			for i < len(lines) {
				next := strings.TrimSpace(strings.TrimRight(lines[i], "\r"))
				if next != "" && !strings.HasPrefix(next, "#") {
					break
				}
				i++
			}
			if i == len(lines) {
				return dockerfile{}, fmt.Errorf("line %d: the file ends inside a continued instruction", start+1)
			}
			cont := strings.TrimSpace(strings.TrimRight(lines[i], "\r"))
			text += " " + cont
		}
		i++
		keyword, args, _ := strings.Cut(text, " ")
		keyword = strings.ToUpper(keyword)
		// Here-documents follow the instruction, each up to its own word.
		if keyword == "RUN" || keyword == "COPY" || keyword == "ADD" {
			for _, h := range heredocRe.FindAllStringSubmatch(args, -1) {
				if h[2] != h[4] {
					continue
				}
				end := false
				for ; i < len(lines) && !end; i++ {
					l := strings.TrimRight(lines[i], "\r")
					if h[1] == "-" {
						l = strings.TrimLeft(l, "\t")
					}
					end = l == h[3]
				}
				if !end {
					return dockerfile{}, fmt.Errorf("line %d: here-document %q is never closed", start+1, h[3])
				}
			}
		}
		switch keyword {
		case "FROM":
			stage, err := fromStage(args)
			if err != nil {
				return dockerfile{}, fmt.Errorf("line %d: %w", start+1, err)
			}
			if strings.EqualFold(stage, JobBuildStage) {
				return dockerfile{}, fmt.Errorf("line %d: stage name %q is edp's own", start+1, JobBuildStage)
			}
			if firstFrom < 0 {
				firstFrom = start
			}
			froms++
		case "ARG":
		default:
			if firstFrom < 0 {
				return dockerfile{}, fmt.Errorf("line %d: %s before the first FROM (only ARG may come before it)", start+1, keyword)
			}
		}
	}
	if froms == 0 {
		return dockerfile{}, errors.New("no FROM instruction: edp adds its consumer to the Dockerfile's last stage, and there is none")
	}
	join := func(ls []string) string {
		if len(ls) == 0 {
			return ""
		}
		return strings.Join(ls, "\n") + "\n"
	}
	return dockerfile{
		directives: join(lines[:directives]),
		prelude:    join(lines[directives:firstFrom]),
		body:       join(lines[firstFrom:]),
		stages:     froms,
	}, nil
}

// fromStage returns the stage name FROM's arguments give ("" for none):
// [--flag=value ...] image [AS name].
func fromStage(args string) (string, error) {
	f := strings.Fields(args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		f = f[1:]
	}
	switch {
	case len(f) == 0:
		return "", errors.New("FROM names no image")
	case len(f) == 1:
		return "", nil
	case len(f) == 3 && strings.EqualFold(f[1], "AS"):
		return f[2], nil
	}
	return "", fmt.Errorf("FROM %s: want FROM [--platform=...] image [AS name]", args)
}
