package stacks

import (
	"fmt"
	"sort"
	"strings"

	"github.com/edp-pipelines/edp/internal/names"
)

// An Edge is one arrow of an architecture diagram: a caller (an AWS service,
// possibly acting with a role of the stack) calls actions on a resource of
// the stack. Each edge names what in the synthesized template must allow the
// call; stacks/edges_test.go finds that allow (and checks that no Deny blocks
// it) for every edge of every stack, and the tables in docs/architectures/
// are rendered from these values. A new arrow without its allow fails a test.
type Edge struct {
	From, To string // the diagram's boxes
	// Caller is the service principal that makes the call.
	Caller string
	// Allow says which part of the template allows the call.
	Allow Allow
	// Role names the role the caller acts with (Allow == ByRole): the
	// property of a resource that holds the role's ARN.
	Role *Ref
	// Actions are the API actions of the call; for Allow == BySetting, the
	// property path that turns the arrow on.
	Actions []string
	// Target is the resource called.
	Target Ref
	// AnyResource admits a statement on Resource "*": for actions without
	// resource-level permissions (scoped by Condition instead).
	AnyResource bool
	// Conditions the allowing statement must carry: condition key → the
	// resource its value must name ("" = any value).
	Conditions map[string]string
}

// Allow is the kind of template element that allows an Edge.
type Allow int

const (
	// ByResourcePolicy: the target's resource policy (queue policy, topic
	// policy, key policy, Lambda permission) allows the caller's service.
	ByResourcePolicy Allow = iota
	// ByRole: the caller assumes a role of the stack (its trust policy admits
	// the caller's service) whose identity policy allows the actions on the
	// target, and no resource policy of the target denies them.
	ByRole
	// BySetting: no IAM principal is involved; a property of the source
	// resource connects it to the target (S3 → EventBridge notifications,
	// an alarm's action naming a scaling policy).
	BySetting
)

func (a Allow) String() string {
	switch a {
	case ByResourcePolicy:
		return "resource policy"
	case ByRole:
		return "role"
	default:
		return "setting"
	}
}

// Ref names a resource of a stack by its CloudFormation type and construct
// id (the logical id without CDK's hash suffix), and optionally the property
// that holds a role, or literal fragments an ARN pattern must contain (for
// example "/configs/*" for objects under a prefix).
type Ref struct {
	Type     string
	ID       string
	Property string
	Contains []string
}

func (r Ref) String() string {
	s := r.ID
	if s == "" {
		s = strings.Join(r.Contains, "")
	}
	if len(r.Contains) > 0 && r.ID != "" {
		s += " " + strings.Join(r.Contains, " ")
	}
	return s
}

// Resources of the shared Pipeline construct, as named in every stack.
var (
	refBucket    = Ref{Type: "AWS::S3::Bucket", ID: "PipelineBucket"}
	refQueue     = Ref{Type: "AWS::SQS::Queue", ID: "PipelineQueue"}
	refDLQ       = Ref{Type: "AWS::SQS::Queue", ID: "PipelineDeadLetterQueue"}
	refDelivery  = Ref{Type: "AWS::SQS::Queue", ID: "PipelineDeliveryDLQ"}
	refRule      = Ref{Type: "AWS::Events::Rule", ID: "PipelineConfigUploaded"}
	refTaskDef   = Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask"}
	refTaskRole  = Ref{Type: "AWS::IAM::Role", ID: "PipelineTaskTaskRole"}
	refExecRole  = Ref{Type: "AWS::IAM::Role", ID: "PipelineTaskExecutionRole"}
	refLogs      = Ref{Type: "AWS::Logs::LogGroup", ID: "PipelineLogs"}
	refCluster   = Ref{Type: "AWS::ECS::Cluster", ID: "PipelineCluster"}
	refTasks     = Ref{Type: "AWS::ECS::Cluster", ID: "PipelineCluster", Contains: []string{":task/", "/*"}}
	refAssetRepo = Ref{Contains: []string{":repository/", "cdk-hnb659fds-container-assets-"}}
	refAnything  = Ref{}
)

func objects(prefix string) Ref {
	return Ref{Type: "AWS::S3::Bucket", ID: "PipelineBucket", Contains: []string{"/" + prefix + "*"}}
}

// pipelineEdges are the arrows every architecture shares.
func pipelineEdges(mode string) []Edge {
	taskRole := &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "TaskRoleArn"}
	execRole := &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "ExecutionRoleArn"}
	const tasks = "ecs-tasks.amazonaws.com"
	edges := []Edge{
		{From: "S3 bucket", To: "EventBridge", Caller: "s3.amazonaws.com", Allow: BySetting, Target: refBucket,
			Actions: []string{"NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled"}},
		{From: "EventBridge rule", To: "work queue", Caller: "events.amazonaws.com", Allow: ByResourcePolicy,
			Actions: []string{"sqs:SendMessage"}, Target: refQueue, Conditions: map[string]string{"aws:SourceArn": refRule.ID}},
		{From: "EventBridge rule", To: "delivery DLQ", Caller: "events.amazonaws.com", Allow: ByResourcePolicy,
			Actions: []string{"sqs:SendMessage"}, Target: refDelivery, Conditions: map[string]string{"aws:SourceArn": refRule.ID}},
		{From: "ECS agent", To: "ECR (image)", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}, Target: refAssetRepo},
		{From: "ECS agent", To: "ECR (login)", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"ecr:GetAuthorizationToken"}, Target: refAnything, AnyResource: true},
		{From: "ECS agent", To: "task logs", Caller: tasks, Allow: ByRole, Role: execRole,
			Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Target: refLogs},
		{From: "consumer task", To: "work queue", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"}, Target: refQueue},
		{From: "consumer task", To: "DLQ", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"sqs:SendMessage"}, Target: refDLQ},
		{From: "consumer task", To: "configs/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:GetObjectVersion"}, Target: objects(names.ConfigPrefix)},
		{From: "consumer task", To: "artifacts/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:PutObject"}, Target: objects(names.ArtifactPrefix)},
		{From: "consumer task", To: "runs/", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:GetObject", "s3:PutObject"}, Target: objects(names.RecordPrefix)},
		{From: "consumer task", To: "bucket (list)", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"s3:ListBucket"}, Target: refBucket},
	}
	if mode == names.ModeServe {
		edges = append(edges, Edge{From: "ECS agent (task protection)", To: "own task", Caller: tasks, Allow: ByRole, Role: taskRole,
			Actions: []string{"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}, Target: refTasks})
	}
	return edges
}

// runTaskEdges are the arrows of a service that starts consumer tasks with
// the role held in property prop of resource typ/id.
func runTaskEdges(from, caller string, role *Ref) []Edge {
	return []Edge{
		{From: from, To: "ECS RunTask", Caller: caller, Allow: ByRole, Role: role,
			Actions: []string{"ecs:RunTask"}, Target: refTaskDef},
		{From: from, To: "ECS (tag started tasks)", Caller: caller, Allow: ByRole, Role: role,
			Actions: []string{"ecs:TagResource"}, Target: refTasks},
		{From: from, To: "task role (pass)", Caller: caller, Allow: ByRole, Role: role,
			Actions: []string{"iam:PassRole"}, Target: refTaskRole},
		{From: from, To: "execution role (pass)", Caller: caller, Allow: ByRole, Role: role,
			Actions: []string{"iam:PassRole"}, Target: refExecRole},
	}
}

// Edges returns the arrows of the named stack (names.Stack*).
func Edges(stack string) []Edge {
	switch stack {
	case names.StackOneOff:
		rule := &Ref{Type: "AWS::Events::Rule", ID: "PipelineConfigUploaded", Property: "Targets"}
		return append(pipelineEdges(names.ModeDrain), runTaskEdges("EventBridge rule", "events.amazonaws.com", rule)...)
	case names.StackAlarmService:
		return append(pipelineEdges(names.ModeServe),
			Edge{From: "backlog alarm", To: "scale-out policy", Caller: "cloudwatch.amazonaws.com", Allow: BySetting,
				Target: Ref{Type: "AWS::CloudWatch::Alarm", ID: "BacklogAlarm"}, Actions: []string{"AlarmActions"},
				Conditions: map[string]string{"": "ScaleOutOnBacklog"}},
			Edge{From: "idle alarm", To: "scale-in policy", Caller: "cloudwatch.amazonaws.com", Allow: BySetting,
				Target: Ref{Type: "AWS::CloudWatch::Alarm", ID: "IdleAlarm"}, Actions: []string{"AlarmActions"},
				Conditions: map[string]string{"": "ScaleInWhenIdle"}},
			// Application Auto Scaling calls ECS with its service-linked role
			// (AWSServiceRoleForApplicationAutoScaling_ECSService), which it
			// creates when the target is registered.
			Edge{From: "Application Auto Scaling", To: "ECS service", Caller: "ecs.application-autoscaling.amazonaws.com", Allow: BySetting,
				Target: Ref{Type: "AWS::ApplicationAutoScaling::ScalableTarget", ID: "ScalableTarget"}, Actions: []string{"ResourceId"},
				Conditions: map[string]string{"": "Service"}},
		)
	case names.StackAlarmDispatch:
		fn := &Ref{Type: "AWS::Lambda::Function", ID: "Dispatch", Property: "Role"}
		const lambda = "lambda.amazonaws.com"
		edges := append(pipelineEdges(names.ModeDrain),
			Edge{From: "backlog alarm", To: "alarm topic", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy,
				Actions: []string{"sns:Publish"}, Target: Ref{Type: "AWS::SNS::Topic", ID: "AlarmTopic"},
				Conditions: map[string]string{"aws:SourceArn": "BacklogAlarm", "aws:SourceAccount": ""}},
			Edge{From: "backlog alarm", To: "topic key", Caller: "cloudwatch.amazonaws.com", Allow: ByResourcePolicy,
				Actions: []string{"kms:GenerateDataKey", "kms:Decrypt"}, Target: Ref{Type: "AWS::KMS::Key", ID: "AlarmTopicKey"}},
			Edge{From: "alarm topic", To: "dispatch Lambda", Caller: "sns.amazonaws.com", Allow: ByResourcePolicy,
				Actions: []string{"lambda:InvokeFunction"}, Target: Ref{Type: "AWS::Lambda::Function", ID: "Dispatch"},
				Conditions: map[string]string{"aws:SourceArn": "AlarmTopic"}},
			Edge{From: "dispatch Lambda", To: "ECS (list tasks)", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"ecs:ListTasks"}, Target: refAnything, AnyResource: true,
				Conditions: map[string]string{"ecs:cluster": refCluster.ID}},
			Edge{From: "dispatch Lambda", To: "work queue (depth)", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"sqs:GetQueueAttributes"}, Target: refQueue},
			Edge{From: "dispatch Lambda", To: "own logs", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Target: Ref{Type: "AWS::Logs::LogGroup", ID: "DispatchLogs"}},
			Edge{From: "dispatch Lambda", To: "failure destination", Caller: lambda, Allow: ByRole, Role: fn,
				Actions: []string{"sqs:SendMessage"}, Target: Ref{Type: "AWS::SQS::Queue", ID: "DispatchFailures"}},
		)
		return append(edges, runTaskEdges("dispatch Lambda", lambda, fn)...)
	case names.StackCron:
		sched := &Ref{Type: "AWS::Scheduler::Schedule", ID: "Schedule", Property: "Target"}
		taskRole := &Ref{Type: "AWS::ECS::TaskDefinition", ID: "PipelineTask", Property: "TaskRoleArn"}
		return append(append(pipelineEdges(names.ModeDrain), runTaskEdges("Scheduler", "scheduler.amazonaws.com", sched)...),
			Edge{From: "Scheduler", To: "delivery DLQ", Caller: "scheduler.amazonaws.com", Allow: ByRole, Role: sched,
				Actions: []string{"sqs:SendMessage"}, Target: refDelivery},
			// The drain task's cap: it counts its family's tasks at start.
			Edge{From: "consumer task", To: "ECS (list tasks)", Caller: "ecs-tasks.amazonaws.com", Allow: ByRole, Role: taskRole,
				Actions: []string{"ecs:ListTasks"}, Target: refAnything, AnyResource: true,
				Conditions: map[string]string{"ecs:cluster": refCluster.ID}})
	}
	panic(fmt.Sprintf("stacks: no edges for stack %q", stack))
}

// EdgeTable renders a stack's edges as a Markdown table for the docs.
func EdgeTable(stack string) string {
	var b strings.Builder
	b.WriteString("| from | to | caller | allowed by | actions / setting | resource |\n|---|---|---|---|---|---|\n")
	for _, e := range Edges(stack) {
		by := e.Allow.String()
		if e.Role != nil {
			by = "role in " + e.Role.ID + "." + e.Role.Property
		}
		res := e.Target.String()
		if res == "" {
			res = "`*`"
		} else {
			res = "`" + res + "`"
		}
		var conds []string
		for k, v := range e.Conditions {
			if k == "" {
				res += " → `" + v + "`"
				continue
			}
			conds = append(conds, k)
		}
		if len(conds) > 0 {
			sort.Strings(conds)
			res += " (condition: " + strings.Join(conds, ", ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s |\n", e.From, e.To, e.Caller, by,
			"`"+strings.Join(e.Actions, "`, `")+"`", res)
	}
	return b.String()
}
