// Package stacks defines edp's four CDK stacks — one per way of running the
// consumer — and the Pipeline construct they all share.
//
// Stacks never import runtime code: they refer to the consumer and to the
// alarm-dispatch Lambda only by their paths under Props.RepoRoot. Every knob
// arrives validated in a settings.Settings; nothing here reads context or env.
package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Props are shared by every edp stack.
type Props struct {
	awscdk.StackProps

	// Settings are the validated knobs (see internal/settings). Required.
	Settings settings.Settings

	// RepoRoot is the repository root, from which the consumer image
	// (consumer/Dockerfile) and the Lambda (lambdas/alarm-dispatch) are
	// built. Default ".", right for `cdk synth` from the repo root.
	RepoRoot string
}

func (p *Props) repoRoot() string {
	if p.RepoRoot == "" {
		return "."
	}
	return p.RepoRoot
}
