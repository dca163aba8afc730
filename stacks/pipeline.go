package stacks

import (
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// PipelineProps configure the shared Pipeline construct.
type PipelineProps struct {
	// Settings are the validated knobs. Required.
	Settings settings.Settings
	// Mode is the consumer's command in the task definition: names.ModeDrain
	// (default) or names.ModeServe.
	Mode string
	// RepoRoot is where consumer/Dockerfile is found. Default ".".
	RepoRoot string
	// MaxTasks caps the drain tasks of this task definition that work at
	// once: the container gets EDP_MAX_TASKS, and the task role may list
	// the cluster's tasks to count them (consumer/taskcap). Default 0: no
	// cap, no variable, no permission.
	MaxTasks int
}

// withDefaults returns the props with every empty field at its default.
func (props PipelineProps) withDefaults() PipelineProps {
	if props.Mode == "" {
		props.Mode = names.ModeDrain
	}
	if props.RepoRoot == "" {
		props.RepoRoot = "."
	}
	return props
}

// Pipeline is the event path and the compute every architecture shares:
// bucket → EventBridge rule → queue (+DLQ), an ECS cluster and a Fargate task
// definition of the consumer whose role may consume the queue, read configs
// and write artifacts and run records — nothing else.
type Pipeline struct {
	// Node is the construct that scopes every resource below. (jsii cannot
	// use a Go struct that embeds a construct as a scope, hence a field.)
	Node constructs.Construct

	Bucket awss3.Bucket
	Queue  awssqs.Queue
	// DeadLetterQueue receives messages that failed MaxReceiveCount times, and
	// permanent failures the consumer moves there at once.
	DeadLetterQueue awssqs.Queue
	// DeliveryDLQ receives events that EventBridge or the Scheduler could not
	// deliver to a target (queue or RunTask) after their retries.
	DeliveryDLQ awssqs.Queue
	Rule        awsevents.Rule

	Network *Network
	// Placement is where and how every consumer task starts, whoever starts
	// it (rule target, schedule, service).
	Placement      TaskPlacement
	Cluster        awsecs.Cluster
	TaskDefinition awsecs.FargateTaskDefinition
	Container      awsecs.ContainerDefinition
	LogGroup       awslogs.LogGroup

	// Alerts is the stack's alert topic; NewPipeline watches both DLQs and
	// the work queue's age, and a stack adds the alarms of its own parts.
	Alerts *Alerts

	// Removal is the removal policy of stateful resources (from settings).
	Removal awscdk.RemovalPolicy
	// Mode is the consumer's mode in the task definition (PipelineProps.Mode).
	Mode string
}

// NewPipeline builds the shared construct: the event path (bucket, queues,
// rule), then the compute that consumes it, then the stack outputs.
func NewPipeline(scope constructs.Construct, id string, props *PipelineProps) *Pipeline {
	cfg := props.withDefaults()
	p := &Pipeline{
		Node:    constructs.NewConstruct(scope, jsii.String(id)),
		Removal: removalPolicy(cfg.Settings),
		Mode:    cfg.Mode,
	}
	p.Bucket = newBucket(p.Node, cfg.Settings, p.Removal)
	p.addQueues(cfg.Settings)
	p.Rule = newUploadRule(p.Node, p.Bucket, p.Queue, p.DeliveryDLQ)
	p.addCompute(cfg)
	p.addAlerts(cfg.Settings)
	p.addOutputs()
	return p
}

// addAlerts builds the alert topic and watches what the pipeline can leave
// waiting: the two dead-letter queues and the work queue's oldest message.
func (p *Pipeline) addAlerts(s settings.Settings) {
	p.Alerts = newAlerts(p.Node, s, p.Removal)
	p.Alerts.watchNotEmpty(p.Node, "DeadLetterQueueNotEmptyAlarm", "dead-letters", p.DeadLetterQueue,
		"messages in the dead-letter queue: jobs that failed (see runs/ and `consumer dlq list`)")
	p.Alerts.watchNotEmpty(p.Node, "DeliveryDLQNotEmptyAlarm", "undelivered-events", p.DeliveryDLQ,
		"events EventBridge or the Scheduler could not deliver to a target (queue or RunTask)")
	p.Alerts.watchAge(p.Node, p.Queue, s)
}

// removalPolicy is the policy of stateful resources: RETAIN unless the
// settings ask for "destroy".
func removalPolicy(s settings.Settings) awscdk.RemovalPolicy {
	if s.RemovalPolicy == "destroy" {
		return awscdk.RemovalPolicy_DESTROY
	}
	return awscdk.RemovalPolicy_RETAIN
}

// newBucket builds the private, versioned pipeline bucket, which sends its
// events to EventBridge.
func newBucket(scope constructs.Construct, s settings.Settings, removal awscdk.RemovalPolicy) awss3.Bucket {
	bucket := awss3.NewBucket(scope, jsii.String("Bucket"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		Versioned:         jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-old-versions"),
			NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(float64(s.NoncurrentDays))),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
			ExpiredObjectDeleteMarker:           jsii.Bool(true),
		}},
		RemovalPolicy:     removal,
		AutoDeleteObjects: jsii.Bool(removal == awscdk.RemovalPolicy_DESTROY),
	})
	// EventBridge notifications are set on the CloudFormation resource itself:
	// CDK's EventBridgeEnabled would deploy a custom-resource Lambda for it.
	bucket.Node().DefaultChild().(awss3.CfnBucket).AddPropertyOverride(
		jsii.String("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled"), jsii.Bool(true))
	return bucket
}

// addQueues builds the work queue and its two dead-letter queues.
func (p *Pipeline) addQueues(s settings.Settings) {
	// A redriven message keeps its original enqueue time, so a DLQ must keep
	// messages longer than its source queue: every DLQ gets SQS's maximum,
	// and settings caps the work queue's retention below it.
	p.DeadLetterQueue = newQueue(p.Node, "DeadLetterQueue", DeadLetterRetention(), p.Removal, nil)
	p.DeliveryDLQ = newQueue(p.Node, "DeliveryDLQ", DeadLetterRetention(), p.Removal, nil)
	retention := awscdk.Duration_Days(jsii.Number(float64(s.QueueRetentionDays)))
	p.Queue = newQueue(p.Node, "Queue", retention, p.Removal, &awssqs.QueueProps{
		VisibilityTimeout:      awscdk.Duration_Seconds(jsii.Number(float64(s.VisibilityTimeoutSeconds))),
		ReceiveMessageWaitTime: awscdk.Duration_Seconds(jsii.Number(20)),
		DeadLetterQueue: &awssqs.DeadLetterQueue{
			Queue:           p.DeadLetterQueue,
			MaxReceiveCount: jsii.Number(float64(s.MaxReceiveCount)),
		},
	})
}

// newUploadRule builds the rule that sends config uploads to the queue;
// what EventBridge cannot deliver lands in deliveryDLQ.
func newUploadRule(scope constructs.Construct, bucket awss3.Bucket, queue, deliveryDLQ awssqs.Queue) awsevents.Rule {
	rule := awsevents.NewRule(scope, jsii.String("ConfigUploaded"), &awsevents.RuleProps{
		Description:  jsii.String("A pipeline config was uploaded under " + names.ConfigPrefix),
		EventPattern: ConfigEventPattern(bucket.BucketName()),
	})
	rule.AddTarget(awseventstargets.NewSqsQueue(queue, &awseventstargets.SqsQueueProps{
		DeadLetterQueue: deliveryDLQ,
		RetryAttempts:   jsii.Number(185),
		MaxEventAge:     awscdk.Duration_Hours(jsii.Number(24)),
	}))
	return rule
}

// addCompute builds where the consumer runs: network, cluster, the task
// definition with its log group and container, and the task role's grants.
func (p *Pipeline) addCompute(cfg PipelineProps) {
	s := cfg.Settings
	p.Network = newNetwork(p.Node, s, p.Removal)
	p.Placement = p.Network.Placement()
	p.Cluster = newCluster(p.Node, p.Network.Vpc)
	cpuArch, platform := architecture(s.Architecture)
	p.TaskDefinition = newTaskDefinition(p.Node, s, cpuArch)
	p.LogGroup = awslogs.NewLogGroup(p.Node, jsii.String("Logs"), &awslogs.LogGroupProps{
		Retention:     retentionDays(s.LogRetentionDays),
		RemovalPolicy: p.Removal,
	})
	if s.Job == names.JobCommand {
		p.Container = p.addConsumerContainer(cfg, jobImage(p.Node, s, cfg.RepoRoot, platform))
		p.addWorkVolume()
		p.grantJobReads(p.TaskDefinition.TaskRole(), s)
	} else {
		p.Container = p.addConsumerContainer(cfg, consumerImage(cfg.RepoRoot, platform))
	}
	p.grantConsumer(p.TaskDefinition.TaskRole())
	if cfg.MaxTasks > 0 {
		p.grantCountTasks(p.TaskDefinition.TaskRole())
	}
	if cfg.Mode == names.ModeServe {
		p.grantTaskProtection(p.TaskDefinition.TaskRole())
	}
}

// newCluster builds the ECS cluster of the consumer tasks, with Container
// Insights (the service's scaling reads its task counts) and both Fargate
// capacity providers.
func newCluster(scope constructs.Construct, vpc awsec2.IVpc) awsecs.Cluster {
	return awsecs.NewCluster(scope, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                            vpc,
		ContainerInsightsV2:            awsecs.ContainerInsights_ENABLED,
		EnableFargateCapacityProviders: jsii.Bool(true),
	})
}

// newTaskDefinition builds the Fargate task definition, sized by the
// settings, for Linux on cpuArch.
func newTaskDefinition(scope constructs.Construct, s settings.Settings, cpuArch awsecs.CpuArchitecture) awsecs.FargateTaskDefinition {
	return awsecs.NewFargateTaskDefinition(scope, jsii.String("Task"), &awsecs.FargateTaskDefinitionProps{
		Cpu:            jsii.Number(float64(s.CPU)),
		MemoryLimitMiB: jsii.Number(float64(s.MemoryMiB)),
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       cpuArch,
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})
}

// architecture maps settings.Architecture to the task's CPU architecture and
// the image's build platform: ARM64 unless "x86_64".
func architecture(arch string) (awsecs.CpuArchitecture, awsecrassets.Platform) {
	if arch == "x86_64" {
		return awsecs.CpuArchitecture_X86_64(), awsecrassets.Platform_LINUX_AMD64()
	}
	return awsecs.CpuArchitecture_ARM64(), awsecrassets.Platform_LINUX_ARM64()
}

// consumerImage is the consumer built from consumer/Dockerfile under root.
func consumerImage(root string, platform awsecrassets.Platform) awsecs.ContainerImage {
	return awsecs.ContainerImage_FromAsset(jsii.String(root), &awsecs.AssetImageProps{
		File:       jsii.String("consumer/Dockerfile"),
		Platform:   platform,
		IgnoreMode: awscdk.IgnoreMode_DOCKER,
		// The build needs go.mod, go.sum, internal/ and consumer/ only;
		// excluding the rest keeps every synth from copying tools and outputs.
		Exclude: jsii.Strings(ImageExcludes...),
	})
}

// addConsumerContainer adds the consumer, in cfg.Mode, to the task definition.
func (p *Pipeline) addConsumerContainer(cfg PipelineProps, image awsecs.ContainerImage) awsecs.ContainerDefinition {
	return p.TaskDefinition.AddContainer(jsii.String(names.ContainerName), &awsecs.ContainerDefinitionOptions{
		ContainerName:          jsii.String(names.ContainerName),
		Image:                  image,
		Command:                jsii.Strings(cfg.Mode),
		Essential:              jsii.Bool(true),
		ReadonlyRootFilesystem: jsii.Bool(true),
		StopTimeout:            awscdk.Duration_Seconds(jsii.Number(names.StopTimeout.Seconds())),
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			LogGroup:     p.LogGroup,
			StreamPrefix: jsii.String("consumer"),
			Mode:         awsecs.AwsLogDriverMode_NON_BLOCKING,
		}),
		Environment: p.consumerEnvironment(cfg),
	})
}

// consumerEnvironment is the consumer's configuration: where its queues and
// bucket are, the key layout, its receive settings and its task cap.
func (p *Pipeline) consumerEnvironment(cfg PipelineProps) *map[string]*string {
	s := cfg.Settings
	env := map[string]*string{
		names.EnvQueueURL:          p.Queue.QueueUrl(),
		names.EnvDLQURL:            p.DeadLetterQueue.QueueUrl(),
		names.EnvBucket:            p.Bucket.BucketName(),
		names.EnvConfigPrefix:      jsii.String(names.ConfigPrefix),
		names.EnvArtifactPrefix:    jsii.String(names.ArtifactPrefix),
		names.EnvRecordPrefix:      jsii.String(names.RecordPrefix),
		names.EnvVisibilityTimeout: jsii.String(strconv.Itoa(s.VisibilityTimeoutSeconds)),
		names.EnvWaitSeconds:       jsii.String("20"),
		names.EnvEmptyReceives:     jsii.String(strconv.Itoa(s.EmptyReceives)),
		// The Go runtime collects harder as it nears this soft limit,
		// well before the task's hard memory limit kills the process.
		"GOMEMLIMIT": jsii.String(GoMemLimit(s.MemoryMiB)),
	}
	if cfg.MaxTasks > 0 {
		env[names.EnvMaxTasks] = jsii.String(strconv.Itoa(cfg.MaxTasks))
	}
	if s.Job == names.JobCommand {
		for k, v := range JobEnvironment(s) {
			env[k] = jsii.String(v)
		}
	}
	return &env
}

// addOutputs publishes what operators and the smoke test look up.
func (p *Pipeline) addOutputs() {
	output := func(id string, props *awscdk.CfnOutputProps) { awscdk.NewCfnOutput(p.stack(), jsii.String(id), props) }
	output(names.OutputBucket, &awscdk.CfnOutputProps{
		Value: p.Bucket.BucketName(), Description: jsii.String("Upload configs under " + names.ConfigPrefix + " of this bucket"),
	})
	output(names.OutputQueueURL, &awscdk.CfnOutputProps{Value: p.Queue.QueueUrl()})
	output(names.OutputDLQURL, &awscdk.CfnOutputProps{Value: p.DeadLetterQueue.QueueUrl()})
	output(names.OutputCluster, &awscdk.CfnOutputProps{Value: p.Cluster.ClusterName()})
	output(names.OutputTaskDefinition, &awscdk.CfnOutputProps{Value: p.TaskDefinition.TaskDefinitionArn()})
	output(names.OutputAlertTopic, &awscdk.CfnOutputProps{
		Value: p.Alerts.Topic.TopicArn(), Description: jsii.String("Subscribe to be told when work fails or waits too long"),
	})
}

// ImageExcludes are left out of the consumer image's build context.
var ImageExcludes = []string{
	".git", ".tools", ".ci", "cdk.out", "bin", "out", ".edp-local", "node_modules", "docs", "stacks", "lambdas", "examples",
	"**/testdata", "**/*_test.go",
}

// ConfigEventPattern is names.ConfigEventPattern in CDK form, for the bucket
// whose name is the token bucketName. Filtering in the pattern, not in code,
// means other uploads never cost a message or a task.
func ConfigEventPattern(bucketName *string) *awsevents.EventPattern {
	detail := names.ConfigEventDetail(*bucketName)
	return &awsevents.EventPattern{
		Source:     jsii.Strings(names.ConfigEventSource),
		DetailType: jsii.Strings(names.ConfigEventDetailType),
		Detail:     &detail,
	}
}

// grantConsumer gives the task role exactly what the consumer does: consume
// the queue, move permanent failures to the DLQ, read configs, and write (and
// read back, for idempotency) artifacts and run records.
func (p *Pipeline) grantConsumer(role awsiam.IRole) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ConsumeQueue"),
		Actions:   jsii.Strings("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"),
		Resources: &[]*string{p.Queue.QueueArn()},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("MovePermanentFailuresToDLQ"),
		Actions:   jsii.Strings("sqs:SendMessage"),
		Resources: &[]*string{p.DeadLetterQueue.QueueArn()},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReadConfigs"),
		Actions:   jsii.Strings("s3:GetObject", "s3:GetObjectVersion"),
		Resources: &[]*string{p.Bucket.ArnForObjects(jsii.String(names.ConfigPrefix + "*"))},
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:     jsii.String("WriteArtifactsAndRecords"),
		Actions: jsii.Strings("s3:GetObject", "s3:PutObject"),
		Resources: &[]*string{
			p.Bucket.ArnForObjects(jsii.String(names.ArtifactPrefix + "*")),
			p.Bucket.ArnForObjects(jsii.String(names.RecordPrefix + "*")),
		},
	}))
	// Without ListBucket, S3 answers 403 instead of 404 for a missing key, and
	// the consumer could not tell "no record yet" from "access denied".
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("TellMissingFromDenied"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &[]*string{p.Bucket.BucketArn()},
	}))
}

// grantCountTasks lets a capped drain task count the tasks of its family
// in this stack's cluster. ecs:ListTasks has no resource-level permission,
// so the statement is on "*" and its ecs:cluster condition keeps it to
// this cluster.
func (p *Pipeline) grantCountTasks(role awsiam.IRole) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CountOwnFamilyTasks"),
		Actions:    jsii.Strings("ecs:ListTasks"),
		Resources:  jsii.Strings("*"),
		Conditions: p.inCluster(),
	}))
}

// grantTaskProtection lets serve-mode tasks protect themselves from
// scale-in while busy: the ECS agent's task-protection endpoint calls
// ecs:UpdateTaskProtection and ecs:GetTaskProtection with the task role's
// credentials, on the task's own ARN.
func (p *Pipeline) grantTaskProtection(role awsiam.IRole) {
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ProtectOwnTaskFromScaleIn"),
		Actions:   jsii.Strings("ecs:UpdateTaskProtection", "ecs:GetTaskProtection"),
		Resources: &[]*string{p.clusterTaskArns()},
	}))
}

// clusterTaskArns is the ARN pattern of every task in this stack's cluster.
func (p *Pipeline) clusterTaskArns() *string {
	return p.stack().FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("ecs"), Resource: jsii.String("task"),
		ResourceName: awscdk.Fn_Join(jsii.String(""), &[]*string{p.Cluster.ClusterName(), jsii.String("/*")}),
	})
}

// DeadLetterRetention is the retention of every dead-letter queue:
// settings.DeadLetterRetentionDays (the SQS maximum), longer than any
// retention edp:queueRetentionDays allows the work queue.
func DeadLetterRetention() awscdk.Duration {
	return awscdk.Duration_Days(jsii.Number(float64(settings.DeadLetterRetentionDays)))
}

// GoMemLimit is the consumer's GOMEMLIMIT for a task of memoryMiB
// (settings.GoMemLimit: 90 %).
func GoMemLimit(memoryMiB int) string { return settings.GoMemLimit(memoryMiB) }

func (p *Pipeline) stack() awscdk.Stack { return awscdk.Stack_Of(p.Node) }

// newQueue builds an SSE-SQS encrypted, TLS-only queue. extra may set more
// properties; retention and removal are always applied.
func newQueue(scope constructs.Construct, id string, retention awscdk.Duration, removal awscdk.RemovalPolicy, extra *awssqs.QueueProps) awssqs.Queue {
	props := awssqs.QueueProps{}
	if extra != nil {
		props = *extra
	}
	props.Encryption = awssqs.QueueEncryption_SQS_MANAGED
	props.EnforceSSL = jsii.Bool(true)
	props.RetentionPeriod = retention
	props.RemovalPolicy = removal
	return awssqs.NewQueue(scope, jsii.String(id), &props)
}
