package localcloud

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/edp-pipelines/edp/internal/names"
)

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

// FireSchedulesAt runs the ECS target of every deployed schedule of st now,
// on the local ECS API at ecsEndpoint: what Cloud.FireSchedules does, for a
// local cloud running in another process (`edp local up`). It returns the
// started tasks' ARNs.
func FireSchedulesAt(ctx context.Context, ecsEndpoint string, st *Stack) ([]string, error) {
	// loadSchedules and resolve read only the stack, so a Cloud holding just
	// the stack reads the schedules exactly as the running cloud did.
	shell := &Cloud{stack: st}
	scheds, err := shell.loadSchedules(ctx)
	if err != nil {
		return nil, err
	}
	if len(scheds) == 0 {
		return nil, fmt.Errorf("stack %s has no enabled schedule with an ECS target", st.Name)
	}
	client := ecs.New(ecs.Options{
		Region:       Region,
		BaseEndpoint: aws.String(ecsEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
	var arns []string
	for _, s := range scheds {
		in, err := shell.scheduleRunTask(s)
		if err != nil {
			return arns, err
		}
		out, err := client.RunTask(ctx, in)
		if err != nil {
			return arns, fmt.Errorf("run the target of schedule %s at %s: %w", s.name, ecsEndpoint, err)
		}
		for _, f := range out.Failures {
			return arns, fmt.Errorf("run the target of schedule %s: %s: %s", s.name, aws.ToString(f.Arn), aws.ToString(f.Reason))
		}
		for _, t := range out.Tasks {
			arns = append(arns, aws.ToString(t.TaskArn))
		}
	}
	return arns, nil
}

// scheduleRunTask is the RunTask call Scheduler makes for a deployed
// schedule: its cluster, task definition, count, network configuration and
// container overrides, resolved to the deployed resources. Security groups
// the local cloud cannot resolve are left out (the local ECS ignores them).
func (c *Cloud) scheduleRunTask(s deployedSchedule) (*ecs.RunTaskInput, error) {
	target, _ := c.stack.Properties(s.name)["Target"].(map[string]any)
	cluster, err := c.resolve(target["Arn"])
	if err != nil {
		return nil, fmt.Errorf("schedule %s: cluster: %w", s.name, err)
	}
	ecsp, _ := target["EcsParameters"].(map[string]any)
	nc, _ := ecsp["NetworkConfiguration"].(map[string]any)
	vpc, _ := nc["AwsvpcConfiguration"].(map[string]any)
	net := &ecstypes.AwsVpcConfiguration{}
	if a, ok := vpc["AssignPublicIp"].(string); ok {
		net.AssignPublicIp = ecstypes.AssignPublicIp(a)
	}
	subnets, _ := vpc["Subnets"].([]any)
	for _, v := range subnets {
		id, err := c.resolve(v)
		if err != nil {
			return nil, fmt.Errorf("schedule %s: subnet: %w", s.name, err)
		}
		net.Subnets = append(net.Subnets, id)
	}
	groups, _ := vpc["SecurityGroups"].([]any)
	for _, v := range groups {
		if id, err := c.resolve(v); err == nil {
			net.SecurityGroups = append(net.SecurityGroups, id)
		}
	}
	in := &ecs.RunTaskInput{
		Cluster:              aws.String(cluster),
		TaskDefinition:       aws.String(s.run.TaskDefinition),
		Count:                aws.Int32(int32(s.run.Count)),
		StartedBy:            aws.String(s.run.StartedBy),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: net},
	}
	if lt, ok := ecsp["LaunchType"].(string); ok {
		in.LaunchType = ecstypes.LaunchType(lt)
	}
	if len(s.run.Env) > 0 {
		o := ecstypes.ContainerOverride{Name: aws.String(names.ContainerName)}
		for k, v := range s.run.Env {
			o.Environment = append(o.Environment, ecstypes.KeyValuePair{Name: aws.String(k), Value: aws.String(v)})
		}
		in.Overrides = &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{o}}
	}
	return in, nil
}
