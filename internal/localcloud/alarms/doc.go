// Package alarms runs what moto stores but never evaluates: the CloudWatch
// alarms and Application Auto Scaling policies of a deployed CloudFormation
// template, read from the template itself.
//
// A Loop evaluates, once per (sped-up) CloudWatch minute, every
// AWS::CloudWatch::Alarm of the template — its metric math (Expr), its
// threshold, M-out-of-N data points and TreatMissingData (Alarm) — and
// performs the actions of its state: an SNS topic action is notified once
// per state change with the JSON body CloudWatch publishes
// (AlarmStateChange); a step scaling policy (StepScaling) is invoked every
// period the alarm stays in the state, as CloudWatch does for Auto Scaling
// actions. Target-tracking policies with a customized metric
// (TargetTracking) size the target proportionally. The metrics come from a
// Source, the capacity is a Scaler, notifications go to a Notifier; the
// caller maps the template's logical ids to the deployed physical names
// with a Resolver.
//
// Modelled as AWS documents it: the metric-math operators and functions
// listed on Expr with CloudWatch's missing-data propagation; the alarm
// states OK, ALARM and INSUFFICIENT_DATA (a new alarm starts in the last),
// the evaluation range, TreatMissingData (breaching, notBreaching, ignore,
// missing) as in CloudWatch's table of examples, state reasons worded like
// CloudWatch's; step bounds relative to the threshold with CloudWatch's
// inclusive/exclusive rule, ChangeInCapacity, ExactCapacity and
// PercentChangeInCapacity (with its rounding and MinAdjustmentMagnitude),
// MetricAggregationType, Cooldown; target tracking's
// ceil(current × metric / target), DisableScaleIn, ScaleOutCooldown and
// ScaleInCooldown; clamping to MinCapacity and MaxCapacity.
//
// Simplified: each period has exactly one data point per metric, the
// Source's value for the period that just ended (no late or partial data);
// the evaluation range is EvaluationPeriods+2 periods and holds no history
// from before the Loop started (an alarm first evaluates once it has
// EvaluationPeriods data points); a step policy invoked
// by an alarm without any real data point (missing data treated as
// breaching) uses a breach delta of 0; target tracking's managed alarms are
// modelled as N consecutive one-minute points above (or below) the target
// (Config.TrackingOutPeriods, TrackingInPeriods) rather than as alarms
// with their own thresholds; cooldowns are per policy; one scalable target
// per Loop; no anomaly-detection, percentile or composite alarms, no
// predefined target-tracking metrics, no EC2 or Systems Manager actions
// (NewLoop fails naming what it cannot run).
package alarms
