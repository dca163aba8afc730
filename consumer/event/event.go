// Package event turns the body of a work-queue message into the S3 object
// it asks the consumer to process. It is pure logic over the standard
// library: no SDK client, no I/O.
//
// Three formats name a config object:
//   - an EventBridge "Object Created" event from S3 (the normal path; keys
//     are plain text),
//   - S3's own event notification ({"Records":[...]}, keys URL-encoded with
//     '+' for spaces), with exactly one ObjectCreated record,
//   - a manual submit, {"config": "s3://bucket/key"}.
//
// S3's test event (sent when a notification configuration is saved) parses
// as KindTestEvent: the caller acknowledges and drops it. Anything else is
// a poison message: Parse returns an error for which errors.Is(err,
// failure.ErrPermanent) is true, so the caller moves it to the dead-letter
// queue.
package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/edp-pipelines/edp/consumer/failure"
)

// Kind says what a parsed message asks for.
type Kind int

const (
	// KindConfig asks to process the config object named by the message.
	KindConfig Kind = iota + 1
	// KindTestEvent is S3's "s3:TestEvent": acknowledge and drop.
	KindTestEvent
)

// Format names the wire format a message arrived in (for logs).
type Format string

// Formats accepted by Parse.
const (
	FormatEventBridge Format = "eventbridge"
	FormatS3          Format = "s3-notification"
	FormatS3Test      Format = "s3-test-event"
	FormatManual      Format = "manual"
)

// Message is what a queue message asks the consumer to do.
type Message struct {
	Kind   Kind
	Format Format
	// Bucket and Key name the object (Key decoded to its real name).
	Bucket, Key string
	// VersionID is the object's version id when it has one of its own, else
	// "": S3 sends the string "null" for objects written while the bucket
	// was unversioned or had versioning suspended, and every such upload of
	// a key carries that same "null", so Parse turns it into "".
	VersionID string
	// ETag is the object's entity tag as the event carries it (S3 sends it
	// without quotes); empty for manual submits.
	ETag string
	// Sequencer is S3's ordering token of the event: for one key, a later
	// upload has a greater sequencer. With the ETag it tells two uploads of
	// the same content to a key without versions apart. Empty when the
	// format has none (manual submits).
	Sequencer string
	// Time is when the event happened (zero when the format has no time).
	Time time.Time
}

// Parse decodes a message body. Every error it returns is a poison message:
// it wraps failure.ErrPermanent, and its text starts "poison message: ".
func Parse(body []byte) (Message, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return Message{}, Poison("body is not a JSON object")
	}
	// One pass over the union of the shapes' top-level fields is enough to
	// tell them apart, and keeps an unknown field from failing the decode.
	var probe struct {
		DetailType *string         `json:"detail-type"`
		Source     string          `json:"source"`
		Time       string          `json:"time"`
		Detail     json.RawMessage `json:"detail"`
		Records    json.RawMessage `json:"Records"`
		Event      *string         `json:"Event"`
		Service    string          `json:"Service"`
		Bucket     string          `json:"Bucket"`
		TestTime   string          `json:"Time"`
		Config     *string         `json:"config"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return Message{}, Poison("body is not valid JSON: %v", err)
	}
	switch {
	case probe.DetailType != nil:
		return parseEventBridge(*probe.DetailType, probe.Source, probe.Time, probe.Detail)
	case probe.Records != nil:
		return parseS3(probe.Records)
	case probe.Event != nil:
		if *probe.Event != "s3:TestEvent" {
			return Message{}, Poison("unknown S3 event %q", *probe.Event)
		}
		t, _ := time.Parse(time.RFC3339Nano, probe.TestTime)
		return Message{Kind: KindTestEvent, Format: FormatS3Test, Bucket: probe.Bucket, Time: t}, nil
	case probe.Config != nil:
		return parseManual(*probe.Config)
	default:
		return Message{}, Poison("JSON object is neither an EventBridge event, an S3 notification nor a {\"config\": ...} submit")
	}
}

func parseEventBridge(detailType, source, ts string, raw json.RawMessage) (Message, error) {
	if source != "aws.s3" || detailType != "Object Created" {
		return Message{}, Poison("EventBridge event %q from %q is not an S3 Object Created event", detailType, source)
	}
	var d struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       string `json:"key"`
			ETag      string `json:"etag"`
			VersionID string `json:"version-id"`
			Sequencer string `json:"sequencer"`
		} `json:"object"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return Message{}, Poison("EventBridge event detail: %v", err)
	}
	t, _ := time.Parse(time.RFC3339Nano, ts)
	m := Message{
		Kind: KindConfig, Format: FormatEventBridge,
		Bucket: d.Bucket.Name, Key: d.Object.Key,
		VersionID: ownVersion(d.Object.VersionID), ETag: d.Object.ETag, Sequencer: d.Object.Sequencer, Time: t,
	}
	return m, m.check()
}

func parseS3(raw json.RawMessage) (Message, error) {
	var recs []struct {
		EventSource string `json:"eventSource"`
		EventTime   string `json:"eventTime"`
		EventName   string `json:"eventName"`
		S3          struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key       string `json:"key"`
				ETag      string `json:"eTag"`
				VersionID string `json:"versionId"`
				Sequencer string `json:"sequencer"`
			} `json:"object"`
		} `json:"s3"`
	}
	if err := json.Unmarshal(raw, &recs); err != nil {
		return Message{}, Poison("S3 notification records: %v", err)
	}
	// S3 sends one record per message; a message carrying several would
	// need a partial-success protocol the queue does not have.
	if len(recs) != 1 {
		return Message{}, Poison("S3 notification has %d records, want 1", len(recs))
	}
	r := recs[0]
	if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") {
		return Message{}, Poison("S3 notification %q from %q is not an ObjectCreated event", r.EventName, r.EventSource)
	}
	// S3 notifications URL-encode keys the way HTML forms do ('+' is a space).
	key, err := url.QueryUnescape(r.S3.Object.Key)
	if err != nil {
		return Message{}, Poison("S3 notification key %q: %v", r.S3.Object.Key, err)
	}
	t, _ := time.Parse(time.RFC3339Nano, r.EventTime)
	m := Message{
		Kind: KindConfig, Format: FormatS3,
		Bucket: r.S3.Bucket.Name, Key: key,
		VersionID: ownVersion(r.S3.Object.VersionID), ETag: r.S3.Object.ETag, Sequencer: r.S3.Object.Sequencer, Time: t,
	}
	return m, m.check()
}

func parseManual(u string) (Message, error) {
	rest, ok := strings.CutPrefix(u, "s3://")
	if !ok {
		return Message{}, Poison("config %q is not an s3://bucket/key URL", u)
	}
	bucket, key, _ := strings.Cut(rest, "/")
	m := Message{Kind: KindConfig, Format: FormatManual, Bucket: bucket, Key: key}
	return m, m.check()
}

// NullVersion is the version id S3 gives objects written while their
// bucket was unversioned or had versioning suspended: not an identity, as
// every such upload of a key has it.
const NullVersion = "null"

// ownVersion is v, or "" when v names no version of its own.
func ownVersion(v string) string {
	if v == NullVersion {
		return ""
	}
	return v
}

func (m Message) check() error {
	if m.Bucket == "" || m.Key == "" {
		return Poison("%s message names no object (bucket %q, key %q)", m.Format, m.Bucket, m.Key)
	}
	return nil
}

// Poison is a message no retry can make processable: a permanent failure
// (failure.ErrPermanent) whose text starts "poison message: ".
func Poison(format string, args ...any) error {
	return failure.Permanent(fmt.Errorf("poison message: "+format, args...))
}
