package main

import (
	"encoding/json"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// CloudWatch alarm states (NewStateValue).
const (
	stateAlarm            = "ALARM"
	stateOK               = "OK"
	stateInsufficientData = "INSUFFICIENT_DATA"
)

// Why a record is ignored; logged as "reason" so operators can tell a quiet
// OK transition from a misrouted message.
const (
	reasonSubscription     = "sns subscription message"
	reasonNotNotification  = "not an sns notification"
	reasonNotJSON          = "message is not json"
	reasonMalformed        = "message is malformed json"
	reasonNotAlarm         = "message is not a cloudwatch alarm notification"
	reasonStateOK          = "alarm state OK"
	reasonInsufficientData = "alarm state INSUFFICIENT_DATA"
	reasonUnknownState     = "unknown alarm state"
)

// alarmNotice is what the dispatcher needs from one ALARM notification.
type alarmNotice struct {
	AlarmName string
	AlarmARN  string
	// StateChangeTime is kept verbatim: it only feeds the idempotency key,
	// which must be byte-identical when the same notification is redelivered.
	StateChangeTime string
	SNSMessageID    string
}

// classify decides what one SNS record is. It returns the notice and "" for a
// transition to ALARM, or a zero notice and the reason to ignore the record.
// It never fails: anything it does not understand is a reason to ignore.
func classify(rec events.SNSEventRecord) (alarmNotice, string) {
	switch rec.SNS.Type {
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		return alarmNotice{}, reasonSubscription
	case "Notification", "":
		// "" is tolerated for hand-made test events that omit the type.
	default:
		return alarmNotice{}, reasonNotNotification
	}
	msg := strings.TrimSpace(rec.SNS.Message)
	if !strings.HasPrefix(msg, "{") {
		return alarmNotice{}, reasonNotJSON
	}
	var p events.CloudWatchAlarmSNSPayload
	if err := json.Unmarshal([]byte(msg), &p); err != nil {
		return alarmNotice{}, reasonMalformed
	}
	if p.AlarmName == "" || p.NewStateValue == "" {
		return alarmNotice{}, reasonNotAlarm
	}
	switch p.NewStateValue {
	case stateAlarm:
	case stateOK:
		return alarmNotice{}, reasonStateOK
	case stateInsufficientData:
		return alarmNotice{}, reasonInsufficientData
	default:
		return alarmNotice{}, reasonUnknownState
	}
	return alarmNotice{
		AlarmName:       p.AlarmName,
		AlarmARN:        p.AlarmARN,
		StateChangeTime: p.StateChangeTime,
		SNSMessageID:    rec.SNS.MessageID,
	}, ""
}

// key identifies the state change: the same for every delivery and retry of
// one notification, different for the next transition to ALARM.
func (n alarmNotice) key() string {
	alarm := n.AlarmARN
	if alarm == "" {
		alarm = n.AlarmName
	}
	when := n.StateChangeTime
	if when == "" {
		// Every redelivery of one SNS message keeps its MessageId, so it is
		// the next best stable identity of the transition.
		when = "sns:" + n.SNSMessageID
	}
	return alarm + "\n" + when
}
