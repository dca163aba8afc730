package benchreport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edp-pipelines/edp/internal/localcloud"
	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// localTimeout bounds the wait for one architecture's batch.
const localTimeout = 10 * time.Minute

// localArchs are the architectures measured, in the doc's order, with
// the names `make local ARCH=` takes.
var localArchs = []struct{ arch, stack, note string }{
	{"oneoff", names.StackOneOff, "every upload starts a drain task through the rule's ECS target"},
	{"alarm-service", names.StackAlarmService, "the local ECS starts the new service at 1 task (as ECS does without a desired count), " +
		"so the batch meets a running consumer; the backlog alarms (a 2 s period at the default speed-up) scale it"},
	{"alarm-dispatch", names.StackAlarmDispatch, "the backlog alarm → SNS → the dispatch Lambda (under aws-lambda-rie) → RunTask"},
	{"cron", names.StackCron, "a scheduled drain: the local schedule fires every 10 s, so part of the figure is waiting for the next fire"},
}

// measureLocal deploys each architecture into its own local cloud at the
// default speed-up, uploads n copies of examples/decision-tree.yaml and
// times upload → done: until every upload has a run that ended (the
// recent-runs index, stackview.Recent) and the queue is empty.
func measureLocal(ctx context.Context, root string, n int, progress io.Writer) (Section, error) {
	sec := Section{
		Title: "Local cloud",
		Intro: fmt.Sprintf("Each architecture deployed into its own local cloud (moto_server + the local runtime, "+
			"`internal/localcloud`) at the default speed-up, from one synthesized assembly; then %d copies of "+
			"`examples/decision-tree.yaml` uploaded under `configs/`. One run per architecture: deploy is `localcloud.Up` "+
			"(moto's CloudFormation included), upload→done-s runs from the first upload until every upload has an ended run "+
			"in the recent-runs index and the queue is empty; the index is polled every 0.5 s.", n),
	}
	dir, err := os.MkdirTemp("", "edp-bench-local-")
	if err != nil {
		return sec, err
	}
	defer os.RemoveAll(dir)
	asm, err := localcloud.Synthesize(ctx, localcloud.SynthOptions{RepoRoot: root, OutDir: filepath.Join(dir, "cdk.out")})
	if err != nil {
		return sec, err
	}
	body, err := os.ReadFile(filepath.Join(root, "examples", "decision-tree.yaml"))
	if err != nil {
		return sec, err
	}
	for _, a := range localArchs {
		fmt.Fprintf(progress, "benchreport: local cloud %s, %d configs\n", a.arch, n)
		row, err := measureArch(ctx, root, filepath.Join(dir, a.arch), asm, a.stack, body, n)
		if err != nil {
			return sec, fmt.Errorf("local cloud %s: %w", a.arch, err)
		}
		row.Name, row.Note = a.arch, a.note+"; "+row.Note
		sec.Rows = append(sec.Rows, row)
	}
	return sec, nil
}

// measureArch brings one stack up, uploads the batch and waits for it.
func measureArch(ctx context.Context, root, workDir, asm, stack string, body []byte, n int) (_ Row, err error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return Row{}, err
	}
	logFile, err := os.Create(filepath.Join(workDir, "cloud.log"))
	if err != nil {
		return Row{}, err
	}
	defer logFile.Close()
	t0 := time.Now()
	cloud, err := localcloud.Up(ctx, localcloud.Options{
		RepoRoot: root, Stack: stack, AssemblyDir: asm, WorkDir: workDir,
		Logger: slog.New(slog.NewJSONHandler(logFile, nil)),
	})
	if err != nil {
		return Row{}, err
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err = errors.Join(err, cloud.Close(c))
	}()
	deploy := time.Since(t0)
	bucket := cloud.Stack().Outputs[names.OutputBucket]
	api := cloud.Clients().S3
	uploaded := map[string]time.Time{}
	start := time.Now()
	for i := range n {
		key := fmt.Sprintf("%sbench-%02d.yaml", names.ConfigPrefix, i)
		uploaded[key] = time.Now()
		if _, err := api.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(body))}); err != nil {
			return Row{}, fmt.Errorf("upload %s: %w", key, err)
		}
	}
	recent := &stackview.Recent{API: api, Bucket: bucket}
	deadline := start.Add(localTimeout)
	for {
		s, err := localcloud.Snapshot(ctx, cloud, recent, 2*n+10)
		if err == nil && s.Settled(uploaded) {
			took := time.Since(start)
			note := fmt.Sprintf("%d of %d runs succeeded", s.Succeeded, n)
			return Row{Note: note, Figures: []Figure{
				{Unit: "upload→done-s", S: Summarize([]float64{took.Seconds()})},
				{Unit: "jobs/s", S: Summarize([]float64{float64(n) / took.Seconds()})},
				{Unit: "deploy-s", S: Summarize([]float64{deploy.Seconds()})},
			}}, nil
		}
		if time.Now().After(deadline) {
			return Row{}, fmt.Errorf("not every upload has an ended run after %s (last read: %v)", localTimeout, err)
		}
		select {
		case <-ctx.Done():
			return Row{}, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
