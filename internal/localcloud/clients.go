package localcloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Clients are AWS SDK clients pointed at the emulator.
type Clients struct {
	Config    aws.Config
	CFN       *cloudformation.Client
	S3        *s3.Client
	SSM       *ssm.Client
	SQS       *sqs.Client
	Events    *eventbridge.Client
	ECS       *ecs.Client // moto's ECS: task definitions and services as deployed
	Lambda    *lambda.Client
	Scheduler *scheduler.Client
}

// Credentials are the static credentials every local process uses.
const (
	AccessKeyID     = "local"
	SecretAccessKey = "local"
)

// NewClients builds clients for the emulator at endpoint.
func NewClients(ctx context.Context, endpoint string) (*Clients, error) {
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, "")),
		config.WithBaseEndpoint(endpoint),
	)
	if err != nil {
		return nil, fmt.Errorf("aws config for %s: %w", endpoint, err)
	}
	return &Clients{
		Config: cfg,
		CFN:    cloudformation.NewFromConfig(cfg),
		S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
			o.UsePathStyle = true
			o.DisableLogOutputChecksumValidationSkipped = true
		}),
		SSM:       ssm.NewFromConfig(cfg),
		SQS:       sqs.NewFromConfig(cfg),
		Events:    eventbridge.NewFromConfig(cfg),
		ECS:       ecs.NewFromConfig(cfg),
		Lambda:    lambda.NewFromConfig(cfg),
		Scheduler: scheduler.NewFromConfig(cfg),
	}, nil
}
