package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/procgroup"
)

// The test binary is edp itself when these are set: `local up -detach`
// re-executes it as the runtime, which deploys the assembly as is.
const (
	asEdpEnv    = "EDP_TEST_AS_EDP"
	assemblyEnv = "EDP_TEST_ASSEMBLY"
)

func TestMain(m *testing.M) {
	if os.Getenv(asEdpEnv) != "" {
		assemblyDir = os.Getenv(assemblyEnv)
		if err := os.Chdir(filepath.Join("..", "..")); err != nil {
			panic(err)
		}
		os.Exit(run(os.Args[1:]))
	}
	code := m.Run()
	removeSharedAssembly()
	os.Exit(code)
}

// proc is one process as /proc shows it.
type proc struct {
	procgroup.Process
	comm string
}

// descendants are the processes below pid, read from /proc (independent of
// the process file under test).
func descendants(t *testing.T, pid int) []proc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	parent, comm := map[int]int{}, map[int]string{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		f := strings.Fields(s[end+1:])
		if open < 0 || len(f) < 2 || f[0] == "Z" {
			continue
		}
		comm[p] = s[open+1 : end]
		parent[p], _ = strconv.Atoi(f[1])
	}
	var out []proc
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				out = append(out, proc{procgroup.Of(p), comm[p]})
				break
			}
		}
	}
	return out
}

// upDetached runs `edp local up -detach` (alarm-dispatch: moto_server and
// the Lambda's Runtime Interface Emulator start with it; the function's
// bootstrap only at its first invocation), starts a serving task through
// the local ECS API, and returns the state and every process below the
// runtime once moto_server, the task and the emulator all run.
func upDetached(t *testing.T, workDir string) (state, []proc) {
	t.Helper()
	t.Cleanup(func() {
		// Whatever the test did, nothing may outlive it (t.Context is
		// canceled by now).
		var out bytes.Buffer
		if code := cmdLocal(context.Background(), []string{"down", "-work-dir", workDir}, &out, &out); code != 0 {
			t.Errorf("cleanup: edp local down: exit %d\n%s", code, out.String())
		}
	})
	var out, errb bytes.Buffer
	if code := cmdLocal(t.Context(), []string{"up", "-detach", "-arch", "alarm-dispatch", "-work-dir", workDir}, &out, &errb); code != 0 {
		t.Fatalf("edp local up -detach: exit %d\n%s%s", code, out.String(), errb.String())
	}
	st, err := readState(workDir)
	if err != nil {
		t.Fatal(err)
	}
	runServingTask(t, st)

	want := []string{"moto_server", "consumer", "aws-lambda-rie"}
	deadline := time.Now().Add(time.Minute)
	for {
		procs := descendants(t, st.PID)
		seen := map[string]bool{}
		for _, p := range procs {
			seen[p.comm] = true
		}
		missing := false
		for _, w := range want {
			missing = missing || !seen[w]
		}
		if !missing {
			return st, procs
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes below the runtime %v, want %v among them", procs, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// runServingTask starts one task of the deployed task definition through
// the local ECS API, as `serve` (it runs until stopped).
func runServingTask(t *testing.T, st state) {
	t.Helper()
	c, err := localcloud.NewClients(t.Context(), st.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := c.ECS.ListTaskDefinitions(t.Context(), &ecs.ListTaskDefinitionsInput{})
	if err != nil || len(defs.TaskDefinitionArns) == 0 {
		t.Fatalf("task definitions: %v, %v", defs, err)
	}
	td, err := c.ECS.DescribeTaskDefinition(t.Context(), &ecs.DescribeTaskDefinitionInput{TaskDefinition: aws.String(defs.TaskDefinitionArns[0])})
	if err != nil {
		t.Fatal(err)
	}
	clusters, err := c.ECS.ListClusters(t.Context(), &ecs.ListClustersInput{})
	if err != nil || len(clusters.ClusterArns) != 1 {
		t.Fatalf("clusters: %v, %v; want the stack's one", clusters, err)
	}
	local := ecs.New(ecs.Options{
		Region: localcloud.Region, BaseEndpoint: aws.String(st.ECSEndpoint),
		Credentials: credentials.NewStaticCredentialsProvider(localcloud.AccessKeyID, localcloud.SecretAccessKey, ""),
	})
	_, err = local.RunTask(t.Context(), &ecs.RunTaskInput{
		Cluster:        aws.String(clusters.ClusterArns[0]),
		TaskDefinition: td.TaskDefinition.TaskDefinitionArn,
		LaunchType:     ecstypes.LaunchTypeFargate,
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: []string{"subnet-local"},
		}},
		Overrides: &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
			Name: td.TaskDefinition.ContainerDefinitions[0].Name, Command: []string{"serve"},
		}}},
	})
	if err != nil {
		t.Fatalf("run a task on the local ECS: %v", err)
	}
}

// waitGone waits until none of procs runs (a zombie does not).
func waitGone(t *testing.T, procs []proc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []proc
		for _, p := range procs {
			if p.Running() {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after %s: %v", within, left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func noFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it removed", path, err)
	}
}

// Every process the local cloud starts goes with it: on SIGHUP (a closed
// terminal) the runtime stops them all itself; after a SIGKILL, `edp local
// down` finds and stops them from the process file. Checked by PID, from
// /proc, independently of that file.
func TestLocalUpLeavesNoProcess(t *testing.T) {
	assembly := assemblyForTests(t)
	t.Setenv(asEdpEnv, "1")
	t.Setenv(assemblyEnv, assembly)
	for _, v := range []string{"arch", "work-dir", "speedup", "detach"} {
		t.Setenv(envName(v), "")
	}

	t.Run("SIGHUP", func(t *testing.T) {
		workDir := t.TempDir()
		st, procs := upDetached(t, workDir)
		if err := syscall.Kill(st.PID, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		runtime := proc{st.runtime(), "edp"}
		// The task's stop timeout bounds its stop; an idle one goes at once.
		waitGone(t, append(procs, runtime), names.StopTimeout)
		noFile(t, statePath(workDir))
		noFile(t, procsPath(workDir))
	})

	t.Run("SIGKILL then down", func(t *testing.T) {
		workDir := t.TempDir()
		st, procs := upDetached(t, workDir)
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, []proc{{st.runtime(), "edp"}}, 10*time.Second)
		// What outlived the runtime is what down must name.
		names := map[string]string{"moto_server": "stopped moto_server (pid ", "consumer": "stopped task ", "aws-lambda-rie": "stopped lambda "}
		var wants []string
		for _, p := range procs {
			if p.Running() {
				wants = append(wants, names[p.comm])
			}
		}
		if !slices.Contains(wants, names["moto_server"]) {
			t.Fatal("moto_server went with the runtime: the test no longer shows orphans")
		}
		var out, errb bytes.Buffer
		start := time.Now()
		if code := cmdLocal(t.Context(), []string{"down", "-work-dir", workDir}, &out, &errb); code != 0 {
			t.Fatalf("edp local down: exit %d\n%s%s", code, out.String(), errb.String())
		}
		t.Logf("edp local down took %s:\n%s", time.Since(start).Round(time.Millisecond), out.String())
		waitGone(t, procs, time.Second)
		for _, w := range append(wants, "is gone") {
			if !strings.Contains(out.String(), w) {
				t.Errorf("down's output lacks %q", w)
			}
		}
		noFile(t, statePath(workDir))
		noFile(t, procsPath(workDir))
	})
}
