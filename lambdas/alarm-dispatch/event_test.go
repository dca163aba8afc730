package main

import (
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

const fixtureAlarmARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D"

func TestClassifyFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fixture    string
		want       alarmNotice
		wantReason string
	}{
		{"alarm-single-metric.json", alarmNotice{
			AlarmName:       "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D",
			AlarmARN:        fixtureAlarmARN,
			StateChangeTime: "2026-11-23T17:01:13.471+0000",
			SNSMessageID:    "5f1c8c0e-2b47-5b9e-9d3e-6a0d8b1f4c21",
		}, ""},
		{"alarm-metric-math.json", alarmNotice{
			AlarmName:       "EdpAlarmDispatch-QueueBacklog-1XKJ3P0A7ZQ2D",
			AlarmARN:        fixtureAlarmARN,
			StateChangeTime: "2026-11-23T17:06:02.118+0000",
			SNSMessageID:    "c3a1f0d2-8e4b-5f6a-b7c9-1d2e3f4a5b6c",
		}, ""},
		{"ok.json", alarmNotice{}, reasonStateOK},
		{"insufficient-data.json", alarmNotice{}, reasonInsufficientData},
		{"subscription-confirmation.json", alarmNotice{}, reasonSubscription},
		{"test-notification.json", alarmNotice{}, reasonNotJSON},
		{"garbage.json", alarmNotice{}, reasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			t.Parallel()
			ev := loadEvent(t, tt.fixture)
			if len(ev.Records) != 1 {
				t.Fatalf("fixture has %d records, want 1", len(ev.Records))
			}
			got, reason := classify(ev.Records[0])
			if reason != tt.wantReason {
				t.Errorf("reason = %q, want %q", reason, tt.wantReason)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("notice (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClassifyEdgeCases(t *testing.T) {
	t.Parallel()
	rec := func(typ, msg string) events.SNSEventRecord {
		return events.SNSEventRecord{SNS: events.SNSEntity{Type: typ, MessageID: "m-1", Message: msg}}
	}
	tests := []struct {
		name       string
		rec        events.SNSEventRecord
		wantReason string
	}{
		{"unsubscribe confirmation", rec("UnsubscribeConfirmation", "{}"), reasonSubscription},
		{"unknown sns type", rec("Surprise", `{"AlarmName":"a","NewStateValue":"ALARM"}`), reasonNotNotification},
		{"empty message", rec("Notification", ""), reasonNotJSON},
		{"json array", rec("Notification", `[1,2]`), reasonNotJSON},
		{"json null", rec("Notification", `null`), reasonNotJSON},
		{"json of another service", rec("Notification", `{"Event":"autoscaling:TEST_NOTIFICATION","AccountId":"123456789012"}`), reasonNotAlarm},
		{"wrong field types", rec("Notification", `{"AlarmName":7,"NewStateValue":"ALARM"}`), reasonMalformed},
		{"unknown state", rec("Notification", `{"AlarmName":"a","NewStateValue":"ALARMING"}`), reasonUnknownState},
		{"alarm without type field", rec("", `{"AlarmName":"a","NewStateValue":"ALARM"}`), ""},
		{"alarm with leading blanks", rec("Notification", "  \n{\"AlarmName\":\"a\",\"NewStateValue\":\"ALARM\"}"), ""},
	}
	for _, tt := range tests {
		if _, reason := classify(tt.rec); reason != tt.wantReason {
			t.Errorf("%s: reason = %q, want %q", tt.name, reason, tt.wantReason)
		}
	}
}

func TestNoticeKey(t *testing.T) {
	t.Parallel()
	a := alarmNotice{AlarmName: "n", AlarmARN: "arn:a", StateChangeTime: "t1", SNSMessageID: "m1"}
	redelivered := a
	redelivered.SNSMessageID = "m2" // a duplicate SNS delivery of the same transition
	if dispatchID(a) != dispatchID(redelivered) {
		t.Error("same state change, different dispatch ids")
	}
	next := a
	next.StateChangeTime = "t2"
	if dispatchID(a) == dispatchID(next) {
		t.Error("different state changes share a dispatch id")
	}
	other := a
	other.AlarmARN = "arn:b"
	if dispatchID(a) == dispatchID(other) {
		t.Error("different alarms share a dispatch id")
	}
	// Without a state-change time the SNS message id keeps retries stable.
	noTime := alarmNotice{AlarmName: "n", SNSMessageID: "m1"}
	if noTime.key() != "n\nsns:m1" {
		t.Errorf("key without time = %q", noTime.key())
	}
	if got := clientToken(dispatchID(a), 12); len(got) > 64 || got != "edp-"+dispatchID(a)+"-12" {
		t.Errorf("clientToken = %q", got)
	}
	for _, c := range clientToken(dispatchID(a), 0) {
		if c < 33 || c > 126 {
			t.Fatalf("client token has character %q outside ASCII 33..126", c)
		}
	}
}
