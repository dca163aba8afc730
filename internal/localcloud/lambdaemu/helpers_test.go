package lambdaemu

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the binaries the tests build, once per test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdaemu-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module root, found through the go command.
var repoRoot = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the module (GOMOD=%q)", gomod)
	}
	return filepath.Dir(gomod), nil
})

// builds caches one build per package.
var builds sync.Map // package path → func() (string, error)

// buildBootstrap builds the main package pkg (relative to the module root)
// as a Lambda bootstrap for this machine, the way the stack builds it for
// Lambda (tag lambda.norpc, no cgo), and returns the executable's path.
// Each binary is alone in its directory, like /var/task.
func buildBootstrap(t *testing.T, pkg string) string {
	return build(t, "./"+pkg, "bootstrap", "-tags", "lambda.norpc")
}

// buildRIE builds aws-lambda-rie, the tool go.mod pins.
func buildRIE(t *testing.T) string {
	return build(t, rieTool, "aws-lambda-rie")
}

const rieTool = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"

// start starts fn with the RIE and stops it at the end of the test.
func start(t *testing.T, fn Function) *Runtime {
	t.Helper()
	fn.RIE = buildRIE(t)
	r, err := Start(t.Context(), fn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// build builds pkg into a directory of its own as name, once per test run.
func build(t *testing.T, pkg, name string, flags ...string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(pkg, sync.OnceValues(func() (string, error) {
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		dir := filepath.Join(binDir, strings.NewReplacer("/", "_", ".", "_").Replace(pkg))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), pkg)...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
		}
		return out, nil
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// syncBuffer collects process output while tests read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// waitFor reports whether the output contains want within a few seconds:
// a process's output reaches the writer through a pipe, independently of
// its Runtime API calls, as Lambda's logs reach CloudWatch.
func (s *syncBuffer) waitFor(want string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
