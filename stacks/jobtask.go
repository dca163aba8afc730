package stacks

import (
	"encoding/json"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"

	"github.com/edp-pipelines/edp/internal/names"
	"github.com/edp-pipelines/edp/internal/settings"
)

// WorkVolume is the task definition's scratch volume of a command job,
// mounted read-write at names.WorkDirInImage: the runs' work directories,
// on the task's ephemeral storage (the root file system stays read-only).
const WorkVolume = "work"

// JobEnvironment is what a command job adds to the consumer's environment
// (docs/jobs.md): the job kind, its commands and limits, and where runs
// work. The Iris job adds nothing.
func JobEnvironment(s settings.Settings) map[string]string {
	if s.Job != names.JobCommand {
		return nil
	}
	env := map[string]string{
		names.EnvJob:               names.JobCommand,
		names.EnvJobCommand:        argv(s.JobCommand),
		names.EnvJobMaxConfigBytes: strconv.Itoa(s.JobMaxConfigBytes),
		names.EnvJobMaxOutputFiles: strconv.Itoa(s.JobMaxOutputFiles),
		names.EnvJobMaxOutputBytes: strconv.Itoa(s.JobMaxOutputBytes),
		names.EnvJobKillGrace:      strconv.Itoa(s.JobKillGraceSeconds) + "s",
		names.EnvJobTimeout:        strconv.Itoa(s.JobTimeoutMinutes) + "m",
		names.EnvConcurrency:       strconv.Itoa(s.JobConcurrency),
		names.EnvWorkDir:           names.WorkDirInImage,
	}
	if s.JobValidateCommand != nil {
		env[names.EnvJobValidateCommand] = argv(s.JobValidateCommand)
	}
	return env
}

func argv(a []string) string {
	raw, err := json.Marshal(a)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return string(raw)
}

// addWorkVolume gives the consumer container its scratch volume at
// names.WorkDirInImage. A bind-mount volume without a host path lives on
// the task's ephemeral storage; ECS fills it with what the image holds at
// that path (the empty, world-writable directory the image's VOLUME
// declares), so a job image's non-root user may write there.
func (p *Pipeline) addWorkVolume() {
	p.TaskDefinition.AddVolume(&awsecs.Volume{Name: jsii.String(WorkVolume)})
	p.Container.AddMountPoints(&awsecs.MountPoint{
		ContainerPath: jsii.String(names.WorkDirInImage),
		SourceVolume:  jsii.String(WorkVolume),
		ReadOnly:      jsii.Bool(false),
	})
}

// grantJobReads lets a command job read what s allows it (the job runs
// with the task's credentials): the objects under each of
// edp:jobReadPrefixes of the stack's bucket, and the objects of each of
// edp:jobReadBuckets, which it may also list. Listing the stack's bucket
// is granted already (grantConsumer), on the whole bucket. The stack's
// bucket is encrypted with S3-managed keys: no KMS grant is needed; an
// extra bucket encrypted with a KMS key must admit the role in its key
// policy (the role cannot know the key).
func (p *Pipeline) grantJobReads(role awsiam.IRole, s settings.Settings) {
	if len(s.JobReadPrefixes) > 0 {
		var objects []*string
		for _, prefix := range s.JobReadPrefixes {
			objects = append(objects, p.Bucket.ArnForObjects(jsii.String(prefix+"*")))
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("JobReadsOwnBucketPrefixes"),
			Actions:   jsii.Strings("s3:GetObject"),
			Resources: &objects,
		}))
	}
	if len(s.JobReadBuckets) == 0 {
		return
	}
	var buckets, objects []*string
	for _, b := range s.JobReadBuckets {
		buckets = append(buckets, bucketArn(p.stack(), b))
		objects = append(objects, jsii.String(*bucketArn(p.stack(), b)+"/*"))
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("JobReadsOtherBuckets"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &objects,
	}))
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("JobListsOtherBuckets"),
		Actions:   jsii.Strings("s3:ListBucket"),
		Resources: &buckets,
	}))
}

// bucketArn is the ARN of the bucket named name, in the stack's partition.
func bucketArn(stack awscdk.Stack, name string) *string {
	return stack.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("s3"), Region: jsii.String(""), Account: jsii.String(""), Resource: jsii.String(name),
	})
}
