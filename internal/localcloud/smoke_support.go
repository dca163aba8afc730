package localcloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/edp-pipelines/edp/internal/names"
)

// LocalECS is a client of the local ECS API at ecsEndpoint (the one the
// local cloud's tasks run on, not moto's).
func LocalECS(ecsEndpoint string) *ecs.Client {
	return ecs.New(ecs.Options{
		Region:       Region,
		BaseEndpoint: aws.String(ecsEndpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	})
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
	client := LocalECS(ecsEndpoint)
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
