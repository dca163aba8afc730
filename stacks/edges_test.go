package stacks_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
	"github.com/edp-pipelines/edp/stacks"
)

// A build is one stack built with some settings, synthesized.
type build struct {
	name, kind string // stack name; names.Stack* it is built as
	settings   settings.Settings
	env        modelEnv
	doc        map[string]any // the whole template
	stack      awscdk.Stack
	nag        []string // cdk-nag errors and warnings of a combination
}

func (b build) checker() *checker { return newChecker(b.doc, b.env) }

func templateDoc(tpl assertions.Template) map[string]any {
	raw, _ := json.Marshal(tpl.ToJSON())
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return doc
}

// defaultBuilds are the package's shared templates (default settings).
func defaultBuilds() []build {
	var out []build
	for id, tpl := range templates {
		out = append(out, build{name: id, kind: id, settings: defaults, env: agnostic, doc: templateDoc(tpl), stack: built[id]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Every context combination the stacks support beyond the defaults, built
// once, in one App, by the first test that needs them.
var combos struct {
	once   sync.Once
	builds []build
}

// lookupEnv is the environment of stacks that look up a VPC: without
// credentials the lookup yields CDK's placeholder VPC, whose shape is what
// these tests need.
var lookupEnv = modelEnv{Account: "123456789012", Region: "eu-west-1"}

var constructors = map[string]func(constructs.Construct, *string, *stacks.Props) awscdk.Stack{
	names.StackOneOff: func(s constructs.Construct, id *string, p *stacks.Props) awscdk.Stack {
		return stacks.NewOneOffStack(s, *id, p)
	},
	names.StackAlarmService: func(s constructs.Construct, id *string, p *stacks.Props) awscdk.Stack {
		return stacks.NewAlarmServiceStack(s, *id, p)
	},
	names.StackAlarmDispatch: func(s constructs.Construct, id *string, p *stacks.Props) awscdk.Stack {
		return stacks.NewAlarmDispatchStack(s, *id, p)
	},
	names.StackCron: func(s constructs.Construct, id *string, p *stacks.Props) awscdk.Stack {
		return stacks.NewCronStack(s, *id, p)
	},
}

func contextBuilds() []build {
	combos.once.Do(func() {
		app := newApp(nil)
		cleanups = append(cleanups, *app.Outdir())
		for kind, newStack := range constructors {
			scalings := []string{settings.ScalingStep}
			if kind == names.StackAlarmService {
				scalings = append(scalings, settings.ScalingBacklog)
			}
			for _, network := range []string{settings.NetworkPublic, settings.NetworkPrivate, settings.NetworkDefault, settings.NetworkImport} {
				for _, removal := range []string{"retain", "destroy"} {
					for _, scaling := range scalings {
						s := defaults
						s.Network, s.RemovalPolicy, s.ScalingMode = network, removal, scaling
						if network == settings.NetworkImport {
							s.VpcID = "vpc-0123456789abcdef0"
						}
						if reflect.DeepEqual(s, defaults) {
							continue // the shared templates
						}
						name := fmt.Sprintf("%s-%s-%s-%s", kind, network, removal, scaling)
						p := &stacks.Props{Settings: s, RepoRoot: ".."}
						env := agnostic
						if network == settings.NetworkDefault || network == settings.NetworkImport {
							env = lookupEnv
							p.StackProps.Env = &awscdk.Environment{Account: jsii.String(env.Account), Region: jsii.String(env.Region)}
						}
						combos.builds = append(combos.builds, build{name: name, kind: kind, settings: s, env: env, stack: newStack(app, jsii.String(name), p)})
					}
				}
			}
		}
		asm := app.Synth(nil)
		for i := range combos.builds {
			b := &combos.builds[i]
			b.doc = templateDoc(assertions.Template_FromStack(b.stack, nil))
			// The assembly's messages, read once: Annotations_FromStack
			// costs seconds per stack in an App this size.
			for _, m := range *asm.GetStackArtifact(b.stack.ArtifactId()).Messages() {
				data := fmt.Sprint(m.Entry.Data)
				if m.Level != cxapi.SynthesisMessageLevel_INFO && strings.Contains(data, "AwsSolutions-") {
					b.nag = append(b.nag, string(m.Level)+": "+data)
				}
			}
		}
		sort.Slice(combos.builds, func(i, j int) bool { return combos.builds[i].name < combos.builds[j].name })
	})
	return combos.builds
}

// Every arrow of every architecture is allowed (or wired) by the
// synthesized template, in every context combination, and no Deny blocks it.
func TestEveryEdgeIsAllowed(t *testing.T) {
	for _, b := range append(defaultBuilds(), contextBuilds()...) {
		t.Run(b.name, func(t *testing.T) {
			edges := stacks.EdgesFor(b.kind, b.settings)
			if len(edges) < 15 {
				t.Fatalf("only %d edges for %s", len(edges), b.name)
			}
			for _, err := range checkEdges(b.checker(), edges) {
				t.Error(err)
			}
		})
	}
}

// Every context combination synthesizes with no unsuppressed cdk-nag
// finding. One warning is known: in private mode, AwsSolutions-EC23 cannot
// evaluate the interface endpoints' ingress, which names the VPC's CIDR by
// Fn::GetAtt (the rule itself, no ingress from anywhere, holds).
func TestEveryContextCombinationPassesNag(t *testing.T) {
	const known = "WARNING: CdkNagValidationFailure[AwsSolutions-EC23]"
	for _, b := range contextBuilds() {
		for _, finding := range b.nag {
			if !(b.settings.Network == settings.NetworkPrivate && strings.HasPrefix(finding, known)) {
				t.Errorf("%s: cdk-nag: %s", b.name, finding)
			}
		}
	}
}

// Each launcher starts tasks in the stack's own subnets.
func TestLaunchersPlaceTasksInTheStacksSubnets(t *testing.T) {
	paths := map[string]string{
		names.StackOneOff:       "Targets[].EcsParameters.NetworkConfiguration.AwsVpcConfiguration.Subnets[]",
		names.StackCron:         "Target.EcsParameters.NetworkConfiguration.AwsvpcConfiguration.Subnets[]",
		names.StackAlarmService: "NetworkConfiguration.AwsvpcConfiguration.Subnets[]",
	}
	types := map[string]string{
		names.StackOneOff: "AWS::Events::Rule", names.StackCron: "AWS::Scheduler::Schedule", names.StackAlarmService: "AWS::ECS::Service",
	}
	for _, b := range append(defaultBuilds(), contextBuilds()...) {
		path, ok := paths[b.kind]
		if !ok || b.settings.Network == settings.NetworkDefault || b.settings.Network == settings.NetworkImport {
			continue // looked-up subnets are literals of the placeholder VPC
		}
		t.Run(b.name, func(t *testing.T) {
			c := b.checker()
			subnets := map[string]bool{}
			for lid, r := range c.res {
				if r.Type == "AWS::EC2::Subnet" {
					subnets[c.ref(lid, "Ref")] = true
				}
			}
			n := 0
			for lid, r := range c.res {
				if r.Type != types[b.kind] {
					continue
				}
				for _, l := range at(r.Properties, path) {
					if !l.ok {
						continue
					}
					n++
					if !subnets[scalar(l.v)] {
						t.Errorf("%s places tasks in %v, not a subnet of the stack", lid, l.v)
					}
				}
			}
			if n == 0 {
				t.Errorf("no subnets at %s", path)
			}
		})
	}
}

// --- mutations -------------------------------------------------------------

// A mutation edits a template (as synthesized JSON) and returns how many
// places it changed; the edge check must reject every changed template.
type mutation struct {
	name  string
	apply func(doc map[string]any) int
	// breaks is what the check must name for every template the mutation
	// changes: part of an edge's "from → to (allowed by)", so a template
	// rejected for another reason does not count.
	breaks string
}

func resourcesOf(doc map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	res, _ := doc["Resources"].(map[string]any)
	for lid, r := range res {
		m, _ := r.(map[string]any)
		if m["Type"] == typ || typ == "" {
			props, _ := m["Properties"].(map[string]any)
			out[lid] = props
		}
	}
	return out
}

// policyStatements returns every statement of every policy document of the
// template (identity, trust, resource and key policies).
func policyStatements(doc map[string]any, types ...string) []map[string]any {
	field := map[string]string{
		"AWS::IAM::Policy": "PolicyDocument", "AWS::IAM::Role": "AssumeRolePolicyDocument", "AWS::SQS::QueuePolicy": "PolicyDocument",
		"AWS::SNS::TopicPolicy": "PolicyDocument", "AWS::S3::BucketPolicy": "PolicyDocument", "AWS::KMS::Key": "KeyPolicy",
	}
	if len(types) == 0 {
		for typ := range field {
			types = append(types, typ)
		}
	}
	var out []map[string]any
	for _, typ := range types {
		for _, p := range resourcesOf(doc, typ) {
			out = append(out, statementsOf(p[field[typ]])...)
		}
	}
	return out
}

// setCondition sets key to v in every statement that has a condition on
// key (optionally only among the given policy types).
func setCondition(key string, v any, types ...string) func(map[string]any) int {
	return func(doc map[string]any) int {
		n := 0
		for _, st := range policyStatements(doc, types...) {
			blocks, _ := st["Condition"].(map[string]any)
			for _, kv := range blocks {
				if m, _ := kv.(map[string]any); m != nil {
					if _, ok := m[key]; ok {
						m[key] = v
						n++
					}
				}
			}
		}
		return n
	}
}

var otherCluster = map[string]any{"Fn::Join": []any{"", []any{
	"arn:", map[string]any{"Ref": "AWS::Partition"}, ":ecs:", map[string]any{"Ref": "AWS::Region"}, ":",
	map[string]any{"Ref": "AWS::AccountId"}, ":cluster/another-cluster",
}}}

// isAttOf reports whether v is Fn::GetAtt [lid, "Arn"] of a resource of typ.
func isAttOf(doc map[string]any, v any, typ string) bool {
	m, _ := v.(map[string]any)
	att, _ := m["Fn::GetAtt"].([]any)
	if len(att) != 2 {
		return false
	}
	lid, _ := att[0].(string)
	_, ok := resourcesOf(doc, typ)[lid]
	return ok
}

// scheduleTargets and ruleTargets return the targets of the template.
func targets(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, p := range resourcesOf(doc, "AWS::Events::Rule") {
		for _, t := range anyList(p["Targets"]) {
			out = append(out, t.(map[string]any))
		}
	}
	for _, p := range resourcesOf(doc, "AWS::Scheduler::Schedule") {
		if t, ok := p["Target"].(map[string]any); ok {
			out = append(out, t)
		}
	}
	return out
}

var mutations = []mutation{
	{"PassedToServiceNamesAnotherService", setCondition("iam:PassedToService", "lambda.amazonaws.com"), "→ task role (pass)"},
	{"ClusterConditionNamesAnotherCluster", setCondition("ecs:cluster", otherCluster), "→ ECS RunTask"},
	{"CreateActionIsAnotherAction", setCondition("ecs:CreateAction", "CreateService"), "→ ECS (tag started tasks)"},
	{"KeyPolicySourceAccountImpossible", setCondition("aws:SourceAccount", "000000000000", "AWS::KMS::Key"), "topic key (resource policy)"},
	{"LambdaPermissionSourceArnWrappedInJoin", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::Lambda::Permission") {
			if src, ok := p["SourceArn"]; ok {
				p["SourceArn"] = map[string]any{"Fn::Join": []any{"", []any{src, ":other"}}}
				n++
			}
		}
		return n
	}, "alarm topic → dispatch Lambda (resource policy)"},
	{"SubscriptionDeleted", func(doc map[string]any) int {
		n := 0
		for lid := range resourcesOf(doc, "AWS::SNS::Subscription") {
			delete(doc["Resources"].(map[string]any), lid)
			n++
		}
		return n
	}, "alarm topic → dispatch Lambda (subscription)"},
	{"AlarmActionsDeleted", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::CloudWatch::Alarm") {
			if _, ok := p["AlarmActions"]; ok {
				delete(p, "AlarmActions")
				n++
			}
		}
		return n
	}, "→ alert topic (action)"},
	{"RuleQueueTargetDeleted", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::Events::Rule") {
			var kept []any
			for _, t := range anyList(p["Targets"]) {
				if isAttOf(doc, t.(map[string]any)["Arn"], "AWS::SQS::Queue") {
					n++
					continue
				}
				kept = append(kept, t)
			}
			p["Targets"] = kept
		}
		return n
	}, "EventBridge rule → work queue (target)"},
	{"EveryDeadLetterConfigDeleted", func(doc map[string]any) int {
		n := 0
		for _, t := range targets(doc) {
			if _, ok := t["DeadLetterConfig"]; ok {
				delete(t, "DeadLetterConfig")
				n++
			}
		}
		return n
	}, "→ delivery DLQ (dead-letter config)"},
	{"EcsTargetNamesAnotherCluster", func(doc map[string]any) int {
		n := 0
		for _, t := range targets(doc) {
			if isAttOf(doc, t["Arn"], "AWS::ECS::Cluster") {
				t["Arn"] = otherCluster
				n++
			}
		}
		return n
	}, "→ ECS cluster (target)"},
	{"ServicePrincipalBecomesWildcard", func(doc map[string]any) int {
		n := 0
		for _, st := range policyStatements(doc, "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::KMS::Key") {
			if p, _ := st["Principal"].(map[string]any); st["Effect"] == "Allow" && p["Service"] != nil {
				st["Principal"] = "*"
				n++
			}
		}
		return n
	}, "(resource policy)"},
	{"TopicPolicyConditionsDeleted", func(doc map[string]any) int {
		n := 0
		for _, st := range policyStatements(doc, "AWS::SNS::TopicPolicy") {
			if st["Effect"] == "Allow" {
				delete(st, "Condition")
				n++
			}
		}
		return n
	}, "→ alert topic (resource policy)"},
	{"QueuePolicyDeniesEverything", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::SQS::QueuePolicy") {
			d := p["PolicyDocument"].(map[string]any)
			d["Statement"] = append(anyList(d["Statement"]), map[string]any{"Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": "*"})
			n++
		}
		return n
	}, "→ work queue"},
	{"RedrivePolicyDeleted", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::SQS::Queue") {
			if _, ok := p["RedrivePolicy"]; ok {
				delete(p, "RedrivePolicy")
				n++
			}
		}
		return n
	}, "work queue → DLQ (redrive)"},
	{"SchedulerTrustNamesAnotherGroup", setCondition("aws:SourceArn", map[string]any{"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule-group/other"}, "AWS::IAM::Role"), "Scheduler → ECS RunTask"},
	{"ScalableTargetGetsARole", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::ApplicationAutoScaling::ScalableTarget") {
			p["RoleARN"] = "arn:aws:iam::111122223333:role/scaling"
			n++
		}
		return n
	}, "Application Auto Scaling → ECS service"},
	{"BucketStopsSendingEvents", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::S3::Bucket") {
			p["NotificationConfiguration"] = map[string]any{"EventBridgeConfiguration": map[string]any{"EventBridgeEnabled": false}}
			n++
		}
		return n
	}, "S3 bucket → EventBridge"},
	{"TopicPolicyNamesAnotherAlarm", setCondition("aws:SourceArn",
		map[string]any{"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:other"}, "AWS::SNS::TopicPolicy"), "→ alert topic (resource policy)"},
	{"RetryRuleMatchesAnotherAlarm", func(doc map[string]any) int {
		n := 0
		for _, p := range resourcesOf(doc, "AWS::Events::Rule") {
			if pattern, ok := p["EventPattern"].(map[string]any); ok && pattern["resources"] != nil {
				pattern["resources"] = []any{map[string]any{"Fn::Sub": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:other"}}
				n++
			}
		}
		return n
	}, "stranded-work alarm → retry rule (pattern)"},
	{"JobReadGrantWidenedToTheBucket", editStatement("JobReadsOwnBucketPrefixes", func(st map[string]any) {
		st["Resource"] = map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Fn::GetAtt": []any{bucketOf(st), "Arn"}}, "/*"}}}
	}), "command job → unlisted/ (read)"},
	{"JobReadGrantLost", editStatement("JobReadsOwnBucketPrefixes", func(st map[string]any) { st["Action"] = "s3:GetObjectTagging" }),
		"command job → data/ (read)"},
	{"JobWritesTheBucketsItReads", editStatement("JobReadsOtherBuckets", func(st map[string]any) {
		st["Action"] = []any{"s3:GetObject", "s3:PutObject"}
	}), "command job → bucket ref-data (write)"},
	{"IrisTaskReadsData", func(doc map[string]any) int {
		if strings.Contains(asJSON(resourcesOf(doc, "AWS::ECS::TaskDefinition")), names.EnvJob) {
			return 0 // a command job's task may read data/
		}
		n := 0
		for _, st := range policyStatements(doc, "AWS::IAM::Policy") {
			if st["Sid"] == "ReadConfigs" {
				st["Resource"] = []any{st["Resource"], map[string]any{"Fn::Join": []any{"", []any{
					map[string]any{"Fn::GetAtt": []any{bucketOf(st), "Arn"}}, "/data/*"}}}}
				n++
			}
		}
		return n
	}, "consumer task (Iris) → data/ (read)"},
	{"TaskRoleLosesQueueAccess", func(doc map[string]any) int {
		n := 0
		for _, st := range policyStatements(doc, "AWS::IAM::Policy") {
			if st["Sid"] == "ConsumeQueue" {
				st["Resource"] = map[string]any{"Fn::Join": []any{"", []any{st["Resource"], "-other"}}}
				n++
			}
		}
		return n
	}, "consumer task → work queue"},
}

// editStatement edits every identity-policy statement with sid.
func editStatement(sid string, edit func(st map[string]any)) func(map[string]any) int {
	return func(doc map[string]any) int {
		n := 0
		for _, st := range policyStatements(doc, "AWS::IAM::Policy") {
			if st["Sid"] == sid {
				edit(st)
				n++
			}
		}
		return n
	}
}

// bucketOf is the logical id of the bucket a statement's resources name
// (Fn::GetAtt [bucket, "Arn"] inside them).
func bucketOf(st map[string]any) string {
	var find func(v any) string
	find = func(v any) string {
		switch x := v.(type) {
		case map[string]any:
			if att, ok := x["Fn::GetAtt"].([]any); ok && len(att) == 2 && strings.HasPrefix(fmt.Sprint(att[0]), "PipelineBucket") {
				return fmt.Sprint(att[0])
			}
			for _, e := range x {
				if b := find(e); b != "" {
					return b
				}
			}
		case []any:
			for _, e := range x {
				if b := find(e); b != "" {
					return b
				}
			}
		}
		return ""
	}
	return find(st["Resource"])
}

func copyDoc(doc map[string]any) map[string]any {
	raw, _ := json.Marshal(doc)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// The edge check can fail: each mutation of a synthesized template that
// cuts a wire or loosens a condition is rejected — by the edge it breaks —
// where the unmutated template passes. `go test ./stacks -run Mutation`.
func TestEdgeCheckRejectsMutations(t *testing.T) {
	builds := append(defaultBuilds(), commandBuilds()...)
	for _, m := range mutations {
		t.Run(m.name, func(t *testing.T) {
			applied := 0
			for _, b := range builds {
				edges := stacks.EdgesFor(b.kind, b.settings)
				if errs := checkEdges(b.checker(), edges); len(errs) > 0 {
					t.Fatalf("%s: the unmutated template fails: %v", b.name, errs)
				}
				doc := copyDoc(b.doc)
				if m.apply(doc) == 0 {
					continue
				}
				applied++
				errs := checkEdges(newChecker(doc, b.env), edges)
				named := slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), m.breaks) })
				switch {
				case len(errs) == 0:
					t.Errorf("%s: the edge check accepts the mutated template", b.name)
				case !named:
					t.Errorf("%s: rejected, but no error names %q: %v", b.name, m.breaks, errs)
				default:
					t.Logf("%s: rejected: %v", b.name, errs[0])
				}
			}
			if applied == 0 {
				t.Fatal("the mutation changed no template")
			}
		})
	}
}

var updateDocs = os.Getenv("EDP_UPDATE_DOCS") != ""

// The edge tables in docs/architectures/*.md are the rendered Edges: run
// `EDP_UPDATE_DOCS=1 go test ./stacks -run TestEdgeTablesInDocs` after changing them.
func TestEdgeTablesInDocs(t *testing.T) {
	pages := map[string]string{
		names.StackOneOff: "one-off.md", names.StackAlarmService: "alarm-service.md",
		names.StackAlarmDispatch: "alarm-dispatch.md", names.StackCron: "cron.md",
	}
	const begin, end = "<!-- edges:begin (generated from stacks/edges.go) -->\n", "<!-- edges:end -->"
	for stack, page := range pages {
		path := filepath.Join("..", "docs", "architectures", page)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(raw)
		want := begin + stacks.EdgeTable(stack) + end
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if updateDocs {
			if i < 0 || j < 0 {
				doc += "\n## Edges: who may call what\n\nEvery arrow above, and what in the template allows it " +
					"(`stacks/edges.go`; `TestEveryEdgeIsAllowed` checks each one against the synthesized template).\n\n" + want + "\n"
			} else {
				doc = doc[:i] + want + doc[j+len(end):]
			}
			if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if i < 0 || j < 0 || doc[i:j+len(end)] != want {
			t.Errorf("%s: edge table differs from stacks.EdgeTable(%s); run EDP_UPDATE_DOCS=1 go test ./stacks -run TestEdgeTablesInDocs", path, stack)
		}
	}
}
