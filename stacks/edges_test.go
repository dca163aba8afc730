package stacks_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/stacks"
)

// cfnTemplate is a synthesized template as plain JSON values.
type cfnTemplate map[string]struct {
	Type       string
	Properties map[string]any
}

func parseTemplate(t *testing.T, tpl assertions.Template) cfnTemplate {
	t.Helper()
	raw, err := json.Marshal(tpl.ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Resources cfnTemplate }
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Resources
}

// logicalID finds the resource whose logical id is id plus CDK's 8-hex hash
// (and, when typ is set, of that type).
func (c cfnTemplate) logicalID(typ, id string) (string, bool) {
	re := regexp.MustCompile("^" + regexp.QuoteMeta(id) + "[0-9A-F]{8}$")
	for lid, r := range c {
		if re.MatchString(lid) && (typ == "" || r.Type == typ) {
			return lid, true
		}
	}
	return "", false
}

// refersToID reports whether v names any resource whose construct id is id.
func (c cfnTemplate) refersToID(v any, id string) bool {
	re := regexp.MustCompile("^" + regexp.QuoteMeta(id) + "[0-9A-F]{8}$")
	for lid := range c {
		if re.MatchString(lid) && refersTo(v, lid) {
			return true
		}
	}
	return false
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// refersTo reports whether v names logical id lid with a Ref or Fn::GetAtt.
func refersTo(v any, lid string) bool {
	s := asJSON(v)
	return strings.Contains(s, `{"Ref":"`+lid+`"}`) || strings.Contains(s, `{"Fn::GetAtt":["`+lid+`",`)
}

var refOrAtt = regexp.MustCompile(`\{"(?:Ref":"|Fn::GetAtt":\[")([A-Za-z0-9]+)"`)

func anyList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// actionMatches is IAM's case-insensitive wildcard match of an action.
func actionMatches(pattern, action string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(strings.ToLower(pattern)), `\*`, ".*") + "$"
	return regexp.MustCompile(re).MatchString(strings.ToLower(action))
}

func statementsOf(doc any) []map[string]any {
	m, _ := doc.(map[string]any)
	var out []map[string]any
	for _, s := range anyList(m["Statement"]) {
		if st, ok := s.(map[string]any); ok {
			out = append(out, st)
		}
	}
	return out
}

func hasAction(st map[string]any, action string) bool {
	for _, a := range anyList(st["Action"]) {
		if p, ok := a.(string); ok && actionMatches(p, action) {
			return true
		}
	}
	return false
}

func principalIs(st map[string]any, service string, anyoneCounts bool) bool {
	p := st["Principal"]
	if p == "*" {
		return anyoneCounts
	}
	m, _ := p.(map[string]any)
	for _, a := range anyList(m["AWS"]) {
		if a == "*" {
			return anyoneCounts
		}
	}
	for _, s := range anyList(m["Service"]) {
		if s == service {
			return true
		}
	}
	return false
}

// resourcePolicies returns the statements of every resource policy attached
// to the resource lid: queue, topic and bucket policies, key policies, and
// Lambda permissions (as statements).
func (c cfnTemplate) resourcePolicies(lid string) []map[string]any {
	var out []map[string]any
	for _, r := range c {
		switch r.Type {
		case "AWS::SQS::QueuePolicy":
			if refersTo(r.Properties["Queues"], lid) {
				out = append(out, statementsOf(r.Properties["PolicyDocument"])...)
			}
		case "AWS::SNS::TopicPolicy":
			if refersTo(r.Properties["Topics"], lid) {
				out = append(out, statementsOf(r.Properties["PolicyDocument"])...)
			}
		case "AWS::S3::BucketPolicy":
			if refersTo(r.Properties["Bucket"], lid) {
				out = append(out, statementsOf(r.Properties["PolicyDocument"])...)
			}
		case "AWS::Lambda::Permission":
			if refersTo(r.Properties["FunctionName"], lid) {
				st := map[string]any{
					"Effect": "Allow", "Action": r.Properties["Action"], "Resource": r.Properties["FunctionName"],
					"Principal": map[string]any{"Service": r.Properties["Principal"]},
				}
				if src, ok := r.Properties["SourceArn"]; ok {
					st["Condition"] = map[string]any{"ArnLike": map[string]any{"aws:SourceArn": src}}
				}
				out = append(out, st)
			}
		}
	}
	if r, ok := c[lid]; ok && r.Type == "AWS::KMS::Key" {
		out = append(out, statementsOf(r.Properties["KeyPolicy"])...)
	}
	return out
}

// roleStatements returns the identity-policy statements of role lid.
func (c cfnTemplate) roleStatements(lid string) []map[string]any {
	var out []map[string]any
	for _, r := range c {
		if r.Type == "AWS::IAM::Policy" && refersTo(r.Properties["Roles"], lid) {
			out = append(out, statementsOf(r.Properties["PolicyDocument"])...)
		}
	}
	for _, p := range anyList(c[lid].Properties["Policies"]) {
		m, _ := p.(map[string]any)
		out = append(out, statementsOf(m["PolicyDocument"])...)
	}
	return out
}

// onlyTransportConditions reports whether a Deny applies only to requests
// without TLS (or below TLS 1.2): AWS services call each other over TLS 1.2+.
func onlyTransportConditions(cond any) bool {
	m, ok := cond.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	for op, kv := range m {
		keys, _ := kv.(map[string]any)
		for k, v := range keys {
			switch {
			case op == "Bool" && k == "aws:SecureTransport" && fmt.Sprint(v) == "false":
			case op == "NumericLessThan" && k == "s3:TlsVersion":
			default:
				return false
			}
		}
	}
	return true
}

// resourceMatches reports whether a statement's Resource covers the target.
func resourceMatches(st map[string]any, lid string, target stacks.Ref, star bool) bool {
	for _, r := range anyList(st["Resource"]) {
		if r == "*" {
			if star {
				return true
			}
			continue
		}
		if target.ID == "" && len(target.Contains) == 0 {
			continue // only "*" can name "anything"
		}
		if lid != "" && !refersTo(r, lid) {
			continue
		}
		s, all := asJSON(r), true
		for _, frag := range target.Contains {
			all = all && strings.Contains(s, frag)
		}
		if all {
			return true
		}
	}
	return false
}

func (c cfnTemplate) conditionsHold(st map[string]any, want map[string]string) error {
	cond, _ := st["Condition"].(map[string]any)
	for key, of := range want {
		if key == "" {
			continue
		}
		found := false
		for _, kv := range cond {
			m, _ := kv.(map[string]any)
			v, ok := m[key]
			if !ok {
				continue
			}
			if of == "" {
				found = true
				break
			}
			if c.refersToID(v, of) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("no condition %s naming %q", key, of)
		}
	}
	return nil
}

// checkEdge returns why the template does not allow e, or nil.
func (c cfnTemplate) checkEdge(e stacks.Edge) error {
	lid := ""
	if e.Target.ID != "" {
		var ok bool
		if lid, ok = c.logicalID(e.Target.Type, e.Target.ID); !ok {
			return fmt.Errorf("no %s %s in the template", e.Target.Type, e.Target.ID)
		}
	}
	switch e.Allow {
	case stacks.BySetting:
		var v any = c[lid].Properties
		for _, part := range strings.Split(e.Actions[0], ".") {
			m, _ := v.(map[string]any)
			v = m[part]
		}
		if want, ok := e.Conditions[""]; ok {
			if !c.refersToID(v, want) {
				return fmt.Errorf("%s.%s = %s does not name %s", lid, e.Actions[0], asJSON(v), want)
			}
			return nil
		}
		if v != true {
			return fmt.Errorf("%s.%s = %s, want true", lid, e.Actions[0], asJSON(v))
		}
		return nil

	case stacks.ByResourcePolicy:
		policy := c.resourcePolicies(lid)
		for _, action := range e.Actions {
			allowed := false
			var why []string
			for _, st := range policy {
				if st["Effect"] != "Allow" || !hasAction(st, action) || !principalIs(st, e.Caller, false) {
					continue
				}
				if !resourceMatches(st, lid, e.Target, true) {
					why = append(why, "resource "+asJSON(st["Resource"]))
					continue
				}
				if err := c.conditionsHold(st, e.Conditions); err != nil {
					why = append(why, err.Error())
					continue
				}
				allowed = true
			}
			if !allowed {
				return fmt.Errorf("no statement in the resource policy of %s allows %s to %s %v", lid, e.Caller, action, why)
			}
		}
		return denied(policy, e, lid, true)

	case stacks.ByRole:
		holder, ok := c.logicalID(e.Role.Type, e.Role.ID)
		if !ok {
			return fmt.Errorf("no %s %s holds the caller's role", e.Role.Type, e.Role.ID)
		}
		role := ""
		for _, m := range refOrAtt.FindAllStringSubmatch(asJSON(c[holder].Properties[e.Role.Property]), -1) {
			if c[m[1]].Type == "AWS::IAM::Role" {
				role = m[1]
				break
			}
		}
		if role == "" {
			return fmt.Errorf("%s.%s names no role of the stack", holder, e.Role.Property)
		}
		trusted := false
		for _, st := range statementsOf(c[role].Properties["AssumeRolePolicyDocument"]) {
			trusted = trusted || (st["Effect"] == "Allow" && hasAction(st, "sts:AssumeRole") && principalIs(st, e.Caller, false))
		}
		if !trusted {
			return fmt.Errorf("role %s does not trust %s", role, e.Caller)
		}
		identity := c.roleStatements(role)
		for _, action := range e.Actions {
			allowed := false
			for _, st := range identity {
				if st["Effect"] == "Allow" && hasAction(st, action) && resourceMatches(st, lid, e.Target, e.AnyResource) &&
					c.conditionsHold(st, e.Conditions) == nil {
					allowed = true
				}
			}
			if !allowed {
				return fmt.Errorf("role %s (of %s.%s) has no statement allowing %s on %s", role, holder, e.Role.Property, action, e.Target)
			}
		}
		if err := denied(identity, e, lid, false); err != nil {
			return err
		}
		if lid != "" {
			return denied(c.resourcePolicies(lid), e, lid, true)
		}
		return nil
	}
	return fmt.Errorf("unknown allow kind %v", e.Allow)
}

// denied returns an error when a Deny among statements would block e.
func denied(statements []map[string]any, e stacks.Edge, lid string, resourcePolicy bool) error {
	for _, st := range statements {
		if st["Effect"] != "Deny" || (resourcePolicy && !principalIs(st, e.Caller, true)) {
			continue
		}
		for _, action := range e.Actions {
			if hasAction(st, action) && resourceMatches(st, lid, stacks.Ref{ID: e.Target.ID}, true) && !onlyTransportConditions(st["Condition"]) {
				return fmt.Errorf("a Deny blocks %s: %s", action, asJSON(st))
			}
		}
	}
	return nil
}

// Every arrow of every architecture is allowed by the synthesized template,
// and no Deny blocks it.
func TestEveryEdgeIsAllowed(t *testing.T) {
	for id, tpl := range templates {
		t.Run(id, func(t *testing.T) {
			c := parseTemplate(t, tpl)
			edges := stacks.Edges(id)
			if len(edges) < 12 {
				t.Fatalf("only %d edges for %s", len(edges), id)
			}
			for _, e := range edges {
				if err := c.checkEdge(e); err != nil {
					t.Errorf("%s → %s (%s): %v", e.From, e.To, strings.Join(e.Actions, ","), err)
				}
			}
		})
	}
}

// The edge check can fail: without the topic policy's Allow, or with a Deny
// on publishing, CloudWatch's arrow to the topic is reported.
func TestEdgeCheckFindsMissingAllowsAndBlockingDenies(t *testing.T) {
	var alarmToTopic stacks.Edge
	for _, e := range stacks.Edges(names.StackAlarmDispatch) {
		if e.From == "backlog alarm" && e.To == "alarm topic" {
			alarmToTopic = e
		}
	}
	if alarmToTopic.Caller == "" {
		t.Fatal("no backlog alarm → alarm topic edge")
	}
	edit := func(f func(st []any) []any) cfnTemplate {
		c := parseTemplate(t, templates[names.StackAlarmDispatch])
		lid, _ := c.logicalID("AWS::SNS::TopicPolicy", "AlarmTopicPolicy")
		doc := c[lid].Properties["PolicyDocument"].(map[string]any)
		doc["Statement"] = f(anyList(doc["Statement"]))
		return c
	}
	onlyDenies := edit(func(st []any) []any {
		var out []any
		for _, s := range st {
			if s.(map[string]any)["Effect"] == "Deny" {
				out = append(out, s)
			}
		}
		return out
	})
	if err := onlyDenies.checkEdge(alarmToTopic); err == nil || !strings.Contains(err.Error(), "no statement") {
		t.Errorf("topic policy with only the TLS Deny: got %v, want a missing-allow error", err)
	}
	blocked := edit(func(st []any) []any {
		return append(st, map[string]any{"Effect": "Deny", "Principal": "*", "Action": "sns:*", "Resource": "*"})
	})
	if err := blocked.checkEdge(alarmToTopic); err == nil || !strings.Contains(err.Error(), "Deny") {
		t.Errorf("topic policy with an unconditional Deny: got %v, want a blocking-deny error", err)
	}
	unscoped := edit(func(st []any) []any {
		for _, s := range st {
			delete(s.(map[string]any), "Condition")
		}
		return st
	})
	if err := unscoped.checkEdge(alarmToTopic); err == nil || !strings.Contains(err.Error(), "no condition aws:Source") {
		t.Errorf("topic policy without conditions: got %v, want a missing-condition error", err)
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
