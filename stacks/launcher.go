package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// runTaskStatements are exactly what starting consumer tasks needs, each
// scoped by a condition: run this task definition in this cluster only, tag
// only the tasks RunTask creates, and pass the two task roles to ECS tasks
// only. Every launcher (rule, schedule, dispatch Lambda) gets these.
func (p *Pipeline) runTaskStatements() []awsiam.PolicyStatement {
	return []awsiam.PolicyStatement{
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("RunConsumerTask"),
			Actions:    jsii.Strings("ecs:RunTask"),
			Resources:  &[]*string{p.TaskDefinition.TaskDefinitionArn()},
			Conditions: p.inCluster(),
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("TagStartedTasks"),
			Actions:    jsii.Strings("ecs:TagResource"),
			Resources:  &[]*string{p.clusterTaskArns()},
			Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"ecs:CreateAction": "RunTask"}},
		}),
		awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:        jsii.String("PassTaskRoles"),
			Actions:    jsii.Strings("iam:PassRole"),
			Resources:  &[]*string{p.TaskDefinition.TaskRole().RoleArn(), p.TaskDefinition.ObtainExecutionRole().RoleArn()},
			Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
		}),
	}
}

// inCluster is the condition that limits an ECS action to this cluster.
func (p *Pipeline) inCluster() *map[string]interface{} {
	return &map[string]interface{}{"ArnEquals": map[string]interface{}{"ecs:cluster": p.Cluster.ClusterArn()}}
}

// newLauncherRole is the role a service (EventBridge, the Scheduler) starts
// consumer tasks with: trusted by principal, allowed runTaskStatements. CDK's
// rule and schedule targets write their own, looser statements into the role
// they are given (RunTask without ecs:cluster, PassRole without
// iam:PassedToService, TagResource without ecs:CreateAction), so the targets
// get the role's WithoutPolicyUpdates view; what else the caller needs is
// added here by the stack.
func newLauncherRole(scope constructs.Construct, id string, p *Pipeline, principal awsiam.IPrincipal, description string) awsiam.Role {
	role := awsiam.NewRole(scope, jsii.String(id), &awsiam.RoleProps{AssumedBy: principal, Description: jsii.String(description)})
	for _, st := range p.runTaskStatements() {
		role.AddToPolicy(st)
	}
	return role
}

// frozen is role as given to a CDK target: statements the target adds are
// dropped, and no grant falls back to a resource policy.
func frozen(role awsiam.Role) awsiam.IRole {
	return role.WithoutPolicyUpdates(&awsiam.WithoutPolicyUpdatesOptions{AddGrantsToResources: jsii.Bool(false)})
}
