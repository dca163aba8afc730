// Package sim is a discrete-event simulator of edp's four architectures
// (`edp simulate`, docs/choosing.md). Given a stack's settings (the same
// settings.Settings cdk.go builds from the CDK context), an arrival pattern
// (Scenario) and a job-duration model (JobModel), Run predicts upload →
// start and upload → done percentiles, the tasks started and running, a
// monthly cost and warnings (lost work, task storms, idle tasks). It is
// pure and deterministic: the same inputs and seed give the same Result.
// Standard library only (plus the repository's stdlib-only settings and
// schedexpr packages).
//
// What is simulated, event by event: EventBridge's delivery of each upload
// to the queue (and, for EdpOneOff, one RunTask); Fargate tasks that take a
// lognormal start time; the consumer's loop in each task — receive only for
// free workers (edp:jobConcurrency), 20 s long polls that return as soon as
// a message arrives, a drain that exits after edp:emptyReceives empty polls
// with nothing visible or in flight, a service task that finishes its long
// poll when scaled in; SQS's one-minute metrics (maximum visible and in
// flight, the oldest message's age), late after an inactive queue wakes;
// the alarms' metric math as stacks/alarms.go builds it (backlog with the
// max wait, the dispatch gate on invocations, the wake gate on the desired
// count, the idle alarm with missing data as idle), step scaling with its
// +1/+2/+4 tiers and cooldown, target tracking on backlog per task after
// its datapoints, the dispatch Lambda's formula
// max(0, min(max, ceil(backlog / per)) − running), the Scheduler's fire
// times (internal/schedexpr) within its one-minute window, the cron drains'
// task cap, and the retention deleting messages.
//
// What is approximated or left out: every task starts (no capacity or vCPU
// quota failures, so EdpOneOff's stranded-work alarm never fires); jobs
// fail only transiently, as JobModel.Failures says (retried after the
// consumer's retry delay, dead-lettered after edp:maxReceiveCount; a
// permanent failure is settled at once, like a success), and a retried
// message rejoins the back of the queue; SQS counts are exact; a task is
// billed from its RunTask (the image pull starts a little later); Container Insights' running count is averaged
// over the period; EventBridge and Scheduler deliver on their first try;
// every Lambda invocation pays a cold start; free tiers are not subtracted;
// a task runs edp:jobConcurrency jobs at once (the built-in Iris job runs
// one per CPU, so its prediction is pessimistic).
//
// The model is checked against the local cloud: the e2e test
// TestSimulatorPredictsLocalCloud (internal/localcloud/e2e) gives Run the
// timings a local-cloud run showed and requires its upload → done
// percentiles and peak tasks within 20 % of that run's.
package sim
