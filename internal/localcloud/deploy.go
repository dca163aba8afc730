// Package localcloud runs edp's real synthesized stacks on one machine: it
// deploys a stack's CloudFormation template into a local moto_server (S3,
// EventBridge routing, SQS, IAM objects, CloudFormation itself are moto's)
// and runs, as local processes, the parts moto stores but never executes —
// ECS tasks, the ECS targets of EventBridge rules and Scheduler schedules,
// CloudWatch alarms and scaling, and SNS → Lambda. Every behaviour is read
// from the deployed resources, never from a second copy of the settings.
//
// The template is deployed as synthesized, with exactly three documented
// transforms (see PrepareTemplate and Deploy): the CDK bootstrap version
// parameter is provided, file assets are published to the CDK assets
// bucket, and Tags are dropped from AWS::KMS::Key (moto's KMS CloudFormation
// handler fails on them). Three gaps of moto are closed after the deploy:
// the bucket's EventBridge notifications and its versioning are applied
// through the S3 API, and queue URLs in outputs are rewritten to the
// emulator's endpoint.
package localcloud

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/edp-pipelines/edp/internal/stackview"
)

// Account and Region are moto's defaults; the local cloud uses them.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// bootstrapQualifier is CDK's default bootstrap qualifier.
const bootstrapQualifier = "hnb659fds"

// BootstrapVersionParameter is the SSM parameter `cdk bootstrap` writes and
// every CDK template reads (its Rules require version 6 or later).
const BootstrapVersionParameter = "/cdk-bootstrap/" + bootstrapQualifier + "/version"

// AssetsBucket is where `cdk deploy` publishes file assets.
func AssetsBucket() string {
	return "cdk-" + bootstrapQualifier + "-assets-" + Account + "-" + Region
}

// Stack is a deployed stack as the local runtime needs it: the read model
// of internal/stackview, which also reads stacks deployed on AWS.
type Stack = stackview.Stack

// PrepareTemplate applies the one change moto needs to a synthesized
// template: no Tags on AWS::KMS::Key. It returns the template and what it
// changed.
func PrepareTemplate(raw []byte) (map[string]any, []string, error) {
	var tpl map[string]any
	if err := json.Unmarshal(raw, &tpl); err != nil {
		return nil, nil, fmt.Errorf("parse template: %w", err)
	}
	var changed []string
	res, _ := tpl["Resources"].(map[string]any)
	ids := make([]string, 0, len(res))
	for id := range res {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r, _ := res[id].(map[string]any)
		if r["Type"] != "AWS::KMS::Key" {
			continue
		}
		if p, ok := r["Properties"].(map[string]any); ok {
			if _, has := p["Tags"]; has {
				delete(p, "Tags")
				changed = append(changed, "dropped Tags of AWS::KMS::Key "+id)
			}
		}
	}
	return tpl, changed, nil
}

// fileAsset is one entry of a stack's <Stack>.assets.json.
type fileAsset struct {
	Path, Packaging, Bucket, Key string
}

func readFileAssets(assemblyDir, stack string) ([]fileAsset, error) {
	raw, err := os.ReadFile(filepath.Join(assemblyDir, stack+".assets.json"))
	if err != nil {
		return nil, fmt.Errorf("read asset manifest: %w", err)
	}
	var m struct {
		Files map[string]struct {
			Source struct {
				Path      string `json:"path"`
				Packaging string `json:"packaging"`
			} `json:"source"`
			Destinations map[string]struct {
				BucketName string `json:"bucketName"`
				ObjectKey  string `json:"objectKey"`
			} `json:"destinations"`
		} `json:"files"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parse asset manifest: %w", err)
	}
	subst := strings.NewReplacer("${AWS::AccountId}", Account, "${AWS::Region}", Region, "${AWS::Partition}", "aws")
	var out []fileAsset
	for _, f := range m.Files {
		for _, d := range f.Destinations {
			out = append(out, fileAsset{
				Path: filepath.Join(assemblyDir, f.Source.Path), Packaging: f.Source.Packaging,
				Bucket: subst.Replace(d.BucketName), Key: subst.Replace(d.ObjectKey),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// zipDir packs a directory the way `cdk deploy` publishes a zip asset.
func zipDir(dir string) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name, h.Method = filepath.ToSlash(rel), zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("zip %s: %w", dir, err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Bootstrap does what `cdk bootstrap` leaves behind and the templates rely
// on: the version parameter and the assets bucket.
func Bootstrap(ctx context.Context, c *Clients) error {
	if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(BootstrapVersionParameter), Value: aws.String("30"),
		Type: ssmtypes.ParameterTypeString, Overwrite: aws.Bool(true),
	}); err != nil {
		return fmt.Errorf("put %s: %w", BootstrapVersionParameter, err)
	}
	if _, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(AssetsBucket())}); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("create assets bucket: %w", err)
		}
	}
	return nil
}

// publishAssets uploads the stack's file assets (zip directories, plain
// files) to the assets bucket, as `cdk deploy` does.
func publishAssets(ctx context.Context, c *Clients, assemblyDir, stack string) (int, error) {
	assets, err := readFileAssets(assemblyDir, stack)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, a := range assets {
		var body []byte
		switch a.Packaging {
		case "zip":
			body, err = zipDir(a.Path)
		default:
			body, err = os.ReadFile(a.Path)
		}
		if err != nil {
			return n, fmt.Errorf("asset %s: %w", a.Path, err)
		}
		if _, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(a.Bucket), Key: aws.String(a.Key), Body: bytes.NewReader(body)}); err != nil {
			return n, fmt.Errorf("publish asset s3://%s/%s: %w", a.Bucket, a.Key, err)
		}
		n++
	}
	return n, nil
}

// DeployOptions tune Deploy.
type DeployOptions struct {
	// Endpoint is the emulator's base URL (queue URLs are rewritten to it).
	Endpoint string
	// Timeout bounds the wait for CREATE_COMPLETE; default 2 minutes.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Deploy creates stack from the cloud assembly in assemblyDir through the
// emulator's CloudFormation and returns it once CREATE_COMPLETE.
func Deploy(ctx context.Context, c *Clients, assemblyDir, stack string, o DeployOptions) (*Stack, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	raw, err := os.ReadFile(filepath.Join(assemblyDir, stack+".template.json"))
	if err != nil {
		return nil, fmt.Errorf("read template of %s (synthesize first): %w", stack, err)
	}
	tpl, changes, err := PrepareTemplate(raw)
	if err != nil {
		return nil, err
	}
	for _, ch := range changes {
		log.Info("template transform", "stack", stack, "change", ch)
	}
	if err := Bootstrap(ctx, c); err != nil {
		return nil, err
	}
	n, err := publishAssets(ctx, c, assemblyDir, stack)
	if err != nil {
		return nil, err
	}
	log.Info("assets published", "stack", stack, "bucket", AssetsBucket(), "files", n)

	body, err := json.Marshal(tpl)
	if err != nil {
		return nil, err
	}
	if _, err := c.CFN.CreateStack(ctx, &cloudformation.CreateStackInput{
		StackName:    aws.String(stack),
		TemplateBody: aws.String(string(body)),
		Capabilities: []cfntypes.Capability{cfntypes.CapabilityCapabilityIam, cfntypes.CapabilityCapabilityNamedIam, cfntypes.CapabilityCapabilityAutoExpand},
	}); err != nil {
		return nil, fmt.Errorf("create stack %s: %w", stack, err)
	}
	if _, err := waitCreated(ctx, c, stack, o.Timeout); err != nil {
		return nil, err
	}
	// Read back as deployed, as `edp smoke -local` reads it later: outputs
	// (URLs on the local endpoint), physical ids, and the resource types
	// from the template (moto leaves some resources it stores elsewhere,
	// metric-math alarms, out of its resource list).
	out, err := stackview.DescribeStack(ctx, c.CFN, stack, o.Endpoint)
	if err != nil {
		return nil, err
	}
	if err := applyBucketNotifications(ctx, c, out); err != nil {
		return nil, err
	}
	if err := applyBucketVersioning(ctx, c, out); err != nil {
		return nil, err
	}
	log.Info("stack deployed", "stack", stack, "resources", len(out.Physical))
	return out, nil
}

func waitCreated(ctx context.Context, c *Clients, stack string, timeout time.Duration) (*cfntypes.Stack, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := c.CFN.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
		if err != nil {
			return nil, fmt.Errorf("describe stack %s: %w", stack, err)
		}
		if len(d.Stacks) == 1 {
			s := d.Stacks[0]
			switch s.StackStatus {
			case cfntypes.StackStatusCreateComplete:
				return &s, nil
			case cfntypes.StackStatusCreateFailed, cfntypes.StackStatusRollbackComplete, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusRollbackInProgress:
				return nil, fmt.Errorf("stack %s: %s: %s%s", stack, s.StackStatus, aws.ToString(s.StackStatusReason), failedResources(ctx, c, stack))
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stack %s: not CREATE_COMPLETE within %s: %w", stack, timeout, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func failedResources(ctx context.Context, c *Clients, stack string) string {
	ev, err := c.CFN.DescribeStackEvents(ctx, &cloudformation.DescribeStackEventsInput{StackName: aws.String(stack)})
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ev.StackEvents {
		if e.ResourceStatus == cfntypes.ResourceStatusCreateFailed {
			fmt.Fprintf(&b, "; %s (%s): %s", aws.ToString(e.LogicalResourceId), aws.ToString(e.ResourceType), aws.ToString(e.ResourceStatusReason))
		}
	}
	return b.String()
}

// applyBucketNotifications applies what moto's CloudFormation stores but
// does not apply: each bucket's EventBridge notification setting.
func applyBucketNotifications(ctx context.Context, c *Clients, st *Stack) error {
	for _, id := range st.Resources("AWS::S3::Bucket") {
		nc, _ := st.Properties(id)["NotificationConfiguration"].(map[string]any)
		eb, _ := nc["EventBridgeConfiguration"].(map[string]any)
		if eb["EventBridgeEnabled"] != true {
			continue
		}
		if _, err := c.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
			Bucket: aws.String(st.Physical[id]),
			NotificationConfiguration: &s3types.NotificationConfiguration{
				EventBridgeConfiguration: &s3types.EventBridgeConfiguration{},
			},
		}); err != nil {
			return fmt.Errorf("apply EventBridge notifications of bucket %s: %w", st.Physical[id], err)
		}
	}
	return nil
}

// RewriteURL points an AWS URL (a queue URL with an AWS host name) at the
// emulator's endpoint, keeping its path.
func RewriteURL(raw, endpoint string) string { return stackview.RewriteURL(raw, endpoint) }

// applyBucketVersioning applies what moto's CloudFormation stores but does
// not apply: each bucket's VersioningConfiguration (moto's bucket handler
// applies only BucketEncryption and Tags). Without it the deployed bucket is
// unversioned, so every upload reports the version id "null" and the
// consumer names runs by ETag and sequencer instead of by version, and a
// deleted config can no longer be read by the version its event announced —
// behaviour the stacks never have in AWS. It reads the setting from the
// deployed template, like applyBucketNotifications.
func applyBucketVersioning(ctx context.Context, c *Clients, st *Stack) error {
	for _, id := range st.Resources("AWS::S3::Bucket") {
		vc, _ := st.Properties(id)["VersioningConfiguration"].(map[string]any)
		status, _ := vc["Status"].(string)
		if status == "" {
			continue
		}
		if _, err := c.S3.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(st.Physical[id]),
			VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatus(status)},
		}); err != nil {
			return fmt.Errorf("apply versioning %s of bucket %s: %w", status, st.Physical[id], err)
		}
	}
	return nil
}
