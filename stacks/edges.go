package stacks

import (
	"fmt"
	"strings"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// An Edge is one arrow of an architecture diagram: a caller (an AWS service,
// possibly acting with a role of the stack) calls actions on a resource of
// the stack, or a property of the template connects two resources. Each edge
// names what in the synthesized template must allow or wire the call;
// stacks/edgecheck_test.go evaluates every edge of every stack, in every
// context combination the stacks support, as IAM would (conditions against
// the caller's context, references resolved exactly, Denies blocking), and
// the tables in docs/architectures/ are rendered from these values. A new
// arrow is a new entry here; without its allow or its wiring, a test fails.
type Edge struct {
	From, To string // the diagram's boxes
	// Caller is the service principal that makes the call.
	Caller string
	// Allow says which part of the template allows the call.
	Allow Allow
	// Role names the role the caller acts with: the property (a path, see
	// Wire.Path) of a resource that holds the role's ARN. With
	// ByResourcePolicy, the target's resource policy must admit that role.
	Role *Ref
	// Source is the resource on whose behalf the caller calls (a rule, an
	// alarm, a topic, a schedule): the request's aws:SourceArn. Nil: none.
	Source *Ref
	// Actions are the API actions of the call (not for wiring edges).
	Actions []string
	// Target is the resource called.
	Target Ref
	// AnyResource admits a statement on Resource "*": for actions without
	// resource-level permissions (scoped by Condition instead); the request
	// then names "*".
	AnyResource bool
	// Conditions are the condition keys every allowing statement must carry
	// (least privilege). Whether listed or not, every condition of a
	// statement is evaluated against the caller's context.
	Conditions []string
	// Wires are the properties that connect the resources (BySetting,
	// ByServiceLinkedRole).
	Wires []Wire
	// When limits the edge to stacks built with some settings.
	When When
	// Forbidden turns the edge around: the template must NOT allow the
	// call (no statement of the caller's role allows any of the actions on
	// the target). It marks what a grant must not widen to.
	Forbidden bool
}

// Allow is the kind of template element that allows an Edge.
type Allow int

const (
	// ByResourcePolicy: the target's resource policy (queue policy, topic
	// policy, bucket policy, key policy, Lambda permission) allows the
	// caller's service (or, with Edge.Role, the caller's role).
	ByResourcePolicy Allow = iota
	// ByRole: the caller assumes a role of the stack (its trust policy admits
	// the caller's service) whose identity policy allows the actions on the
	// target, and no policy denies them.
	ByRole
	// BySetting: no IAM principal is involved; properties of the template
	// connect the resources (S3 → EventBridge notifications, an alarm's
	// actions, a rule's targets and their dead-letter queue, a redrive).
	BySetting
	// ByServiceLinkedRole: the caller acts with its service-linked role,
	// which is not in the template and which no template can narrow; the
	// wires show that the stack hands the service its resources and no role
	// of its own.
	ByServiceLinkedRole
)

func (a Allow) String() string {
	switch a {
	case ByResourcePolicy:
		return "resource policy"
	case ByRole:
		return "role"
	case ByServiceLinkedRole:
		return "service-linked role"
	default:
		return "setting"
	}
}

// Ref names a resource of a stack by its CloudFormation type and construct
// id (the logical id without CDK's hash suffix).
type Ref struct {
	Type string
	ID   string
	// Property is the path of the property that holds a role (Edge.Role).
	Property string
	// ARN, when set, is the resource a request names instead of the
	// resource's own ARN, in Fn::Sub syntax over construct ids, e.g.
	// "${PipelineBucket.Arn}/configs/x.yaml" (an object under a prefix).
	ARN string
}

func (r Ref) String() string {
	if r.ARN != "" {
		return r.ARN
	}
	return r.ID
}

// A Wire is a property that connects resources: resource In (or, with an
// empty In.ID, the resources of type In.Type) has Path set to Value.
type Wire struct {
	In Ref
	// Path is dot-separated; "[]" after a name stands for the list's
	// elements ("Targets[].DeadLetterConfig.Arn").
	Path string
	// Value is what the property must resolve to, in Fn::Sub syntax over
	// construct ids ("${AlarmTopic}", "${PipelineQueue.Arn}", "awsvpc").
	Value string
	// Every: each resource (of the type) and each list element must match;
	// otherwise one match is enough.
	Every bool
	// Absent: the property must not be set (Value is ignored).
	Absent bool
}

func (w Wire) String() string {
	in := w.In.ID
	if in == "" {
		in = "every " + w.In.Type[strings.LastIndex(w.In.Type, ":")+1:]
	}
	switch {
	case w.Absent:
		return "`" + in + "." + w.Path + "` unset"
	case w.Every:
		return "`" + in + "." + w.Path + "` all = `" + w.Value + "`"
	}
	return "`" + in + "." + w.Path + "` = `" + w.Value + "`"
}

// When limits an Edge to stacks built with some settings; the zero value
// holds for every stack.
type When struct {
	Networks []string // settings.Network values; empty: any
	Scaling  string   // settings.ScalingMode; empty: any
	Removal  string   // settings.RemovalPolicy; empty: any
	Job      string   // settings.Job; empty: any
}

// Holds reports whether a stack built with s has the edge.
func (w When) Holds(s settings.Settings) bool {
	if len(w.Networks) > 0 && !contains(w.Networks, s.Network) {
		return false
	}
	return (w.Scaling == "" || w.Scaling == s.ScalingMode) && (w.Removal == "" || w.Removal == s.RemovalPolicy) &&
		(w.Job == "" || w.Job == s.Job)
}

func (w When) String() string {
	var parts []string
	if len(w.Networks) > 0 {
		parts = append(parts, "network "+strings.Join(w.Networks, ", "))
	}
	if w.Scaling != "" {
		parts = append(parts, "scaling "+w.Scaling)
	}
	if w.Removal != "" {
		parts = append(parts, "removal "+w.Removal)
	}
	if w.Job != "" {
		parts = append(parts, "job "+w.Job)
	}
	if len(parts) == 0 {
		return "always"
	}
	return strings.Join(parts, "; ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Resources of the shared Pipeline construct, as named in every stack.
var (
	refBucket   = Ref{Type: "AWS::S3::Bucket", ID: "PipelineBucket"}
	refQueue    = Ref{Type: "AWS::SQS::Queue", ID: "PipelineQueue"}
	refDLQ      = Ref{Type: "AWS::SQS::Queue", ID: "PipelineDeadLetterQueue"}
	refDelivery = Ref{Type: "AWS::SQS::Queue", ID: "PipelineDeliveryDLQ"}
	refRule     = Ref{Type: "AWS::Events::Rule", ID: "PipelineConfigUploaded"}
	refTaskDef  = Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask"}
	refTaskRole = Ref{Type: "AWS::IAM::Role", ID: "PipelineTaskTaskRole"}
	refExecRole = Ref{Type: "AWS::IAM::Role", ID: "PipelineTaskExecutionRole"}
	refLogs     = Ref{Type: "AWS::Logs::LogGroup", ID: "PipelineLogs"}
	refCluster  = Ref{Type: "AWS::ECS::Cluster", ID: "PipelineCluster"}
	// A task of the cluster, as ECS names it.
	refTask = Ref{Type: "AWS::ECS::Cluster", ID: "PipelineCluster",
		ARN: "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${PipelineCluster}/0123456789abcdef0"}
	refAssetRepo = Ref{ARN: "arn:${AWS::Partition}:ecr:${AWS::Region}:${AWS::AccountId}:repository/" +
		"cdk-hnb659fds-container-assets-${AWS::AccountId}-${AWS::Region}"}
	refAnything = Ref{}
	// The networks in which the stack builds its own VPC (with flow logs).
	ownVPC = []string{settings.NetworkPublic, settings.NetworkPrivate}
)

// object is an object under prefix of the pipeline bucket.
func object(prefix string) Ref {
	return Ref{Type: "AWS::S3::Bucket", ID: "PipelineBucket", ARN: "${PipelineBucket.Arn}/" + prefix + "x.yaml"}
}

// deadLettersTo wires every target of every resource of type typ (whose
// targets are at path) to the delivery DLQ.
func deadLettersTo(typ, path string) Wire {
	return Wire{In: Ref{Type: typ}, Path: path, Value: "${PipelineDeliveryDLQ.Arn}", Every: true}
}

// pipelineEdges are the arrows every architecture shares; reads are a
// command job's read grants.
func pipelineEdges(mode string, reads jobReads) []Edge {
	taskRole := &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "TaskRoleArn"}
	execRole := &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "ExecutionRoleArn"}
	const tasks = "ecs-tasks.amazonaws.com"
	src := &refRule
	edges := []Edge{
		{From: "S3 bucket", To: "EventBridge", Caller: "s3.amazonaws.com", Allow: BySetting, Target: refBucket,
			Wires: []Wire{{In: refBucket, Path: "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", Value: "true"}}},
		{From: "EventBridge rule", To: "work queue (target)", Caller: "events.amazonaws.com", Allow: BySetting, Target: refQueue,
			Wires: []Wire{{In: refRule, Path: "Targets[].Arn", Value: "${PipelineQueue.Arn}"}}},
		{From: "EventBridge rule", To: "work queue", Caller: "events.amazonaws.com", Allow: ByResourcePolicy, Source: src,
			Actions: []string{"sqs:SendMessage"}, Target: refQueue, Conditions: []string{"aws:SourceArn"}},
		{From: "EventBridge rule targets", To: "delivery DLQ (dead-letter config)", Caller: "events.amazonaws.com", Allow: BySetting,
			Target: refDelivery, Wires: []Wire{deadLettersTo("AWS::Events::Rule", "Targets[].DeadLetterConfig.Arn")}},
		{From: "EventBridge rule", To: "delivery DLQ", Caller: "events.amazonaws.com", Allow: ByResourcePolicy, Source: src,
			Actions: []string{"sqs:SendMessage"}, Target: refDelivery, Conditions: []string{"aws:SourceArn"}},
		{From: "work queue", To: "DLQ (redrive)", Caller: "sqs.amazonaws.com", Allow: BySetting, Target: refDLQ,
			Wires: []Wire{{In: refQueue, Path: "RedrivePolicy.deadLetterTargetArn", Value: "${PipelineDeadLetterQueue.Arn}"}}},
		{From: "ECS agent", To: "ECR (image)", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}, Target: refAssetRepo},
		{From: "ECS agent", To: "ECR (login)", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"ecr:GetAuthorizationToken"}, Target: refAnything, AnyResource: true},
		{From: "ECS agent", To: "task logs", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Target: refLogs},
		// ECS creates each awsvpc task's network interface with its
		// service-linked role (AWSServiceRoleForECS); no template can grant
		// or narrow it. What the template decides: awsvpc networking, in the
		// stack's subnets, with the stack's security group (checked per
		// launcher in tests), and no role of its own for ECS.
		{From: "ECS", To: "task network interfaces", Caller: "ecs.amazonaws.com", Allow: ByServiceLinkedRole, Target: refTaskDef,
			Wires: []Wire{
				{In: refTaskDef, Path: "NetworkMode", Value: "awsvpc"},
				{In: Ref{Type: "AWS::ECS::Service"}, Path: "Role", Absent: true},
			}},
		{From: "consumer task", To: "work queue", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, Target: refQueue},
		{From: "consumer task", To: "DLQ", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"sqs:SendMessage"}, Target: refDLQ},
		{From: "consumer task", To: "configs/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:GetObjectVersion"}, Target: object(names.ConfigPrefix)},
		{From: "consumer task", To: "artifacts/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:PutObject"}, Target: object(names.ArtifactPrefix)},
		{From: "consumer task", To: "runs/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:PutObject"}, Target: object(names.RecordPrefix)},
		{From: "consumer task", To: "bucket (list)", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:ListBucket"}, Target: refBucket},
		{From: "VPC flow logs", To: "flow log group", Caller: "vpc-flow-logs.amazonaws.com", Allow: ByRole,
			Role:    &Ref{Type: "AWS::EC2::FlowLog", ID: "PipelineVpcRejectedFlowLog", Property: "DeliverLogsPermissionArn"},
			Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"},
			Target:  Ref{Type: "AWS::Logs::LogGroup", ID: "PipelineFlowLogs"}, When: When{Networks: ownVPC}},
		{From: "VPC", To: "flow log group (setting)", Caller: "vpc-flow-logs.amazonaws.com", Allow: BySetting,
			Target: Ref{Type: "AWS::Logs::LogGroup", ID: "PipelineFlowLogs"}, When: When{Networks: ownVPC},
			Wires: []Wire{
				{In: Ref{Type: "AWS::EC2::FlowLog", ID: "PipelineVpcRejectedFlowLog"}, Path: "ResourceId", Value: "${PipelineVpc}"},
				{In: Ref{Type: "AWS::EC2::FlowLog", ID: "PipelineVpcRejectedFlowLog"}, Path: "LogGroupName", Value: "${PipelineFlowLogs}"},
			}},
	}
	edges = append(edges, jobEdges(taskRole, reads)...)
	edges = append(edges, autoDeleteEdges()...)
	edges = append(edges, alertEdges("dead-letter alarm", "PipelineDeadLetterQueueNotEmptyAlarm")...)
	edges = append(edges, alertEdges("undelivered-events alarm", "PipelineDeliveryDLQNotEmptyAlarm")...)
	edges = append(edges, alertEdges("queue-age alarm", "PipelineQueueNearRetentionAlarm")...)
	if mode == names.ModeServe {
		edges = append(edges, Edge{From: "ECS agent (task protection)", To: "own task", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}, Target: refTask})
	}
	return edges
}

// jobReads are what a command job may read besides what the consumer does:
// key prefixes of the stack's bucket and other buckets (settings
// JobReadPrefixes and JobReadBuckets).
type jobReads struct{ prefixes, buckets []string }

// docReads are the read grants the doc tables show: the default prefix and
// one bucket of edp:jobReadBuckets.
var docReads = jobReads{prefixes: settings.Defaults().JobReadPrefixes, buckets: []string{"{" + settings.KeyJobReadBuckets + "}"}}

// unlisted is a prefix no command job may read (tests keep it out of
// edp:jobReadPrefixes).
const unlisted = "unlisted/"

// jobEdges are the arrows of the job's reads (the job runs with the task
// role) and those the read grants must not widen to: another prefix of the
// bucket, writing where it reads, and, for the Iris job, reading at all.
func jobEdges(taskRole *Ref, reads jobReads) []Edge {
	const tasks = "ecs-tasks.amazonaws.com"
	command, iris := When{Job: names.JobCommand}, When{Job: names.JobIris}
	var edges []Edge
	for _, p := range reads.prefixes {
		edges = append(edges,
			Edge{From: "command job", To: p + " (read)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command,
				Actions: []string{"s3:GetObject"}, Target: object(p)},
			Edge{From: "command job", To: p + " (write)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command, Forbidden: true,
				Actions: []string{"s3:PutObject", "s3:DeleteObject"}, Target: object(p)})
	}
	for _, b := range reads.buckets {
		bucket := Ref{ARN: "arn:${AWS::Partition}:s3:::" + b}
		objects := Ref{ARN: bucket.ARN + "/x.yaml"}
		edges = append(edges,
			Edge{From: "command job", To: "bucket " + b + " (read)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command,
				Actions: []string{"s3:GetObject"}, Target: objects},
			Edge{From: "command job", To: "bucket " + b + " (list)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command,
				Actions: []string{"s3:ListBucket"}, Target: bucket},
			Edge{From: "command job", To: "bucket " + b + " (write)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command, Forbidden: true,
				Actions: []string{"s3:PutObject", "s3:DeleteObject"}, Target: objects})
	}
	return append(edges,
		Edge{From: "command job", To: unlisted + " (read)", Caller: tasks, Allow: ByRole, Role: taskRole, When: command, Forbidden: true,
			Actions: []string{"s3:GetObject"}, Target: object(unlisted)},
		Edge{From: "consumer task (Iris)", To: "data/ (read)", Caller: tasks, Allow: ByRole, Role: taskRole, When: iris, Forbidden: true,
			Actions: []string{"s3:GetObject"}, Target: object("data/")})
}

// alertEdges are the arrows from one alert alarm (construct id alarm) to
// the stack's alert topic: its action names the topic, the topic policy lets
// CloudWatch publish for this alarm, and the topic's key lets it encrypt.
func alertEdges(from, alarm string) []Edge {
	src := &Ref{Type: "AWS::CloudWatch::Alarm", ID: alarm}
	topic := Ref{Type: "AWS::SNS::Topic", ID: "PipelineAlertTopic"}
	return []Edge{
		alarmActs(from, "alert topic (action)", alarm, "${PipelineAlertTopic}", topic),
		{From: from, To: "alert topic", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy, Source: src,
			Actions: []string{"sns:Publish"}, Target: topic, Conditions: []string{"aws:SourceArn", "aws:SourceAccount"}},
		{From: from, To: "alert topic key", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy, Source: src,
			Actions: []string{"kms:GenerateDataKey", "kms:Decrypt"}, Target: Ref{Type: "AWS::KMS::Key", ID: "PipelineAlertTopicKey"},
			Conditions: []string{"aws:SourceArn", "aws:SourceAccount"}},
	}
}

// autoDeleteEdges are the arrows of CDK's auto-delete custom resource,
// which empties the bucket when a stack built with removal "destroy" is
// deleted: its provider Lambda's role is granted the bucket by the bucket
// policy alone (and holds no S3 permission of its own, so: this bucket only).
func autoDeleteEdges() []Edge {
	const provider = "CustomS3AutoDeleteObjectsCustomResourceProviderHandler"
	role := &Ref{Type: "AWS::Lambda::Function", ID: provider, Property: "Role"}
	destroy := When{Removal: "destroy"}
	return []Edge{
		{From: "CloudFormation", To: "auto-delete provider", Caller: "cloudformation.amazonaws.com", Allow: BySetting, When: destroy,
			Target: Ref{Type: "AWS::Lambda::Function", ID: provider},
			Wires: []Wire{
				{In: Ref{Type: "Custom::S3AutoDeleteObjects", ID: "PipelineBucketAutoDeleteObjectsCustomResource"}, Path: "ServiceToken", Value: "${" + provider + ".Arn}"},
				{In: Ref{Type: "Custom::S3AutoDeleteObjects", ID: "PipelineBucketAutoDeleteObjectsCustomResource"}, Path: "BucketName", Value: "${PipelineBucket}"},
			}},
		{From: "auto-delete provider", To: "bucket", Caller: "lambda.amazonaws.com", Allow: ByResourcePolicy, Role: role, When: destroy,
			Actions: []string{"s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketTagging", "s3:PutBucketPolicy"}, Target: refBucket},
		{From: "auto-delete provider", To: "objects", Caller: "lambda.amazonaws.com", Allow: ByResourcePolicy, Role: role, When: destroy,
			Actions: []string{"s3:DeleteObject", "s3:DeleteObjectVersion"}, Target: object("")},
	}
}

// runTaskEdges are the arrows of a service that starts consumer tasks with
// the role held in role, on behalf of source.
func runTaskEdges(from, caller string, role, source *Ref) []Edge {
	return []Edge{
		{From: from, To: "ECS RunTask", Caller: caller, Allow: ByRole, Role: role, Source: source,
			Actions: []string{"ecs:RunTask"}, Target: refTaskDef, Conditions: []string{"ecs:cluster"}},
		{From: from, To: "ECS (tag started tasks)", Caller: caller, Allow: ByRole, Role: role, Source: source,
			Actions: []string{"ecs:TagResource"}, Target: refTask, Conditions: []string{"ecs:CreateAction"}},
		{From: from, To: "task role (pass)", Caller: caller, Allow: ByRole, Role: role, Source: source,
			Actions: []string{"iam:PassRole"}, Target: refTaskRole, Conditions: []string{"iam:PassedToService"}},
		{From: from, To: "execution role (pass)", Caller: caller, Allow: ByRole, Role: role, Source: source,
			Actions: []string{"iam:PassRole"}, Target: refExecRole, Conditions: []string{"iam:PassedToService"}},
	}
}

// ecsTargetEdge wires rule's ECS target to this cluster, task definition
// and security group.
func ecsTargetEdge(from string, rule Ref) Edge {
	return Edge{From: from, To: "ECS cluster (target)", Caller: "events.amazonaws.com", Allow: BySetting, Target: refCluster,
		Wires: []Wire{
			{In: rule, Path: "Targets[].Arn", Value: "${PipelineCluster.Arn}"},
			{In: rule, Path: "Targets[].EcsParameters.TaskDefinitionArn", Value: "${PipelineTask}"},
			{In: rule, Path: "Targets[].EcsParameters.NetworkConfiguration.AwsVpcConfiguration.SecurityGroups[]", Value: "${PipelineTaskSecurityGroup.GroupId}"},
		}}
}

// alarmActs wires alarm id's actions to target (a Fn::Sub value).
func alarmActs(from, to, id, target string, targetRef Ref) Edge {
	return Edge{From: from, To: to, Caller: "cloudwatch.amazonaws.com", Allow: BySetting, Target: targetRef,
		Wires: []Wire{{In: Ref{Type: "AWS::CloudWatch::Alarm", ID: id}, Path: "AlarmActions[]", Value: target}}}
}

// Edges returns every arrow of the named stack (names.Stack*), whatever
// its settings (a command job's read grants as docReads); EdgesFor keeps
// those of one build.
func Edges(stack string) []Edge { return edgesOf(stack, docReads) }

func edgesOf(stack string, reads jobReads) []Edge {
	switch stack {
	case names.StackOneOff:
		rule := &Ref{Type: "AWS::Events::Rule", ID: "PipelineConfigUploaded", Property: "Targets[].RoleArn"}
		stranded := Ref{Type: "AWS::Events::Rule", ID: "StrandedWorkRule"}
		strandedRole := &Ref{Type: "AWS::Events::Rule", ID: "StrandedWorkRule", Property: "Targets[].RoleArn"}
		edges := append(pipelineEdges(names.ModeDrain, reads), runTaskEdges("EventBridge rule", "events.amazonaws.com", rule, &refRule)...)
		edges = append(edges, ecsTargetEdge("EventBridge rule", refRule))
		// The retry path for stranded messages: the StrandedWork alarm's
		// state change reaches the default bus (CloudWatch sends it; no
		// permission involved), where the retry rule matches exactly this
		// alarm and starts a drain task.
		edges = append(edges,
			Edge{From: "stranded-work alarm", To: "retry rule (pattern)", Caller: "cloudwatch.amazonaws.com", Allow: BySetting, Target: stranded,
				Wires: []Wire{
					{In: stranded, Path: "EventPattern.source[]", Value: "aws.cloudwatch"},
					{In: stranded, Path: "EventPattern.resources[]", Value: "${StrandedWorkAlarm.Arn}"},
					{In: stranded, Path: "EventPattern.detail.state.value[]", Value: "ALARM"},
				}},
			ecsTargetEdge("retry rule", stranded),
			Edge{From: "retry rule", To: "delivery DLQ", Caller: "events.amazonaws.com", Allow: ByResourcePolicy, Source: &stranded,
				Actions: []string{"sqs:SendMessage"}, Target: refDelivery, Conditions: []string{"aws:SourceArn"}},
		)
		return append(edges, runTaskEdges("retry rule", "events.amazonaws.com", strandedRole, &stranded)...)
	case names.StackAlarmService:
		target := Ref{Type: "AWS::ApplicationAutoScaling::ScalableTarget", ID: "ScalableTarget"}
		policyOf := func(id string) Wire {
			return Wire{In: Ref{Type: "AWS::ApplicationAutoScaling::ScalingPolicy", ID: id}, Path: "ScalingTargetId", Value: "${ScalableTarget}"}
		}
		scaling := Ref{Type: "AWS::ApplicationAutoScaling::ScalingPolicy", ID: "ScaleOutOnBacklog"}
		return append(pipelineEdges(names.ModeServe, reads),
			alarmActs("backlog alarm", "scale-out policy", "BacklogAlarm", "${ScaleOutOnBacklog}", scaling),
			alarmActs("idle alarm", "scale-in policy", "IdleAlarm", "${ScaleInWhenIdle}",
				Ref{Type: "AWS::ApplicationAutoScaling::ScalingPolicy", ID: "ScaleInWhenIdle"}),
			Edge{From: "scaling policies", To: "scalable target", Caller: "application-autoscaling.amazonaws.com", Allow: BySetting,
				Target: target, Wires: []Wire{policyOf("ScaleOutOnBacklog"), policyOf("ScaleInWhenIdle")}},
			Edge{From: "backlog tracking", To: "scalable target", Caller: "application-autoscaling.amazonaws.com", Allow: BySetting,
				Target: target, Wires: []Wire{policyOf("BacklogPerTaskTracking")}, When: When{Scaling: settings.ScalingBacklog}},
			// Application Auto Scaling calls ECS (and, in backlog mode, manages
			// the tracking policy's alarms) with its service-linked role
			// AWSServiceRoleForApplicationAutoScaling_ECSService, used when the
			// target names no role.
			Edge{From: "Application Auto Scaling", To: "ECS service", Caller: "ecs.application-autoscaling.amazonaws.com",
				Allow: ByServiceLinkedRole, Target: Ref{Type: "AWS::ECS::Service", ID: "Service"},
				Wires: []Wire{
					{In: target, Path: "ResourceId", Value: "service/${PipelineCluster}/${Service.Name}"},
					{In: target, Path: "RoleARN", Absent: true},
				}},
			Edge{From: "ECS service", To: "tasks (placement)", Caller: "ecs.amazonaws.com", Allow: BySetting, Target: refTaskDef,
				Wires: []Wire{
					{In: Ref{Type: "AWS::ECS::Service", ID: "Service"}, Path: "Cluster", Value: "${PipelineCluster}"},
					{In: Ref{Type: "AWS::ECS::Service", ID: "Service"}, Path: "TaskDefinition", Value: "${PipelineTask}"},
					{In: Ref{Type: "AWS::ECS::Service", ID: "Service"}, Path: "NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[]",
						Value: "${PipelineTaskSecurityGroup.GroupId}"},
				}},
		)
	case names.StackAlarmDispatch:
		fn := &Ref{Type: "AWS::Lambda::Function", ID: "Dispatch", Property: "Role"}
		alarm := &Ref{Type: "AWS::CloudWatch::Alarm", ID: "BacklogAlarm"}
		topic := Ref{Type: "AWS::SNS::Topic", ID: "AlarmTopic"}
		subscription := Ref{Type: "AWS::SNS::Subscription", ID: "DispatchAlarmTopic"}
		const lambda = "lambda.amazonaws.com"
		edges := append(pipelineEdges(names.ModeDrain, reads),
			alarmActs("backlog alarm", "alarm topic (action)", "BacklogAlarm", "${AlarmTopic}", topic),
			Edge{From: "backlog alarm", To: "alarm topic", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy, Source: alarm,
				Actions: []string{"sns:Publish"}, Target: topic, Conditions: []string{"aws:SourceArn", "aws:SourceAccount"}},
			Edge{From: "backlog alarm", To: "topic key", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy, Source: alarm,
				Actions: []string{"kms:GenerateDataKey", "kms:Decrypt"}, Target: Ref{Type: "AWS::KMS::Key", ID: "AlarmTopicKey"},
				Conditions: []string{"aws:SourceArn", "aws:SourceAccount"}},
			Edge{From: "alarm topic", To: "dispatch Lambda (subscription)", Caller: "sns.amazonaws.com", Allow: BySetting,
				Target: Ref{Type: "AWS::Lambda::Function", ID: "Dispatch"},
				Wires: []Wire{
					{In: subscription, Path: "TopicArn", Value: "${AlarmTopic}"},
					{In: subscription, Path: "Protocol", Value: "lambda"},
					{In: subscription, Path: "Endpoint", Value: "${Dispatch.Arn}"},
				}},
			Edge{From: "alarm topic", To: "dispatch Lambda", Caller: "sns.amazonaws.com", Allow: ByResourcePolicy, Source: &topic,
				Actions: []string{"lambda:InvokeFunction"}, Target: Ref{Type: "AWS::Lambda::Function", ID: "Dispatch"},
				Conditions: []string{"aws:SourceArn"}},
			Edge{From: "dispatch Lambda", To: "ECS (list tasks)", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"ecs:ListTasks"}, Target: refAnything, AnyResource: true, Conditions: []string{"ecs:cluster"}},
			Edge{From: "dispatch Lambda", To: "work queue (depth)", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"sqs:GetQueueAttributes"}, Target: refQueue},
			Edge{From: "dispatch Lambda", To: "own logs", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Target: Ref{Type: "AWS::Logs::LogGroup", ID: "DispatchLogs"}},
			Edge{From: "dispatch Lambda", To: "failure destination", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"sqs:SendMessage"}, Target: Ref{Type: "AWS::SQS::Queue", ID: "DispatchFailures"}},
			Edge{From: "Lambda (async invoke)", To: "failure destination (setting)", Caller: lambda, Allow: BySetting,
				Target: Ref{Type: "AWS::SQS::Queue", ID: "DispatchFailures"},
				Wires: []Wire{{In: Ref{Type: "AWS::Lambda::EventInvokeConfig", ID: "DispatchEventInvokeConfig"},
					Path: "DestinationConfig.OnFailure.Destination", Value: "${DispatchFailures.Arn}"}}},
		)
		edges = append(edges, alertEdges("dispatch-failures alarm", "DispatchFailuresNotEmptyAlarm")...)
		return append(edges, runTaskEdges("dispatch Lambda", lambda, fn, nil)...)
	case names.StackCron:
		schedule := Ref{Type: "AWS::Scheduler::Schedule", ID: "Schedule"}
		role := &Ref{Type: "AWS::Scheduler::Schedule", ID: "Schedule", Property: "Target.RoleArn"}
		return append(append(pipelineEdges(names.ModeDrain, reads), runTaskEdges("Scheduler", "scheduler.amazonaws.com", role, &schedule)...),
			Edge{From: "Scheduler", To: "delivery DLQ", Caller: "scheduler.amazonaws.com", Allow: ByRole, Role: role, Source: &schedule,
				Actions: []string{"sqs:SendMessage"}, Target: refDelivery},
			Edge{From: "Scheduler", To: "ECS cluster (target)", Caller: "scheduler.amazonaws.com", Allow: BySetting, Target: refCluster,
				Wires: []Wire{
					{In: schedule, Path: "Target.Arn", Value: "${PipelineCluster.Arn}"},
					{In: schedule, Path: "Target.EcsParameters.TaskDefinitionArn", Value: "${PipelineTask}"},
					{In: schedule, Path: "Target.EcsParameters.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups[]", Value: "${PipelineTaskSecurityGroup.GroupId}"},
				}},
			Edge{From: "schedule targets", To: "delivery DLQ (dead-letter config)", Caller: "scheduler.amazonaws.com", Allow: BySetting,
				Target: refDelivery, Wires: []Wire{deadLettersTo("AWS::Scheduler::Schedule", "Target.DeadLetterConfig.Arn")}},
			// The drain task's cap: it counts its family's tasks at start.
			Edge{From: "consumer task", To: "ECS (list tasks)", Caller: "ecs-tasks.amazonaws.com", Allow: ByRole,
				Role:    &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "TaskRoleArn"},
				Actions: []string{"ecs:ListTasks"}, Target: refAnything, AnyResource: true, Conditions: []string{"ecs:cluster"}})
	}
	panic(fmt.Sprintf("stacks: no edges for stack %q", stack))
}

// EdgesFor returns the arrows of the named stack built with s.
func EdgesFor(stack string, s settings.Settings) []Edge {
	var out []Edge
	for _, e := range edgesOf(stack, jobReads{s.JobReadPrefixes, s.JobReadBuckets}) {
		if e.When.Holds(s) {
			out = append(out, e)
		}
	}
	return out
}

// EdgeTable renders a stack's edges as a Markdown table for the docs.
func EdgeTable(stack string) string {
	var b strings.Builder
	b.WriteString("| from | to | caller | allowed by | actions / setting | resource | when |\n|---|---|---|---|---|---|---|\n")
	for _, e := range Edges(stack) {
		by := e.Allow.String()
		if e.Role != nil {
			by += " of " + e.Role.ID + "." + e.Role.Property
		}
		if e.Forbidden {
			by = "**must not be allowed** (" + by + ")"
		}
		what := "`" + strings.Join(e.Actions, "`, `") + "`"
		if len(e.Wires) > 0 {
			var ws []string
			for _, w := range e.Wires {
				ws = append(ws, w.String())
			}
			what = strings.Join(ws, "; ")
		}
		res := "`*`"
		if s := e.Target.String(); s != "" {
			res = "`" + s + "`"
		}
		if e.Source != nil {
			res += " from `" + e.Source.ID + "`"
		}
		if len(e.Conditions) > 0 {
			res += " (condition: " + strings.Join(e.Conditions, ", ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s | %s |\n", e.From, e.To, e.Caller, by, what, res, e.When)
	}
	return b.String()
}
