package stacks

import (
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// NagSuppressions are the cdk-nag AwsSolutions findings edp accepts, each
// with the reason and, for wildcard findings, exactly the resources it
// covers. This is the only place findings are suppressed; tests assert that
// every stack has no other error. A command job's read grants (settings s)
// add their own, for exactly the prefixes and buckets s names.
func NagSuppressions(s settings.Settings) []*cdknag.NagPackSuppression {
	resource := func(pattern string) interface{} {
		return &cdknag.RegexAppliesTo{Regex: jsii.String("/^Resource::" + pattern + "$/")}
	}
	out := []*cdknag.NagPackSuppression{
		{
			Id: jsii.String("AwsSolutions-S1"),
			Reason: jsii.String("Server access logs would need a second bucket per stack (itself unlogged); object uploads " +
				"are already recorded as EventBridge events and in run records, and CloudTrail data events cover audit needs."),
		},
		{
			Id: jsii.String("AwsSolutions-SQS3"),
			Reason: jsii.String("DeliveryDLQ and DispatchFailures ARE dead-letter queues: of the EventBridge/Scheduler targets " +
				"and of the Lambda's async invocations. The work queue has its own redrive DLQ."),
		},
		{
			Id: jsii.String("AwsSolutions-ECS2"),
			Reason: jsii.String("The environment holds only non-secret names (queue URLs, bucket, prefixes, timeouts); " +
				"the consumer gets AWS credentials from its task role."),
		},
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Task role: object-level access is scoped to the key prefixes the consumer owns " +
				"(read " + names.ConfigPrefix + ", write " + names.ArtifactPrefix + " and " + names.RecordPrefix + "); keys are user-chosen."),
			AppliesTo: &[]interface{}{
				resource(`<PipelineBucket[0-9A-F]+\.Arn>/(configs|artifacts|runs)/\*`),
			},
		},
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Task ARNs are created at run time; access is scoped to tasks of this stack's cluster " +
				"(events/scheduler/dispatch roles: tag and describe the tasks they start)."),
			AppliesTo: &[]interface{}{
				resource(`arn:<AWS::Partition>:ecs:.+:task/<PipelineCluster[0-9A-F]+>/\*`),
			},
		},
		{
			Id: jsii.String("AwsSolutions-IAM5"),
			Reason: jsii.String("Actions without resource-level permissions: ecr:GetAuthorizationToken (execution role) and " +
				"ecs:ListTasks (dispatch role, and the cron task role to cap its drain tasks; limited to this cluster by an ecs:cluster condition)."),
			AppliesTo: &[]interface{}{jsii.String("Resource::*")},
		},
	}
	if s.Job != names.JobCommand || len(s.JobReadPrefixes)+len(s.JobReadBuckets) == 0 {
		return out
	}
	var reads []interface{}
	for _, p := range s.JobReadPrefixes {
		reads = append(reads, resource(`<PipelineBucket[0-9A-F]+\.Arn>/`+regexp.QuoteMeta(p)+`\*`))
	}
	for _, b := range s.JobReadBuckets {
		reads = append(reads, resource(`arn:<AWS::Partition>:s3:::`+regexp.QuoteMeta(b)+`/\*`))
	}
	return append(out, &cdknag.NagPackSuppression{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Command job: read-only access (s3:GetObject) to the objects under the key prefixes of " +
			settings.KeyJobReadPrefixes + " and to the buckets of " + settings.KeyJobReadBuckets + "; the job's inputs are user-chosen keys."),
		AppliesTo: &reads,
	})
}

// applyNagSuppressions attaches NagSuppressions(s) to every resource of stack.
func applyNagSuppressions(stack awscdk.Stack, s settings.Settings) {
	list := NagSuppressions(s)
	cdknag.NagSuppressions_AddStackSuppressions(stack, &list, jsii.Bool(false))
}
