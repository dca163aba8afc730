package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// TestMain stops the jsii runtime once, after every test: a runtime
// stopped and started again in one process breaks objects CDK caches.
func TestMain(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// Invalid context fails the app before any stack is built, naming the key.
func TestInvalidContextFailsWithTheKeyName(t *testing.T) {
	app := awscdk.NewApp(&awscdk.AppProps{
		Context: &map[string]any{settings.KeyMaxTasks: "lots"},
		Outdir:  jsii.String(t.TempDir()),
	})
	err := build(app, ".")
	if !errors.Is(err, settings.ErrInvalid) {
		t.Fatalf("build: got %v, want a settings.ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), `"edp:maxTasks"`) || !strings.Contains(err.Error(), "from 1 to 1000") {
		t.Errorf("error %q should name the key and the allowed values", err)
	}
	if n := len(*app.Node().Children()); n != 0 {
		t.Errorf("app has %d children after a failed build, want none", n)
	}

	ok := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	if err := build(ok, "."); err != nil {
		t.Fatalf("build with defaults: %v", err)
	}
	for _, id := range []string{names.StackOneOff, names.StackAlarmService, names.StackAlarmDispatch, names.StackCron} {
		if ok.Node().TryFindChild(jsii.String(id)) == nil {
			t.Errorf("stack %s missing", id)
		}
	}
}

// A job directory's job.json that is not what it should be fails the app,
// naming the file, before any stack is built.
func TestBadJobFileFailsNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"Dockerfile": "FROM scratch\n", names.JobContextFile: `{"edp:job": "command",`} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	app := awscdk.NewApp(&awscdk.AppProps{
		Context: &map[string]any{settings.KeyJobDir: dir},
		Outdir:  jsii.String(t.TempDir()),
	})
	err := build(app, ".")
	if !errors.Is(err, settings.ErrJobFile) || !strings.Contains(err.Error(), filepath.Join(dir, names.JobContextFile)) {
		t.Fatalf("build: got %v, want a settings.ErrJobFile naming the file", err)
	}
	if n := len(*app.Node().Children()); n != 0 {
		t.Errorf("app has %d children after a failed build, want none", n)
	}
}

// `-c edp:jobDir=DIR` alone builds a command job from DIR/job.json; a
// Dockerfile edp cannot extend fails the app, naming edp:jobDir.
func TestJobDirAloneBuildsTheCommandJob(t *testing.T) {
	write := func(files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	job := `{"edp:job": "command", "edp:jobCommand": ["python3", "./train.py"], "edp:jobMaxOutputFiles": 100}`
	bad := write(map[string]string{"Dockerfile": "ARG X\n", names.JobContextFile: job})
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{settings.KeyJobDir: bad}, Outdir: jsii.String(t.TempDir())})
	err := build(app, ".")
	if !errors.Is(err, settings.ErrInvalid) || !strings.Contains(err.Error(), `"edp:jobDir"`) || !strings.Contains(err.Error(), "no FROM") {
		t.Fatalf("build: got %v, want a settings.ErrInvalid naming edp:jobDir", err)
	}
	if n := len(*app.Node().Children()); n != 0 {
		t.Errorf("app has %d children after a failed build, want none", n)
	}

	dir := write(map[string]string{"Dockerfile": "FROM python:3.12-slim\n", names.JobContextFile: job})
	app = awscdk.NewApp(&awscdk.AppProps{
		Context: &map[string]any{settings.KeyJobDir: dir, settings.KeyJobMaxOutputFiles: "7"},
		Outdir:  jsii.String(t.TempDir()),
	})
	if err := build(app, "."); err != nil {
		t.Fatalf("build: %v", err)
	}
	stack := app.Node().TryFindChild(jsii.String(names.StackOneOff)).(awscdk.Stack)
	tpl := assertions.Template_FromStack(stack, nil)
	tpl.HasResourceProperties(jsii.String("AWS::ECS::TaskDefinition"), &map[string]any{
		"ContainerDefinitions": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
			"Environment": assertions.Match_ArrayWith(&[]any{
				map[string]any{"Name": names.EnvJobCommand, "Value": `["python3","./train.py"]`},
				map[string]any{"Name": names.EnvJobMaxOutputFiles, "Value": "7"},
			}),
		})}),
	})
}
