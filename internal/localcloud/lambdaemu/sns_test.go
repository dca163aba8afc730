package lambdaemu

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
)

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

const alarmFixture = "lambdas/alarm-dispatch/testdata/alarm-single-metric.json"

// TestSNSEventDecodes: the event decodes into aws-lambda-go's
// events.SNSEvent, which the alarm-dispatch handler takes, with every field
// where the handler looks for it.
func TestSNSEventDecodes(t *testing.T) {
	t.Parallel()
	const topic = "arn:aws:sns:eu-west-1:123456789012:EdpAlarmDispatch-BacklogAlarmTopic"
	before := time.Now().Truncate(time.Millisecond)
	raw := SNSEvent(topic, "ALARM: backlog", `{"AlarmName":"a","NewStateValue":"ALARM"}`)
	var ev events.SNSEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	if len(ev.Records) != 1 {
		t.Fatalf("%d records, want 1", len(ev.Records))
	}
	rec := ev.Records[0]
	if rec.EventSource != "aws:sns" || rec.EventVersion != "1.0" || len(rec.EventSubscriptionArn) <= len(topic) || rec.EventSubscriptionArn[:len(topic)+1] != topic+":" {
		t.Errorf("record = %+v", rec)
	}
	sns := rec.SNS
	if sns.Type != "Notification" || sns.TopicArn != topic || sns.Subject != "ALARM: backlog" ||
		sns.Message != `{"AlarmName":"a","NewStateValue":"ALARM"}` || sns.SignatureVersion != "1" || !uuidRe.MatchString(sns.MessageID) {
		t.Errorf("Sns = %+v", sns)
	}
	if sns.Timestamp.Before(before) || sns.Timestamp.After(time.Now()) {
		t.Errorf("timestamp %v is not the time of the call", sns.Timestamp)
	}
	const host = "https://sns.eu-west-1.amazonaws.com/"
	if !strings.HasPrefix(sns.SigningCertURL, host+"SimpleNotificationService-") || !strings.HasSuffix(sns.SigningCertURL, ".pem") ||
		sns.UnsubscribeURL != host+"?Action=Unsubscribe&SubscriptionArn="+rec.EventSubscriptionArn || sns.Signature == "" {
		t.Errorf("signature fields = %q %q %q", sns.Signature, sns.SigningCertURL, sns.UnsubscribeURL)
	}
	if other := SNSEvent(topic, "", "m"); string(other) == string(raw) {
		t.Error("two events share ids")
	}
}

// TestSNSEventMatchesFixture: the event has the same fields, at every
// level, as the real delivery captured in the alarm-dispatch fixtures.
func TestSNSEventMatchesFixture(t *testing.T) {
	t.Parallel()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	fixture, err := os.ReadFile(filepath.Join(root, alarmFixture))
	if err != nil {
		t.Fatal(err)
	}
	ours := SNSEvent("arn:aws:sns:us-east-1:123456789012:t", "s", "m")
	if diff := cmp.Diff(keysOf(t, fixture), keysOf(t, ours)); diff != "" {
		t.Errorf("field paths differ from %s (-fixture +SNSEvent):\n%s", alarmFixture, diff)
	}
	// Without a subject, SNS delivers null.
	var noSubject struct {
		Records []struct{ Sns map[string]any }
	}
	if err := json.Unmarshal(SNSEvent("arn:aws:sns:us-east-1:1:t", "", "m"), &noSubject); err != nil {
		t.Fatal(err)
	}
	if v, ok := noSubject.Records[0].Sns["Subject"]; !ok || v != nil {
		t.Errorf("Subject = %v (present %v), want null", v, ok)
	}
}

// keysOf lists the field paths of a JSON document, array items merged.
func keysOf(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				out = append(out, prefix+k)
				walk(prefix+k+".", child)
			}
		case []any:
			for _, child := range v {
				walk(prefix+"[].", child)
			}
		}
	}
	walk("", v)
	slices.Sort(out)
	return slices.Compact(out)
}
