// Command cdk-app is edp's CDK app: it reads CDK context once, validates it
// (an invalid value fails synth with a message that names the key), builds
// the four stacks and synthesizes them, with cdk-nag's AwsSolutions checks
// applied to every stack.
//
// cdk.json runs the pre-built binary (bin/cdk-app, built by `make app`).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/stacks"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	if err := build(app, "."); err != nil {
		fmt.Fprintln(os.Stderr, "edp:", err)
		jsii.Close()
		os.Exit(1)
	}
	app.Synth(nil)
}

// build reads and validates the app's context and adds the four stacks,
// each built from the sources under repoRoot. The job directory's job file
// (edp:jobDir/job.json), if any, is a layer below the context: context
// given explicitly wins.
func build(app awscdk.App, repoRoot string) error {
	get, err := settings.WithJobFile(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) })
	if err != nil {
		return err
	}
	s, err := settings.FromContext(get)
	if err != nil {
		return err
	}
	if err := stacks.ValidateJob(s); err != nil {
		return err
	}
	// Stacks are environment-agnostic unless edp:account/edp:region pin
	// them; looking up a VPC needs a concrete environment.
	env := &awscdk.Environment{}
	if s.Account != "" {
		env.Account = jsii.String(s.Account)
	}
	if s.Region != "" {
		env.Region = jsii.String(s.Region)
	}
	if s.Network == settings.NetworkImport || s.Network == settings.NetworkDefault {
		if env.Account == nil {
			env.Account = jsii.String(os.Getenv("CDK_DEFAULT_ACCOUNT"))
		}
		if env.Region == nil {
			env.Region = jsii.String(os.Getenv("CDK_DEFAULT_REGION"))
		}
	}

	awscdk.Tags_Of(app).Add(jsii.String("project"), jsii.String("edp"), nil)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)

	props := func(description string) *stacks.Props {
		return &stacks.Props{
			StackProps: awscdk.StackProps{Env: env, Description: jsii.String(description)},
			Settings:   s,
			RepoRoot:   repoRoot,
		}
	}
	stacks.NewOneOffStack(app, names.StackOneOff, props("edp one-off: each config upload starts a drain task"))
	stacks.NewAlarmServiceStack(app, names.StackAlarmService, props("edp alarm service: an ECS service scaled 0..N by queue alarms"))
	stacks.NewAlarmDispatchStack(app, names.StackAlarmDispatch, props("edp alarm dispatch: queue alarm -> SNS -> Lambda -> ecs:RunTask"))
	stacks.NewCronStack(app, names.StackCron, props("edp cron: a scheduled task drains the queue"))
	return nil
}
