// Package e2e tests the four edp architectures end to end through their
// deployed templates: each top-level test deploys one stack into the local
// cloud (internal/localcloud: moto_server for S3, EventBridge, SQS and
// CloudFormation; local processes for ECS tasks, the rule and Scheduler
// targets, the alarms and scaling, and the real alarm-dispatch bootstrap),
// uploads configs to the stack's bucket and checks what ends up there: run
// records, artifacts, the dead-letter queue and the local ECS tasks.
// TestSimulatorPredictsLocalCloud also checks internal/sim's predictions
// against a run of each architecture (simulator_test.go).
//
// Every test owns its moto_server and a fault proxy (internal/faultproxy)
// that sits between the tasks (and the Lambda) and moto, so a test can slow
// a config read down, hold it, or take the emulator away for a few seconds.
// The four architectures run in parallel; within one, the scenarios run in
// order, each on keys of its own (configs/<scenario>/...).
//
// Time is sped up: a CloudWatch minute lasts 2 s, the consumer's 20 s long
// poll 1 s, and the cron schedule (daily) fires every 10 s. The queue's
// visibility timeout is not sped up: it is synthesized at its minimum of
// 30 s, so a killed task's message comes back after 30 s.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/edp-pipelines/edp/internal/localcloud"
)

// repoRoot is the repository root, seen from this package.
var repoRoot = filepath.Join("..", "..", "..")

// Stack knobs the tests synthesize with (CDK context), and what they mean
// for the tests. One assembly serves all four stacks.
const (
	// visibilitySeconds is the queue's visibility timeout: the time a
	// killed task's message stays hidden (the minimum the stacks allow).
	visibilitySeconds = 30
	// scaleOutThreshold is N, the visible messages that start consumers.
	// Above messagesPerTask*maxTasks, so a dispatch decision that N
	// triggers always starts maxTasks tasks, however far an upload burst
	// has got when the alarm is evaluated.
	scaleOutThreshold = 15
	// maxWaitMinutes starts consumers for a backlog below N: 10 s of real
	// time at the speed-up.
	maxWaitMinutes = 5
	// maxTasks caps the service, the dispatcher and the cron stack's drain
	// tasks.
	maxTasks = 3
	// messagesPerTask is the backlog one dispatched task is sized for.
	messagesPerTask = 5
	// scaleInIdleMinutes is how long the service's queue must be idle
	// before it scales to zero (6 s of real time).
	scaleInIdleMinutes = 3
	// speedup is the local cloud's time compression (its default).
	speedup = 30
)

// testContext is the CDK context the stacks are synthesized with.
var testContext = map[string]string{
	"edp:visibilityTimeoutSeconds": fmt.Sprint(visibilitySeconds),
	"edp:scaleOutThreshold":        fmt.Sprint(scaleOutThreshold),
	"edp:maxWaitMinutes":           fmt.Sprint(maxWaitMinutes),
	"edp:maxTasks":                 fmt.Sprint(maxTasks),
	"edp:messagesPerTask":          fmt.Sprint(messagesPerTask),
	"edp:scaleInIdleMinutes":       fmt.Sprint(scaleInIdleMinutes),
}

// assemblyDir is the synthesis of the stacks most tests deploy (the
// built-in job); jobAssembly makes those of command jobs.
var assemblyDir string

// synthRoot holds the syntheses; removed when the tests end.
var synthRoot string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "edp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	synthRoot = dir
	assemblyDir, err = localcloud.Synthesize(context.Background(), localcloud.SynthOptions{
		RepoRoot: repoRoot, OutDir: filepath.Join(dir, "cdk.out"), Context: testContext,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: synthesize:", err)
		return 1
	}
	// The four architectures and the command jobs' stacks spend most of
	// their time waiting (alarm periods, the visibility timeout, schedule
	// fires, job timeouts), not computing: run all of them at once even on
	// a 2-core machine, unless -parallel says otherwise.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		if err := flag.Set("test.parallel", "7"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}
