package lambdaemu

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"
)

// snsEvent is the event Lambda receives from an SNS subscription, with the
// field names and order of a real delivery (and of aws-lambda-go's
// events.SNSEvent).
type snsEvent struct {
	Records []snsRecord `json:"Records"`
}

type snsRecord struct {
	EventSource          string    `json:"EventSource"`
	EventVersion         string    `json:"EventVersion"`
	EventSubscriptionArn string    `json:"EventSubscriptionArn"`
	SNS                  snsEntity `json:"Sns"`
}

type snsEntity struct {
	Type              string         `json:"Type"`
	MessageID         string         `json:"MessageId"`
	TopicArn          string         `json:"TopicArn"`
	Subject           *string        `json:"Subject"` // null when the publisher set none
	Message           string         `json:"Message"`
	Timestamp         string         `json:"Timestamp"`
	SignatureVersion  string         `json:"SignatureVersion"`
	Signature         string         `json:"Signature"`
	SigningCertURL    string         `json:"SigningCertUrl"`
	UnsubscribeURL    string         `json:"UnsubscribeUrl"`
	MessageAttributes map[string]any `json:"MessageAttributes"`
}

// SNSEvent returns the event a Lambda function subscribed to topicArn
// receives when message is published with subject (empty: none): one
// record with EventSource "aws:sns", a new message id and subscription id,
// and the current time. The signature is random bytes, not a verifiable
// SNS signature; the URLs point at the topic's region. For a CloudWatch
// alarm, message is the alarm's JSON notification.
func SNSEvent(topicArn, subject, message string) []byte {
	region := "us-east-1"
	if parts := strings.Split(topicArn, ":"); len(parts) > 3 && parts[3] != "" {
		region = parts[3]
	}
	host := "https://sns." + region + ".amazonaws.com"
	subscription := topicArn + ":" + newUUID()
	var sig [128]byte
	_, _ = rand.Read(sig[:]) // crypto/rand.Read never fails
	var cert [16]byte
	_, _ = rand.Read(cert[:])
	var subj *string
	if subject != "" {
		subj = &subject
	}
	ev := snsEvent{Records: []snsRecord{{
		EventSource:          "aws:sns",
		EventVersion:         "1.0",
		EventSubscriptionArn: subscription,
		SNS: snsEntity{
			Type:              "Notification",
			MessageID:         newUUID(),
			TopicArn:          topicArn,
			Subject:           subj,
			Message:           message,
			Timestamp:         time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			SignatureVersion:  "1",
			Signature:         base64.StdEncoding.EncodeToString(sig[:]),
			SigningCertURL:    host + "/SimpleNotificationService-" + hex.EncodeToString(cert[:]) + ".pem",
			UnsubscribeURL:    host + "/?Action=Unsubscribe&SubscriptionArn=" + subscription,
			MessageAttributes: map[string]any{},
		},
	}}}
	b, _ := json.Marshal(ev) // strings and an empty map only: cannot fail
	return b
}

// newUUID returns a random (version 4) UUID, the shape of SNS message ids.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
