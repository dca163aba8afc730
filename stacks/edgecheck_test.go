package stacks_test

// The edge checker: it decides whether a synthesized template allows (or
// wires) an arrow of stacks.Edges the way AWS would decide it.
//
// Every intrinsic of the template is first resolved to a concrete value in a
// model account (resources are named by their logical ids; ARNs follow each
// service's format), so references match exactly: a Ref or Fn::GetAtt names
// one resource and nothing that merely contains its id, and a Fn::Join that
// does not produce the resource's ARN does not name it. Then each call is
// evaluated as IAM evaluates a request: a principal, an action, a resource
// and the caller's context (source ARN and account, ecs:cluster,
// iam:PassedToService, ecs:CreateAction, TLS). An Allow counts only when its
// principal names the caller, its action and resource match and every
// condition holds; an unknown operator or a key the context lacks is not
// satisfied. A Deny blocks unless one of its conditions is known not to hold.

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/edp-pipelines/edp/stacks"
)

// modelEnv is where a template is evaluated. Env-agnostic stacks are given
// a model account and region; stacks with a concrete environment use it.
type modelEnv struct{ Account, Region string }

var agnostic = modelEnv{Account: "111122223333", Region: "eu-west-1"}

const partition = "aws"

type resource struct {
	Type       string
	Properties map[string]any
}

// checker holds one template, resolved.
type checker struct {
	env modelEnv
	raw map[string]resource // as synthesized
	res map[string]resource // every intrinsic resolved
}

// newChecker resolves doc (a whole template) in env.
func newChecker(doc map[string]any, env modelEnv) *checker {
	c := &checker{env: env, raw: map[string]resource{}, res: map[string]resource{}}
	resources, _ := doc["Resources"].(map[string]any)
	for lid, r := range resources {
		m, _ := r.(map[string]any)
		typ, _ := m["Type"].(string)
		props, _ := m["Properties"].(map[string]any)
		c.raw[lid] = resource{Type: typ, Properties: props}
	}
	for lid, r := range c.raw {
		props, _ := c.resolve(r.Properties).(map[string]any)
		c.res[lid] = resource{Type: r.Type, Properties: props}
	}
	return c
}

// --- resolving -------------------------------------------------------------

// noValue is AWS::NoValue: the property or element disappears.
type noValue struct{}

func (c *checker) resolve(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			for k, arg := range v {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return c.intrinsic(k, arg)
				}
			}
		}
		out := map[string]any{}
		for k, e := range v {
			if r := c.resolve(e); r != (noValue{}) {
				out[k] = r
			}
		}
		return out
	case []any:
		var out []any
		for _, e := range v {
			if r := c.resolve(e); r != (noValue{}) {
				out = append(out, r)
			}
		}
		return out
	}
	return v
}

// intrinsic evaluates one intrinsic function. What the model cannot
// evaluate becomes a string that equals nothing.
func (c *checker) intrinsic(fn string, arg any) any {
	unresolved := fmt.Sprintf("<unresolved %s %s>", fn, asJSON(arg))
	switch fn {
	case "Ref":
		name, _ := arg.(string)
		if name == "AWS::NoValue" {
			return noValue{}
		}
		return c.ref(name, "Ref")
	case "Fn::GetAtt":
		var parts []string
		switch a := arg.(type) {
		case string:
			parts = strings.SplitN(a, ".", 2)
		case []any:
			for _, p := range a {
				s, _ := p.(string)
				parts = append(parts, s)
			}
		}
		if len(parts) != 2 {
			return unresolved
		}
		return c.ref(parts[0], parts[1])
	case "Fn::Join":
		a, _ := arg.([]any)
		if len(a) != 2 {
			return unresolved
		}
		sep, _ := a[0].(string)
		list, ok := c.resolve(a[1]).([]any)
		if !ok {
			return unresolved
		}
		var parts []string
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return unresolved
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, sep)
	case "Fn::Sub":
		s, vars := arg, map[string]any{}
		if a, ok := arg.([]any); ok && len(a) == 2 {
			s = a[0]
			m, _ := a[1].(map[string]any)
			for k, v := range m {
				vars[k] = c.resolve(v)
			}
		}
		str, ok := s.(string)
		if !ok {
			return unresolved
		}
		return c.sub(str, func(name string) (string, bool) {
			if v, ok := vars[name]; ok {
				s, ok := v.(string)
				return s, ok
			}
			lid, attr, _ := strings.Cut(name, ".")
			if attr == "" {
				attr = "Ref"
			}
			return c.ref(lid, attr), true
		})
	case "Fn::Select":
		a, _ := arg.([]any)
		if len(a) != 2 {
			return unresolved
		}
		i, err := strconv.Atoi(fmt.Sprint(c.resolve(a[0])))
		list, ok := c.resolve(a[1]).([]any)
		if err != nil || !ok || i < 0 || i >= len(list) {
			return unresolved
		}
		return list[i]
	case "Fn::Split":
		a, _ := arg.([]any)
		if len(a) != 2 {
			return unresolved
		}
		sep, _ := a[0].(string)
		s, ok := c.resolve(a[1]).(string)
		if !ok {
			return unresolved
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out
	case "Fn::GetAZs":
		return []any{c.env.Region + "a", c.env.Region + "b", c.env.Region + "c"}
	}
	return unresolved
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

// sub replaces ${name} in s by lookup(name); ${!x} stays as ${x}.
func (c *checker) sub(s string, lookup func(string) (string, bool)) string {
	return subVar.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		if v, ok := lookup(name); ok {
			return v
		}
		return "<unresolved " + m + ">"
	})
}

// ref is the value of Ref (attr "Ref") or Fn::GetAtt of a pseudo parameter,
// a parameter or a resource.
func (c *checker) ref(name, attr string) string {
	switch name {
	case "AWS::Partition":
		return partition
	case "AWS::Region":
		return c.env.Region
	case "AWS::AccountId":
		return c.env.Account
	case "AWS::URLSuffix":
		return "amazonaws.com"
	case "AWS::StackName", "AWS::StackId":
		return "<stack>"
	}
	r, ok := c.raw[name]
	if !ok {
		return "<parameter " + name + ">"
	}
	n := c.name(name)
	reg, acct := c.env.Region, c.env.Account
	arn := func(service, resource string) string {
		return "arn:" + partition + ":" + service + ":" + reg + ":" + acct + ":" + resource
	}
	values := map[string]map[string]string{
		"AWS::SQS::Queue": {"Ref": "https://sqs." + reg + ".amazonaws.com/" + acct + "/" + n,
			"QueueUrl": "https://sqs." + reg + ".amazonaws.com/" + acct + "/" + n, "Arn": arn("sqs", n), "QueueName": n},
		"AWS::SNS::Topic":                            {"Ref": arn("sns", n), "TopicArn": arn("sns", n), "TopicName": n},
		"AWS::S3::Bucket":                            {"Ref": n, "Arn": "arn:" + partition + ":s3:::" + n},
		"AWS::Events::Rule":                          {"Ref": n, "Arn": arn("events", "rule/"+n)},
		"AWS::ECS::Cluster":                          {"Ref": n, "Arn": arn("ecs", "cluster/"+n)},
		"AWS::ECS::TaskDefinition":                   {"Ref": arn("ecs", "task-definition/"+n+":1"), "TaskDefinitionArn": arn("ecs", "task-definition/"+n+":1")},
		"AWS::ECS::Service":                          {"Ref": arn("ecs", "service/"+n), "ServiceArn": arn("ecs", "service/"+n), "Name": n},
		"AWS::IAM::Role":                             {"Ref": n, "Arn": "arn:" + partition + ":iam::" + acct + ":role/" + n},
		"AWS::Logs::LogGroup":                        {"Ref": n, "Arn": arn("logs", "log-group:"+n+":*")},
		"AWS::KMS::Key":                              {"Ref": n, "KeyId": n, "Arn": arn("kms", "key/"+n)},
		"AWS::Lambda::Function":                      {"Ref": n, "Arn": arn("lambda", "function:"+n)},
		"AWS::CloudWatch::Alarm":                     {"Ref": n, "Arn": arn("cloudwatch", "alarm:"+n)},
		"AWS::CloudWatch::Dashboard":                 {"Ref": n},
		"AWS::Scheduler::Schedule":                   {"Ref": n, "Arn": arn("scheduler", "schedule/"+c.scheduleGroup(name)+"/"+n)},
		"AWS::ApplicationAutoScaling::ScalingPolicy": {"Ref": arn("autoscaling", "scalingPolicy:"+n), "Arn": arn("autoscaling", "scalingPolicy:"+n)},
	}
	if v, ok := values[r.Type][attr]; ok {
		return v
	}
	if attr == "Ref" {
		return n // ids of subnets, security groups, scalable targets, …
	}
	return n + "." + attr // an attribute the model does not know: never an ARN
}

// name is a resource's physical name: the literal name property, if the
// template sets one, else its logical id.
func (c *checker) name(lid string) string {
	for _, p := range []string{"QueueName", "TopicName", "BucketName", "ClusterName", "RoleName", "LogGroupName",
		"FunctionName", "AlarmName", "DashboardName", "Name", "ServiceName", "Family", "PolicyName"} {
		if s, ok := c.raw[lid].Properties[p].(string); ok && c.raw[lid].Type != "AWS::IAM::Policy" {
			return s
		}
	}
	return lid
}

func (c *checker) scheduleGroup(lid string) string {
	if g, ok := c.raw[lid].Properties["GroupName"].(string); ok {
		return g
	}
	return "default"
}

// logicalID finds the resource whose logical id is id plus CDK's 8-hex hash
// (or id alone, as for an L1 resource at the top of a stack), of type typ:
// exactly one. Without typ, a resource of a type the model names wins over
// its helpers (a cluster over its capacity-provider association).
func (c *checker) logicalID(typ, id string) (string, error) {
	re := regexp.MustCompile("^" + regexp.QuoteMeta(id) + "([0-9A-F]{8})?$")
	var found, modelled []string
	for lid, r := range c.raw {
		if re.MatchString(lid) && (typ == "" || r.Type == typ) {
			found = append(found, lid)
			if c.ref(lid, "Ref") != c.name(lid) || c.ref(lid, "Arn") != c.name(lid)+".Arn" {
				modelled = append(modelled, lid)
			}
		}
	}
	if len(found) > 1 && typ == "" {
		found = modelled
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%d resources %s %s in the template, want 1", len(found), typ, id)
	}
	return found[0], nil
}

// value resolves a stacks.Ref / stacks.Wire value: Fn::Sub syntax whose
// names are construct ids (or pseudo parameters).
func (c *checker) value(s string) (string, error) {
	var err error
	out := c.sub(s, func(name string) (string, bool) {
		id, attr, _ := strings.Cut(name, ".")
		if strings.HasPrefix(id, "AWS::") {
			return c.ref(id, "Ref"), true
		}
		if attr == "" {
			attr = "Ref"
		}
		lid, e := c.logicalID("", id)
		if e != nil {
			err = e
			return "", false
		}
		return c.ref(lid, attr), true
	})
	return out, err
}

// arn is the ARN a request names for r.
func (c *checker) arn(r stacks.Ref) (string, error) {
	if r.ARN != "" {
		return c.value(r.ARN)
	}
	if r.ID == "" {
		return "*", nil
	}
	lid, err := c.logicalID(r.Type, r.ID)
	if err != nil {
		return "", err
	}
	return c.arnOf(lid), nil
}

func (c *checker) arnOf(lid string) string {
	switch c.raw[lid].Type {
	case "AWS::SNS::Topic", "AWS::ECS::TaskDefinition", "AWS::ECS::Service", "AWS::ApplicationAutoScaling::ScalingPolicy":
		return c.ref(lid, "Ref")
	}
	return c.ref(lid, "Arn")
}

// sourceArn is the aws:SourceArn a service presents when it calls on
// behalf of r. The Scheduler presents the schedule's group.
func (c *checker) sourceArn(r stacks.Ref) (string, error) {
	lid, err := c.logicalID(r.Type, r.ID)
	if err != nil {
		return "", err
	}
	if r.Type == "AWS::Scheduler::Schedule" {
		return "arn:" + partition + ":scheduler:" + c.env.Region + ":" + c.env.Account + ":schedule-group/" + c.scheduleGroup(lid), nil
	}
	return c.arnOf(lid), nil
}

// --- properties ------------------------------------------------------------

// leaf is one value found at a property path; ok is false where the path
// ends early.
type leaf struct {
	v  any
	ok bool
}

// at returns the values at path in v ("a.b[].c": every element of b).
func at(v any, path string) []leaf {
	out := []leaf{{v, true}}
	for _, part := range strings.Split(path, ".") {
		name, each := strings.CutSuffix(part, "[]")
		var next []leaf
		for _, l := range out {
			if !l.ok {
				next = append(next, l)
				continue
			}
			m, _ := l.v.(map[string]any)
			child, ok := m[name]
			if !each {
				next = append(next, leaf{child, ok})
				continue
			}
			list, _ := child.([]any)
			if len(list) == 0 {
				next = append(next, leaf{nil, false})
			}
			for _, e := range list {
				next = append(next, leaf{e, true})
			}
		}
		out = next
	}
	return out
}

func scalar(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return asJSON(v)
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func anyList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func strs(v any) []string {
	var out []string
	for _, e := range anyList(v) {
		out = append(out, scalar(e))
	}
	return out
}

// --- IAM evaluation --------------------------------------------------------

// request is one call as IAM sees it.
type request struct {
	principal string // a service principal or a role ARN
	action    string
	resource  string
	context   map[string]string // condition keys, lower-case
}

// wildcard reports whether s matches IAM pattern p (* and ?).
func wildcard(p, s string, fold bool) bool {
	if fold {
		p, s = strings.ToLower(p), strings.ToLower(s)
	}
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(p)) + "$"
	return regexp.MustCompile(re).MatchString(s)
}

type tri int

const (
	no tri = iota
	yes
	unknown
)

// conditionsHold evaluates a Condition block against ctx: yes when every
// condition holds, no when one is known to fail, unknown otherwise (an
// operator the model lacks, or a key the context lacks).
func conditionsHold(cond any, ctx map[string]string) tri {
	blocks, _ := cond.(map[string]any)
	result := yes
	for op, kv := range blocks {
		keys, _ := kv.(map[string]any)
		for key, want := range keys {
			switch r := condition(op, key, strs(want), ctx); {
			case r == no:
				return no
			case r == unknown:
				result = unknown
			}
		}
	}
	return result
}

func condition(op, key string, want []string, ctx map[string]string) tri {
	base, ifExists := strings.CutSuffix(op, "IfExists")
	got, present := ctx[strings.ToLower(key)]
	negated := strings.Contains(base, "Not")
	if base == "Null" {
		return boolTri(len(want) == 1 && (want[0] == "true") == !present)
	}
	if !present {
		if ifExists || negated {
			return yes
		}
		return unknown
	}
	some := func(match func(w string) bool) bool {
		for _, w := range want {
			if match(w) {
				return true
			}
		}
		return false
	}
	num := func(cmp func(g, w float64) bool) bool {
		return some(func(w string) bool {
			g, err1 := strconv.ParseFloat(got, 64)
			f, err2 := strconv.ParseFloat(w, 64)
			return err1 == nil && err2 == nil && cmp(g, f)
		})
	}
	switch base {
	case "StringEquals":
		return boolTri(some(func(w string) bool { return w == got }))
	case "StringNotEquals":
		return boolTri(!some(func(w string) bool { return w == got }))
	case "StringEqualsIgnoreCase":
		return boolTri(some(func(w string) bool { return strings.EqualFold(w, got) }))
	case "StringLike", "ArnEquals", "ArnLike":
		return boolTri(some(func(w string) bool { return wildcard(w, got, false) }))
	case "StringNotLike", "ArnNotEquals", "ArnNotLike":
		return boolTri(!some(func(w string) bool { return wildcard(w, got, false) }))
	case "Bool":
		return boolTri(some(func(w string) bool { return strings.EqualFold(w, got) }))
	case "NumericEquals":
		return boolTri(num(func(g, w float64) bool { return g == w }))
	case "NumericLessThan":
		return boolTri(num(func(g, w float64) bool { return g < w }))
	case "NumericLessThanEquals":
		return boolTri(num(func(g, w float64) bool { return g <= w }))
	case "NumericGreaterThan":
		return boolTri(num(func(g, w float64) bool { return g > w }))
	case "NumericGreaterThanEquals":
		return boolTri(num(func(g, w float64) bool { return g >= w }))
	}
	return unknown
}

func boolTri(b bool) tri {
	if b {
		return yes
	}
	return no
}

// principalNames reports whether a statement's Principal names p exactly
// (anyone counts only when wild: for Denies).
func principalNames(st map[string]any, p string, wild bool) bool {
	if np, ok := st["NotPrincipal"]; ok {
		return !principalNames(map[string]any{"Principal": np}, p, false)
	}
	pr := st["Principal"]
	if pr == "*" {
		return wild
	}
	m, _ := pr.(map[string]any)
	for _, kind := range []string{"AWS", "Service"} {
		for _, v := range strs(m[kind]) {
			if v == "*" && wild || v == p {
				return true
			}
		}
	}
	return false
}

func listMatches(st map[string]any, field, value string, fold bool) bool {
	if _, ok := st[field]; !ok && field == "Resource" && st["NotResource"] == nil {
		return true // a trust policy: the role itself
	}
	if neg, ok := st["Not"+field]; ok {
		for _, p := range strs(neg) {
			if wildcard(p, value, fold) {
				return false
			}
		}
		return true
	}
	for _, p := range strs(st[field]) {
		if wildcard(p, value, fold) {
			return true
		}
	}
	return false
}

// evaluation is IAM's verdict on a request against a set of statements.
type evaluation struct {
	allows []map[string]any // Allow statements that grant the request
	deny   map[string]any   // a Deny that applies, if any
}

func evaluate(statements []map[string]any, req request, resourcePolicy bool) evaluation {
	var ev evaluation
	for _, st := range statements {
		deny := st["Effect"] == "Deny"
		if resourcePolicy && !principalNames(st, req.principal, deny) {
			continue
		}
		if !listMatches(st, "Action", req.action, true) || !listMatches(st, "Resource", req.resource, false) {
			continue
		}
		switch hold := conditionsHold(st["Condition"], req.context); {
		case deny && hold != no && ev.deny == nil:
			ev.deny = st
		case !deny && st["Effect"] == "Allow" && hold == yes:
			ev.allows = append(ev.allows, st)
		}
	}
	return ev
}

// --- policies of the template ----------------------------------------------

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

// resourcePolicies returns the statements of every resource policy of
// resource lid, matched by resolved value: queue, topic and bucket
// policies, the key policy, and Lambda permissions (as statements).
func (c *checker) resourcePolicies(lid string) []map[string]any {
	var out []map[string]any
	ref, arn := c.ref(lid, "Ref"), c.arnOf(lid)
	names := func(v any) bool {
		for _, s := range strs(v) {
			if s == ref || s == arn {
				return true
			}
		}
		return false
	}
	for _, r := range c.res {
		p := r.Properties
		switch r.Type {
		case "AWS::SQS::QueuePolicy":
			if names(p["Queues"]) {
				out = append(out, statementsOf(p["PolicyDocument"])...)
			}
		case "AWS::SNS::TopicPolicy":
			if names(p["Topics"]) {
				out = append(out, statementsOf(p["PolicyDocument"])...)
			}
		case "AWS::S3::BucketPolicy":
			if names(p["Bucket"]) {
				out = append(out, statementsOf(p["PolicyDocument"])...)
			}
		case "AWS::Lambda::Permission":
			if names(p["FunctionName"]) {
				st := map[string]any{"Effect": "Allow", "Action": p["Action"], "Resource": arn,
					"Principal": map[string]any{"Service": p["Principal"]}}
				cond := map[string]any{}
				if src, ok := p["SourceArn"]; ok {
					cond["ArnLike"] = map[string]any{"aws:SourceArn": src}
				}
				if acct, ok := p["SourceAccount"]; ok {
					cond["StringEquals"] = map[string]any{"aws:SourceAccount": acct}
				}
				if len(cond) > 0 {
					st["Condition"] = cond
				}
				out = append(out, st)
			}
		}
	}
	if r := c.res[lid]; r.Type == "AWS::KMS::Key" {
		out = append(out, statementsOf(r.Properties["KeyPolicy"])...)
	}
	return out
}

// identityStatements returns the statements of every identity policy of
// the role named name (inline, AWS::IAM::Policy, customer managed).
func (c *checker) identityStatements(role string) []map[string]any {
	name := c.ref(role, "Ref")
	var out []map[string]any
	for _, r := range c.res {
		if (r.Type == "AWS::IAM::Policy" || r.Type == "AWS::IAM::ManagedPolicy") && contains(strs(r.Properties["Roles"]), name) {
			out = append(out, statementsOf(r.Properties["PolicyDocument"])...)
		}
	}
	for _, p := range anyList(c.res[role].Properties["Policies"]) {
		m, _ := p.(map[string]any)
		out = append(out, statementsOf(m["PolicyDocument"])...)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// roleOf finds the role whose ARN the property holder.Property holds.
func (c *checker) roleOf(holder stacks.Ref) (string, error) {
	lid, err := c.logicalID(holder.Type, holder.ID)
	if err != nil {
		return "", err
	}
	arns := map[string]string{}
	for rid, r := range c.raw {
		if r.Type == "AWS::IAM::Role" {
			arns[c.ref(rid, "Arn")] = rid
		}
	}
	found := map[string]bool{}
	for _, l := range at(c.res[lid].Properties, holder.Property) {
		if rid, ok := arns[scalar(l.v)]; l.ok && ok {
			found[rid] = true
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("%s.%s names %d roles of the stack, want 1", lid, holder.Property, len(found))
	}
	for rid := range found {
		return rid, nil
	}
	return "", nil
}

// --- edges -----------------------------------------------------------------

// context is what a caller's request carries for action: the global keys,
// the source (for a service's own calls), and the action's own keys with
// the values this stack's launchers send.
func (c *checker) context(action, source string, service bool) (map[string]string, error) {
	ctx := map[string]string{"aws:securetransport": "true"}
	if service {
		ctx["aws:sourceaccount"] = c.env.Account
		if source != "" {
			ctx["aws:sourcearn"] = source
		}
	}
	switch strings.ToLower(action) {
	case "ecs:runtask", "ecs:listtasks":
		cluster, err := c.arn(stacks.Ref{Type: "AWS::ECS::Cluster", ID: "PipelineCluster"})
		if err != nil {
			return nil, err
		}
		ctx["ecs:cluster"] = cluster
	case "ecs:tagresource":
		ctx["ecs:createaction"] = "RunTask"
	case "iam:passrole":
		ctx["iam:passedtoservice"] = "ecs-tasks.amazonaws.com"
	}
	if strings.HasPrefix(strings.ToLower(action), "s3:") {
		ctx["s3:tlsversion"] = "1.3"
	}
	return ctx, nil
}

// carries reports whether st has a condition on every key.
func carries(st map[string]any, keys []string) error {
	blocks, _ := st["Condition"].(map[string]any)
	for _, key := range keys {
		found := false
		for _, kv := range blocks {
			m, _ := kv.(map[string]any)
			for k := range m {
				found = found || strings.EqualFold(k, key)
			}
		}
		if !found {
			return fmt.Errorf("the allowing statement has no condition on %s: %s", key, asJSON(st))
		}
	}
	return nil
}

// allowed checks that statements allow req (and no Deny blocks it), and
// that every allowing statement carries the required condition keys.
func allowed(statements []map[string]any, req request, resourcePolicy bool, keys []string, where string) error {
	ev := evaluate(statements, req, resourcePolicy)
	if ev.deny != nil {
		return fmt.Errorf("a Deny in %s blocks %s: %s", where, req.action, asJSON(ev.deny))
	}
	if len(ev.allows) == 0 {
		return fmt.Errorf("no statement in %s allows %s to %s on %s with %v", where, req.principal, req.action, req.resource, req.context)
	}
	for _, st := range ev.allows {
		if err := carries(st, keys); err != nil {
			return err
		}
	}
	return nil
}

// notDenied checks that no Deny among statements applies to req.
func notDenied(statements []map[string]any, req request, resourcePolicy bool, where string) error {
	if ev := evaluate(statements, req, resourcePolicy); ev.deny != nil {
		return fmt.Errorf("a Deny in %s blocks %s: %s", where, req.action, asJSON(ev.deny))
	}
	return nil
}

// check returns why the template does not allow (or wire) e, or nil; for a
// forbidden edge, why it allows it.
func (c *checker) check(e stacks.Edge) error {
	if e.Forbidden {
		return c.forbids(e)
	}
	switch e.Allow {
	case stacks.BySetting, stacks.ByServiceLinkedRole:
		if len(e.Wires) == 0 {
			return fmt.Errorf("a %s edge without wires", e.Allow)
		}
		for _, w := range e.Wires {
			if err := c.wired(w); err != nil {
				return err
			}
		}
		return nil
	case stacks.ByResourcePolicy, stacks.ByRole:
		return c.allows(e)
	}
	return fmt.Errorf("unknown allow kind %v", e.Allow)
}

func (c *checker) allows(e stacks.Edge) error {
	if len(e.Actions) == 0 {
		return fmt.Errorf("an edge without actions")
	}
	target, err := c.arn(e.Target)
	if err != nil {
		return err
	}
	if e.AnyResource {
		target = "*"
	}
	targetLid := ""
	if e.Target.ID != "" {
		if targetLid, err = c.logicalID(e.Target.Type, e.Target.ID); err != nil {
			return err
		}
	}
	source := ""
	if e.Source != nil {
		if source, err = c.sourceArn(*e.Source); err != nil {
			return err
		}
	}
	role := ""
	if e.Role != nil {
		if role, err = c.roleOf(*e.Role); err != nil {
			return err
		}
		trustCtx, _ := c.context("sts:AssumeRole", source, true)
		trust := request{principal: e.Caller, action: "sts:AssumeRole", resource: c.ref(role, "Arn"), context: trustCtx}
		if err := allowed(statementsOf(c.res[role].Properties["AssumeRolePolicyDocument"]), trust, true, nil, "the trust policy of "+role); err != nil {
			return err
		}
	}
	var policy []map[string]any
	if targetLid != "" {
		policy = c.resourcePolicies(targetLid)
	}
	for _, action := range e.Actions {
		if e.Allow == stacks.ByResourcePolicy {
			principal := e.Caller
			if role != "" {
				principal = c.ref(role, "Arn")
			}
			ctx, err := c.context(action, source, role == "")
			if err != nil {
				return err
			}
			req := request{principal: principal, action: action, resource: target, context: ctx}
			if err := allowed(policy, req, true, e.Conditions, "the resource policy of "+targetLid); err != nil {
				return err
			}
			if role != "" {
				// The bucket policy is the role's only grant: it holds
				// nothing of its own for this action, on any resource.
				if err := c.grantsNothing(role, action); err != nil {
					return err
				}
			}
			continue
		}
		ctx, err := c.context(action, "", false)
		if err != nil {
			return err
		}
		req := request{principal: c.ref(role, "Arn"), action: action, resource: target, context: ctx}
		if err := allowed(c.identityStatements(role), req, false, e.Conditions, "the policies of role "+role); err != nil {
			return err
		}
		if err := notDenied(policy, req, true, "the resource policy of "+targetLid); err != nil {
			return err
		}
	}
	return nil
}

// forbids checks that no statement of the edge's role may allow any of its
// actions on its target: an Allow whose conditions are not known to fail
// counts, unless a Deny applies.
func (c *checker) forbids(e stacks.Edge) error {
	if e.Allow != stacks.ByRole || e.Role == nil || len(e.Actions) == 0 {
		return fmt.Errorf("a forbidden edge names a role and actions")
	}
	role, err := c.roleOf(*e.Role)
	if err != nil {
		return err
	}
	if arns := strs(c.res[role].Properties["ManagedPolicyArns"]); len(arns) > 0 {
		return fmt.Errorf("role %s has managed policies %v, which the check cannot read", role, arns)
	}
	target, err := c.arn(e.Target)
	if err != nil {
		return err
	}
	statements := c.identityStatements(role)
	for _, action := range e.Actions {
		ctx, err := c.context(action, "", false)
		if err != nil {
			return err
		}
		req := request{principal: c.ref(role, "Arn"), action: action, resource: target, context: ctx}
		if evaluate(statements, req, false).deny != nil {
			continue
		}
		for _, st := range statements {
			if st["Effect"] == "Allow" && listMatches(st, "Action", action, true) && listMatches(st, "Resource", target, false) &&
				conditionsHold(st["Condition"], ctx) != no {
				return fmt.Errorf("role %s may %s on %s, which must not be allowed: %s", role, action, target, asJSON(st))
			}
		}
	}
	return nil
}

// grantsNothing checks that role's own policies allow action on no
// resource, and that it has no managed policy beyond Lambda's logging one.
func (c *checker) grantsNothing(role, action string) error {
	for _, arn := range strs(c.res[role].Properties["ManagedPolicyArns"]) {
		if arn != "arn:"+partition+":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole" {
			return fmt.Errorf("role %s has managed policy %s, which the check cannot read", role, arn)
		}
	}
	for _, st := range c.identityStatements(role) {
		if st["Effect"] == "Allow" && listMatches(st, "Action", action, true) {
			return fmt.Errorf("role %s grants itself %s: %s", role, action, asJSON(st))
		}
	}
	return nil
}

// wired checks one Wire.
func (c *checker) wired(w stacks.Wire) error {
	var lids []string
	if w.In.ID != "" {
		lid, err := c.logicalID(w.In.Type, w.In.ID)
		if err != nil {
			return err
		}
		lids = []string{lid}
	} else {
		for lid, r := range c.raw {
			if r.Type == w.In.Type {
				lids = append(lids, lid)
			}
		}
		sort.Strings(lids)
		if len(lids) == 0 && !w.Absent {
			return fmt.Errorf("no %s in the template", w.In.Type)
		}
	}
	want, err := c.value(w.Value)
	if err != nil {
		return err
	}
	for _, lid := range lids {
		found := at(c.res[lid].Properties, w.Path)
		matched := 0
		for _, l := range found {
			switch {
			case w.Absent && l.ok:
				return fmt.Errorf("%s.%s is set (%s), want it unset", lid, w.Path, asJSON(l.v))
			case l.ok && scalar(l.v) == want:
				matched++
			case w.Every && !w.Absent:
				return fmt.Errorf("%s.%s = %s, want every one %s", lid, w.Path, asJSON(l.v), want)
			}
		}
		if !w.Absent && matched == 0 {
			var got []any
			for _, l := range found {
				if l.ok {
					got = append(got, l.v)
				}
			}
			return fmt.Errorf("%s.%s = %s does not name %s", lid, w.Path, asJSON(got), want)
		}
	}
	return nil
}

// checkEdges checks every edge of a stack kind built with some settings.
func checkEdges(c *checker, edges []stacks.Edge) []error {
	var errs []error
	for _, e := range edges {
		if err := c.check(e); err != nil {
			errs = append(errs, fmt.Errorf("%s → %s (%s): %w", e.From, e.To, e.Allow, err))
		}
	}
	return errs
}
