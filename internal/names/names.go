// Package names holds every name that the CDK stacks and the runtime binaries
// (the consumer and the alarm-dispatch Lambda) must agree on: stack names,
// environment-variable names, S3 key prefixes, stack output names and the
// CloudWatch metrics the binaries emit and the stacks' dashboards chart.
//
// It is standard-library only and has no logic beyond a few helpers, so both
// sides can import it and a rename is a single edit.
package names

import (
	"strings"
	"time"
)

// Stack names: the public interface users pass to `cdk deploy`.
const (
	StackOneOff        = "EdpOneOff"
	StackAlarmService  = "EdpAlarmService"
	StackAlarmDispatch = "EdpAlarmDispatch"
	StackCron          = "EdpCron"
)

// S3 key layout inside a pipeline bucket.
const (
	// ConfigPrefix is where users upload pipeline configs; only objects under
	// it (with a ConfigSuffixes ending) trigger runs.
	ConfigPrefix = "configs/"
	// ArtifactPrefix holds run outputs, one version folder per
	// run_config.version: artifacts/<version>/ (see VersionFolder).
	ArtifactPrefix = "artifacts/"
	// RecordPrefix holds one run record (success or failure) per run:
	// runs/<run-id>.json.
	RecordPrefix = "runs/"
	// RecentPrefix holds the recent-runs index (runrecord.Entry): an entry
	// when a run starts and one when it ends, keyed newest first, so that
	// readers list recent runs with one bounded LIST. Readers of records
	// list RecordPrefix with the delimiter "/", which leaves it out.
	RecentPrefix = RecordPrefix + "recent/"
)

// Inside a version folder, every run writes its files into a folder of its
// own and then publishes the version's pointer, which names the run whose
// files readers use:
//
//	artifacts/<version>/latest.json               the pointer (PointerFile), written last
//	artifacts/<version>/runs/<run-id>/model.json  one run's files (RunFolder)
//
// A run's folder is complete before the pointer names it, and no other run
// ever writes into it, so a reader that reads the pointer once and then the
// files of the run it names never mixes two runs.
const (
	// RunsFolder is the folder of a version folder that holds one folder
	// per run.
	RunsFolder = "runs/"
	// PointerFile is the version folder's pointer.
	PointerFile = "latest.json"
)

// VersionFolder is the folder of one run_config.version under
// artifactPrefix (which ends in "/"): "artifacts/rf-v2/".
func VersionFolder(artifactPrefix, version string) string {
	return artifactPrefix + version + "/"
}

// RunFolder is the folder of one run's files in versionFolder:
// "artifacts/rf-v2/runs/<run-id>/".
func RunFolder(versionFolder, runID string) string {
	return versionFolder + RunsFolder + runID + "/"
}

// PointerKey is the key of versionFolder's pointer:
// "artifacts/rf-v2/latest.json".
func PointerKey(versionFolder string) string {
	return versionFolder + PointerFile
}

// ConfigSuffixes are the object-key endings that trigger a run.
var ConfigSuffixes = []string{".yaml", ".yml", ".json"}

// IsConfigKey reports whether key is one the event rule would match:
// under ConfigPrefix and ending in one of ConfigSuffixes.
func IsConfigKey(key string) bool {
	if !strings.HasPrefix(key, ConfigPrefix) {
		return false
	}
	for _, s := range ConfigSuffixes {
		if strings.HasSuffix(key, s) {
			return true
		}
	}
	return false
}

// ConfigKeyFilters are the EventBridge content filters on
// detail.object.key that select config uploads: one wildcard per suffix,
// e.g. {"wildcard": "configs/*.yaml"}. ("*" also matches "/", so configs in
// sub-folders of ConfigPrefix trigger runs too.)
func ConfigKeyFilters() []map[string]string {
	out := make([]map[string]string, 0, len(ConfigSuffixes))
	for _, s := range ConfigSuffixes {
		out = append(out, map[string]string{"wildcard": ConfigPrefix + "*" + s})
	}
	return out
}

// The EventBridge "source" and "detail-type" of the events the upload rule
// selects: S3 object creations.
const (
	ConfigEventSource     = "aws.s3"
	ConfigEventDetailType = "Object Created"
)

// ConfigEventDetail is the "detail" of ConfigEventPattern: objects of bucket
// whose key passes ConfigKeyFilters.
func ConfigEventDetail(bucket string) map[string]any {
	return map[string]any{
		"bucket": map[string]any{"name": []string{bucket}},
		"object": map[string]any{"key": ConfigKeyFilters()},
	}
}

// ConfigEventPattern is the EventBridge event pattern of the upload rule for
// bucket, as a JSON-ready value: S3 "Object Created" events whose key passes
// ConfigKeyFilters. The stacks deploy exactly this pattern; tests put it on
// an emulated bus.
func ConfigEventPattern(bucket string) map[string]any {
	return map[string]any{
		"source":      []string{ConfigEventSource},
		"detail-type": []string{ConfigEventDetailType},
		"detail":      ConfigEventDetail(bucket),
	}
}

// StopTimeout is how long ECS waits after stopping the consumer container
// (SIGTERM) before it kills it: the task definition's stopTimeout, 120 s,
// the most Fargate allows. The consumer's stop budget is derived from it
// (worker.MaxGrace: the grace, then the calls that release and delete what
// is left), so that a stop ends before the kill.
const StopTimeout = 120 * time.Second

// ContainerName is the name of the consumer container in every task definition.
const ContainerName = "consumer"

// Consumer modes (the container's first argument).
const (
	ModeDrain = "drain"
	ModeServe = "serve"
)

// Environment variables read by the consumer (set by the task definition).
const (
	EnvQueueURL          = "EDP_QUEUE_URL"          // URL of the work queue
	EnvDLQURL            = "EDP_DLQ_URL"            // URL of the dead-letter queue (permanent failures go here at once)
	EnvBucket            = "EDP_BUCKET"             // pipeline bucket
	EnvConfigPrefix      = "EDP_CONFIG_PREFIX"      // defaults to ConfigPrefix
	EnvArtifactPrefix    = "EDP_ARTIFACT_PREFIX"    // defaults to ArtifactPrefix
	EnvRecordPrefix      = "EDP_RECORD_PREFIX"      // defaults to RecordPrefix
	EnvConcurrency       = "EDP_CONCURRENCY"        // parallel jobs; default: number of CPUs
	EnvWaitSeconds       = "EDP_WAIT_SECONDS"       // long-poll wait in seconds, 1..20
	EnvEmptyReceives     = "EDP_EMPTY_RECEIVES"     // drain mode: exit after this many empty receives in a row
	EnvVisibilityTimeout = "EDP_VISIBILITY_TIMEOUT" // seconds; must match the queue's visibility timeout
	EnvJobTimeout        = "EDP_JOB_TIMEOUT"        // Go duration, e.g. "15m"
	EnvMaxRunTime        = "EDP_MAX_RUN_TIME"       // drain mode: Go duration after which no new messages are taken
	EnvTriggerBucket     = "EDP_TRIGGER_BUCKET"     // set by EventBridge container overrides (one-off)
	EnvTriggerKey        = "EDP_TRIGGER_KEY"        // set by EventBridge container overrides (one-off)
)

// Environment variables of a command job (docs/jobs.md), read by the
// consumer; the task definition sets them when edp:job is "command".
const (
	EnvJob                = "EDP_JOB"                  // JobIris (default) or JobCommand
	EnvJobCommand         = "EDP_JOB_COMMAND"          // the job's argv as a JSON array of strings
	EnvJobValidateCommand = "EDP_JOB_VALIDATE_COMMAND" // optional: argv (JSON) that checks a config without running it
	EnvJobMaxConfigBytes  = "EDP_JOB_MAX_CONFIG_BYTES" // largest config a command job is given
	EnvJobMaxOutputFiles  = "EDP_JOB_MAX_OUTPUT_FILES" // most files a run may publish
	EnvJobMaxOutputBytes  = "EDP_JOB_MAX_OUTPUT_BYTES" // most bytes a run may publish
	EnvJobKillGrace       = "EDP_JOB_KILL_GRACE"       // Go duration from SIGTERM to SIGKILL at the job timeout
	EnvWorkDir            = "EDP_WORK_DIR"             // where each run gets a fresh work directory
	EnvJobDir             = "EDP_JOB_DIR"              // the job's own files (default: the consumer's working directory)
)

// Job kinds (EnvJob, the record's "job", context edp:job).
const (
	JobIris    = "iris"
	JobCommand = "command"
)

// WorkDirInImage is where the task definition mounts the task's scratch
// volume in a command job's container: the runs' work directories.
const WorkDirInImage = "/edp/work"

// JobContextFile, in a job directory, holds the job's CDK context keys
// (edp:jobCommand, limits, ...): `cdk deploy -c edp:jobDir=DIR` and
// `make local JOB=DIR` read it; context given explicitly wins.
const JobContextFile = "job.json"

// JobConfigDir, in a job directory, holds example configs of the job.
const JobConfigDir = "configs"

// Environment variables read by the alarm-dispatch Lambda. EnvMaxTasks is
// also the consumer's -max-tasks in drain mode (the cron stack sets it).
const (
	EnvCluster          = "EDP_CLUSTER"           // ECS cluster name or ARN
	EnvTaskDefinition   = "EDP_TASK_DEFINITION"   // task definition ARN
	EnvSubnets          = "EDP_SUBNETS"           // comma-separated subnet ids
	EnvSecurityGroups   = "EDP_SECURITY_GROUPS"   // comma-separated security group ids
	EnvAssignPublicIP   = "EDP_ASSIGN_PUBLIC_IP"  // "ENABLED" or "DISABLED"
	EnvMaxTasks         = "EDP_MAX_TASKS"         // upper bound of consumer tasks running at once
	EnvMessagesPerTask  = "EDP_MESSAGES_PER_TASK" // backlog one task is expected to drain
	EnvCapacityProvider = "EDP_CAPACITY_PROVIDER" // "FARGATE" or "FARGATE_SPOT"
	EnvContainerName    = "EDP_CONTAINER_NAME"    // container to override with drain mode
	EnvStartedBy        = "EDP_STARTED_BY"        // startedBy value marking dispatcher tasks
)

// DefaultStartedBy marks tasks started by the alarm-dispatch Lambda.
const DefaultStartedBy = "edp-alarm-dispatch"

// Message attributes the consumer puts on every copy it sends to the
// dead-letter queue (a message SQS's redrive policy moved carries none).
// A lost SendMessage answer can leave several copies of one message there;
// they share AttrOriginalMessageID (the work-queue message id, which is also
// the id of the original if SQS later moves it), and the DLQ tooling counts
// them as one.
const (
	AttrFailureReason     = "edp-failure-reason"      // the error, at most 1000 bytes of UTF-8
	AttrOriginalMessageID = "edp-original-message-id" // the message id on the work queue
	AttrReceiveCount      = "edp-receive-count"       // receives on the work queue so far
	AttrFailedAt          = "edp-failed-at"           // RFC 3339, UTC
)

// Stack output names (CfnOutput ids), the same in every stack that has them.
const (
	OutputBucket         = "BucketName"
	OutputQueueURL       = "QueueUrl"
	OutputDLQURL         = "DeadLetterQueueUrl"
	OutputCluster        = "ClusterName"
	OutputTaskDefinition = "TaskDefinitionArn"
	OutputAlertTopic     = "AlertTopicArn"
	OutputDashboard      = "DashboardUrl"
)

// The consumer's CloudWatch metrics: Embedded Metric Format lines on its
// stdout, which the awslogs driver sends to CloudWatch Logs. Every line has
// the dimension ConsumerMetricMode (the consumer's mode, ModeDrain or
// ModeServe). Each stack's dashboard charts every name of ConsumerMetrics.
const (
	ConsumerMetricNamespace = "edp/consumer"
	ConsumerMetricMode      = "Mode"    // dimension: the consumer's mode
	ConsumerMetricCluster   = "Cluster" // dimension: the task's cluster name, so that each stack's dashboard charts its own jobs

	// One line per settled job (succeeded, retried or dead-lettered).
	MetricJobsSucceeded = "JobsSucceeded" // Count: 1 if the job succeeded (or was a duplicate), else 0
	MetricJobsFailed    = "JobsFailed"    // Count: 1 if it failed (to be retried or dead-lettered), else 0
	MetricJobDuration   = "JobDuration"   // Milliseconds the job ran
	MetricQueueWait     = "QueueWait"     // Milliseconds from sending the message to receiving it

	// Serve mode: a scale-in protection request the ECS agent refused or
	// that could not be made.
	MetricProtectionFailures = "ProtectionFailures"
	// Drain mode with a task cap (EdpCron): drains skipped because the cap
	// was reached, and cap checks that could not be made.
	MetricDrainsSkipped        = "DrainsSkipped"
	MetricTaskCapCheckFailures = "TaskCapCheckFailures"
)

// ConsumerMetrics are the metric names the consumer may emit in mode: the
// job metrics, then the mode's own.
func ConsumerMetrics(mode string) []string {
	out := []string{MetricJobsSucceeded, MetricJobsFailed, MetricJobDuration, MetricQueueWait}
	switch mode {
	case ModeServe:
		out = append(out, MetricProtectionFailures)
	case ModeDrain:
		out = append(out, MetricDrainsSkipped, MetricTaskCapCheckFailures)
	}
	return out
}

// The alarm-dispatch Lambda's CloudWatch metrics: one Embedded Metric Format
// line per invocation, with the dimension DispatchMetricCluster (the
// cluster's name, as the function's EnvCluster gives it).
const (
	DispatchMetricNamespace = "edp/alarm-dispatch"
	DispatchMetricCluster   = "Cluster" // dimension: the cluster the tasks start in

	MetricTasksRequested = "TasksRequested" // Count: tasks the dispatch asked for
	MetricTasksStarted   = "TasksStarted"   // Count: tasks RunTask started
	MetricTasksFailed    = "TasksFailed"    // Count: tasks RunTask could not start
	MetricBacklog        = "Backlog"        // Count: messages visible and in flight, as the function saw them
	MetricRunningTasks   = "RunningTasks"   // Count: tasks of the family running or pending, as the function saw them
)

// DispatchMetrics are the metric names of the alarm-dispatch Lambda's line.
func DispatchMetrics() []string {
	return []string{MetricTasksRequested, MetricTasksStarted, MetricTasksFailed, MetricBacklog, MetricRunningTasks}
}
