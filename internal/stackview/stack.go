package stackview

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
)

// Stack is a deployed stack as edp reads it: outputs, physical ids and
// types by logical id, and the template as deployed.
type Stack struct {
	Name string
	// Outputs by key, queue URLs rewritten to the local endpoint.
	Outputs map[string]string
	// Physical ids by logical id.
	Physical map[string]string
	// Types of the resources by logical id.
	Types map[string]string
	// Template is the template as deployed (after PrepareTemplate).
	Template map[string]any
}

// Resources returns the logical ids of the resources of one type, sorted.
func (s *Stack) Resources(typ string) []string {
	var ids []string
	for id, t := range s.Types {
		if t == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// Properties returns a resource's properties as deployed.
func (s *Stack) Properties(logicalID string) map[string]any {
	res, _ := s.Template["Resources"].(map[string]any)
	r, _ := res[logicalID].(map[string]any)
	p, _ := r["Properties"].(map[string]any)
	return p
}

// StackReader is the part of the CloudFormation API that DescribeStack
// reads a deployed stack with.
type StackReader interface {
	DescribeStacks(context.Context, *cloudformation.DescribeStacksInput, ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
	ListStackResources(context.Context, *cloudformation.ListStackResourcesInput, ...func(*cloudformation.Options)) (*cloudformation.ListStackResourcesOutput, error)
	GetTemplate(context.Context, *cloudformation.GetTemplateInput, ...func(*cloudformation.Options)) (*cloudformation.GetTemplateOutput, error)
}

// DescribeStack reads a stack deployed earlier — on AWS, or in a local
// cloud by Up — as a Stack: its outputs, the physical id of each resource
// and its template as deployed (the resource types come from the template,
// as in Deploy). When endpoint is set (the local cloud), URL outputs are
// rewritten to it. A stack whose creation failed, or that is being created
// or deleted, is an error naming its status.
func DescribeStack(ctx context.Context, api StackReader, name, endpoint string) (*Stack, error) {
	d, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("describe stack %s: %w", name, err)
	}
	if len(d.Stacks) != 1 {
		return nil, fmt.Errorf("describe stack %s: %d stacks answered, want 1", name, len(d.Stacks))
	}
	s := d.Stacks[0]
	if !usableStatus(s.StackStatus) {
		return nil, fmt.Errorf("stack %s is %s: %s", name, s.StackStatus, aws.ToString(s.StackStatusReason))
	}
	out := &Stack{Name: name, Outputs: map[string]string{}, Physical: map[string]string{}, Types: map[string]string{}}
	for _, o := range s.Outputs {
		v := aws.ToString(o.OutputValue)
		if k := aws.ToString(o.OutputKey); endpoint != "" && strings.HasSuffix(k, "Url") {
			v = RewriteURL(v, endpoint)
		}
		out.Outputs[aws.ToString(o.OutputKey)] = v
	}
	p := cloudformation.NewListStackResourcesPaginator(api, &cloudformation.ListStackResourcesInput{StackName: aws.String(name)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list resources of %s: %w", name, err)
		}
		for _, r := range page.StackResourceSummaries {
			if id := aws.ToString(r.PhysicalResourceId); id != "" {
				out.Physical[aws.ToString(r.LogicalResourceId)] = id
			}
		}
	}
	t, err := api.GetTemplate(ctx, &cloudformation.GetTemplateInput{StackName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("get template of %s: %w", name, err)
	}
	if err := json.Unmarshal([]byte(aws.ToString(t.TemplateBody)), &out.Template); err != nil {
		return nil, fmt.Errorf("template of %s is not the JSON that CDK deploys: %w", name, err)
	}
	res, _ := out.Template["Resources"].(map[string]any)
	for id, r := range res {
		m, _ := r.(map[string]any)
		if t, ok := m["Type"].(string); ok {
			out.Types[id] = t
		}
	}
	return out, nil
}

// usableStatus reports whether a stack in this status has its resources:
// created or updated (also after a rolled-back update), or being updated.
func usableStatus(s cfntypes.StackStatus) bool {
	switch s {
	case cfntypes.StackStatusCreateInProgress, cfntypes.StackStatusCreateFailed,
		cfntypes.StackStatusRollbackInProgress, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusRollbackComplete,
		cfntypes.StackStatusDeleteInProgress, cfntypes.StackStatusDeleteFailed, cfntypes.StackStatusDeleteComplete,
		cfntypes.StackStatusReviewInProgress:
		return false
	}
	return true
}

// RewriteURL points an AWS URL (a queue URL with an AWS host name) at the
// given endpoint (the local cloud's), keeping its path.
func RewriteURL(raw, endpoint string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || endpoint == "" {
		return raw
	}
	e, err := url.Parse(endpoint)
	if err != nil {
		return raw
	}
	u.Scheme, u.Host = e.Scheme, e.Host
	return u.String()
}
