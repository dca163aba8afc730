package stacks

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/settings"
)

// Network is where consumer tasks run.
type Network struct {
	Vpc            awsec2.IVpc
	Subnets        *awsec2.SubnetSelection
	AssignPublicIP bool
	// SecurityGroup of the tasks: no ingress at all, egress for AWS APIs.
	SecurityGroup awsec2.SecurityGroup
}

// newNetwork builds (or imports) the VPC for the chosen settings.Network mode:
//   - public (default): two AZs of public subnets, no NAT gateway; tasks get
//     a public IP and reach AWS APIs directly, S3 through a gateway endpoint.
//   - private: isolated subnets with interface endpoints for ECR, CloudWatch
//     Logs and SQS, and the S3 gateway endpoint. No internet path at all.
//   - import: an existing VPC looked up by id; tasks use its private subnets
//     with egress (NAT or endpoints are the owner's business).
//   - default: the account's default VPC, looked up at synth; tasks use its
//     public subnets with a public IP (no NAT needed).
func newNetwork(scope constructs.Construct, s settings.Settings, removal awscdk.RemovalPolicy) *Network {
	n := &Network{}
	switch s.Network {
	case settings.NetworkDefault:
		// The default VPC has public subnets only; sharing it between stacks
		// keeps the account under its VPC quota.
		n.Vpc = awsec2.Vpc_FromLookup(scope, jsii.String("Vpc"), &awsec2.VpcLookupOptions{IsDefault: jsii.Bool(true)})
		n.Subnets = &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}
		n.AssignPublicIP = true
	case settings.NetworkImport:
		n.Vpc = awsec2.Vpc_FromLookup(scope, jsii.String("Vpc"), &awsec2.VpcLookupOptions{VpcId: jsii.String(s.VpcID)})
		n.Subnets = &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS}
	default:
		private := s.Network == settings.NetworkPrivate
		subnetType, name := awsec2.SubnetType_PUBLIC, "public"
		if private {
			subnetType, name = awsec2.SubnetType_PRIVATE_ISOLATED, "isolated"
		}
		flowLogs := awslogs.NewLogGroup(scope, jsii.String("FlowLogs"), &awslogs.LogGroupProps{
			Retention:     retentionDays(s.LogRetentionDays),
			RemovalPolicy: removal,
		})
		vpc := awsec2.NewVpc(scope, jsii.String("Vpc"), &awsec2.VpcProps{
			MaxAzs:      jsii.Number(2),
			NatGateways: jsii.Number(0),
			SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
				{Name: jsii.String(name), SubnetType: subnetType, CidrMask: jsii.Number(24)},
			},
			GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
				"S3": {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
			},
			FlowLogs: &map[string]*awsec2.FlowLogOptions{
				"Rejected": {
					Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
					TrafficType: awsec2.FlowLogTrafficType_REJECT,
				},
			},
		})
		if private {
			// Fargate (platform 1.4+) pulls images through ECR (api + dkr, layers
			// from S3) and ships logs to CloudWatch; the consumer talks to SQS and S3.
			endpoints := []struct {
				id  string
				svc awsec2.InterfaceVpcEndpointAwsService
			}{
				{"EcrApi", awsec2.InterfaceVpcEndpointAwsService_ECR()},
				{"EcrDocker", awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER()},
				{"Logs", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS()},
				{"Sqs", awsec2.InterfaceVpcEndpointAwsService_SQS()},
			}
			for _, e := range endpoints {
				vpc.AddInterfaceEndpoint(jsii.String(e.id), &awsec2.InterfaceVpcEndpointOptions{
					Service: e.svc,
					Subnets: &awsec2.SubnetSelection{SubnetType: subnetType},
				})
			}
		}
		n.Vpc = vpc
		n.Subnets = &awsec2.SubnetSelection{SubnetType: subnetType}
		n.AssignPublicIP = !private
	}
	n.SecurityGroup = awsec2.NewSecurityGroup(scope, jsii.String("TaskSecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              n.Vpc,
		Description:      jsii.String("edp consumer tasks: no ingress; egress to AWS APIs only"),
		AllowAllOutbound: jsii.Bool(true),
	})
	return n
}

// SubnetIDs returns the selected subnet ids as a comma-separated token.
func (n *Network) SubnetIDs() *string {
	return awscdk.Fn_Join(jsii.String(","), n.Vpc.SelectSubnets(n.Subnets).SubnetIds)
}

// TaskPlacement is where and how a consumer task starts: one value for every
// launcher (the one-off rule target, the cron schedule, the service), so they
// cannot drift apart.
type TaskPlacement struct {
	// Subnets the tasks run in: Network.Subnets.
	Subnets *awsec2.SubnetSelection
	// SecurityGroups of the tasks: Network.SecurityGroup alone.
	SecurityGroups *[]awsec2.ISecurityGroup
	// AssignPublicIP is Network.AssignPublicIP.
	AssignPublicIP *bool
	// PlatformVersion is always LATEST, which Fargate resolves at launch.
	PlatformVersion awsecs.FargatePlatformVersion
}

// Placement is the TaskPlacement of tasks in this network.
func (n *Network) Placement() TaskPlacement {
	return TaskPlacement{
		Subnets:         n.Subnets,
		SecurityGroups:  &[]awsec2.ISecurityGroup{n.SecurityGroup},
		AssignPublicIP:  jsii.Bool(n.AssignPublicIP),
		PlatformVersion: awsecs.FargatePlatformVersion_LATEST,
	}
}
