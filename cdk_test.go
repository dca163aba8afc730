package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// Invalid context fails the app before any stack is built, naming the key.
func TestInvalidContextFailsWithTheKeyName(t *testing.T) {
	defer jsii.Close()
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
