package localcloud

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// ApplyBucketVersioning applies what moto's CloudFormation stores but does
// not apply: each bucket's VersioningConfiguration (moto's bucket handler
// applies only BucketEncryption and Tags). Without it the deployed bucket is
// unversioned, so every upload reports the version id "null" and the
// consumer names runs by ETag and sequencer instead of by version, and a
// deleted config can no longer be read by the version its event announced —
// behaviour the stacks never have in AWS. It reads the setting from the
// deployed template, like applyBucketNotifications, and is idempotent; the
// e2e tests call it right after Up, before anything is uploaded.
func ApplyBucketVersioning(ctx context.Context, c *Clients, st *Stack) error {
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
