package faultproxy

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
)

// target is a stand-in for the emulator: it answers every SQS JSON call
// with an empty ListQueues result and records what reached it.
type target struct {
	mu   sync.Mutex
	got  []string // "<operation> <body>"
	srv  *httptest.Server
	hits chan struct{}
}

func newTarget(t *testing.T) *target {
	t.Helper()
	tg := &target{hits: make(chan struct{}, 100)}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		tg.mu.Lock()
		tg.got = append(tg.got, Operation(r)+" "+string(b))
		tg.mu.Unlock()
		tg.hits <- struct{}{}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Test", "from-target")
		_, _ = io.WriteString(w, `{"QueueUrls":["http://q/1"]}`)
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

func (tg *target) requests() []string {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return append([]string(nil), tg.got...)
}

// sqsClient is a real SDK client pointed at the proxy, with the SDK's
// standard retries (3 attempts) but no waiting between them.
func sqsClient(p *Proxy) *sqs.Client {
	return sqs.New(sqs.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint: aws.String(p.URL),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		}),
	})
}

func listQueues(ctx context.Context, c *sqs.Client) error {
	_, err := c.ListQueues(ctx, &sqs.ListQueuesInput{})
	return err
}

func TestForwardsUntouched(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/some/path?x=1", strings.NewReader("hello"))
	req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Test") != "from-target" || !strings.Contains(string(b), "QueueUrls") {
		t.Errorf("answer %d %v %q, want the target's", resp.StatusCode, resp.Header, b)
	}
	if got := tg.requests(); len(got) != 1 || got[0] != "ListQueues hello" {
		t.Errorf("target got %q", got)
	}
	if p.Seen("ListQueues") != 1 {
		t.Errorf("Seen = %d, want 1", p.Seen("ListQueues"))
	}
}

func TestOperation(t *testing.T) {
	t.Parallel()
	s3 := http.Header{"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"}}
	for _, tc := range []struct {
		method, target, url string
		header              http.Header
		want                string
	}{
		{"POST", "AmazonSQS.ReceiveMessage", "/", nil, "ReceiveMessage"},
		{"POST", "", "/?Action=SendMessage&Version=2012-11-05", nil, "SendMessage"},
		{"GET", "", "/bucket/key", nil, ""}, // unsigned: not known to be S3
		{"GET", "", "/bucket/key?x-id=GetObject", s3, "GetObject"},
		{"GET", "", "/bucket/a/b.json", s3, "GetObject"},
		{"GET", "", "/bucket/a/b.json?versionId=v1", s3, "GetObject"},
		{"HEAD", "", "/bucket/a/b.json", s3, "HeadObject"},
		{"PUT", "", "/bucket/a/b.json", s3, "PutObject"},
		{"PUT", "", "/bucket/a/b.json", http.Header{"X-Amz-Content-Sha256": {"x"}, "X-Amz-Copy-Source": {"bucket/c"}}, "CopyObject"},
		{"DELETE", "", "/bucket/a/b.json", s3, "DeleteObject"},
		{"GET", "", "/bucket?list-type=2&prefix=runs%2F", s3, "ListObjectsV2"},
		{"GET", "", "/bucket?versions", s3, "ListObjectVersions"},
		{"POST", "", "/bucket?delete", s3, "DeleteObjects"},
		{"GET", "", "/bucket/key?tagging", s3, ""},
		{"GET", "", "/", s3, ""},
	} {
		r := httptest.NewRequest(tc.method, tc.url, nil)
		for k, v := range tc.header {
			r.Header[k] = v
		}
		if tc.target != "" {
			r.Header.Set("X-Amz-Target", tc.target)
		}
		if got := Operation(r); got != tc.want {
			t.Errorf("Operation(%s %q, target %q) = %q, want %q", tc.method, tc.url, tc.target, got, tc.want)
		}
	}
}

// The S3 requests of the SDK itself are named and counted per operation.
func TestSeenS3OperationsOfTheSDK(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("list-type") {
			_, _ = io.WriteString(w, `<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>`)
		}
	}))
	t.Cleanup(srv.Close)
	p := StartT(t, srv.URL)
	c := s3.New(s3.Options{
		Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
		BaseEndpoint: aws.String(p.URL), UsePathStyle: true,
	})
	ctx := t.Context()
	b := aws.String("bucket")
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("runs/a.json"), Body: strings.NewReader("{}")}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("runs/a.json")})
		if err != nil {
			t.Fatal(err)
		}
		out.Body.Close()
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("runs/a.json")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("runs/")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"PutObject": 1, "GetObject": 2, "HeadObject": 1, "ListObjectsV2": 1}
	if got := p.SeenAll(); !maps.Equal(got, want) {
		t.Errorf("SeenAll = %v, want %v", got, want)
	}
}

// Every fault as the SDK sees it: which are retried, what reaches the
// target, and what the proxy counts.
func TestFaultsAsTheSDKSeesThem(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		rule        Rule
		wantCode    string // API error code; "" for a transport error
		wantReached int    // calls that reached the target
	}{
		{"server error, every attempt", Rule{Operation: "ListQueues", Fault: ServerError}, "InternalError", 0},
		{"throttle, every attempt", Rule{Operation: "ListQueues", Fault: Throttle}, "ThrottlingException", 0},
		{"reset, every attempt", Rule{Operation: "ListQueues", Fault: Reset}, "", 0},
		{"lost responses: every attempt took effect", Rule{Operation: "ListQueues", Fault: LoseResponse}, "", 3},
		{"outage", Outage(), "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tg := newTarget(t)
			p := StartT(t, tg.srv.URL)
			p.Add(tc.rule)
			err := listQueues(context.Background(), sqsClient(p))
			if err == nil {
				t.Fatal("call succeeded through the fault")
			}
			var ae smithy.APIError
			switch {
			case tc.wantCode != "" && (!errors.As(err, &ae) || ae.ErrorCode() != tc.wantCode):
				t.Errorf("error %v, want API error %s", err, tc.wantCode)
			case tc.wantCode == "" && errors.As(err, &ae):
				t.Errorf("error %v, want a transport error", err)
			}
			if n := len(tg.requests()); n != tc.wantReached {
				t.Errorf("%d calls reached the target, want %d", n, tc.wantReached)
			}
			// The SDK retried: three attempts, three faults.
			if s, i := p.Seen("ListQueues"), p.Injected("ListQueues", tc.rule.Fault); s != 3 || i != 3 {
				t.Errorf("seen %d, injected %d: want 3 attempts, all faulted", s, i)
			}
		})
	}
}

// Times limits a rule: one lost response, then the retry gets through.
func TestTimesThenThrough(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	p.Add(Rule{Operation: "ListQueues", Fault: LoseResponse, Times: 1})
	if err := listQueues(context.Background(), sqsClient(p)); err != nil {
		t.Fatalf("retry after one lost response failed: %v", err)
	}
	if n := len(tg.requests()); n != 2 {
		t.Errorf("target got %d calls, want 2 (the lost one took effect too)", n)
	}
	if i := p.Injected("ListQueues", LoseResponse); i != 1 {
		t.Errorf("injected %d, want 1", i)
	}
}

// MatchResponse: only answers it accepts are lost; others pass and do not
// use up Times.
func TestLoseOnlyMatchingResponses(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	p.Add(Rule{Operation: "ListQueues", Fault: LoseResponse, Times: 1,
		MatchResponse: func(_ int, body []byte) bool { return strings.Contains(string(body), "never") }})
	c := sqsClient(p)
	for range 3 {
		if err := listQueues(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if i := p.Injected("ListQueues", LoseResponse); i != 0 {
		t.Errorf("injected %d, want 0", i)
	}
}

// Rules match per operation and per request; remove takes a rule out.
func TestMatchAndRemove(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	remove := p.Add(Rule{Operation: "ListQueues", Fault: ServerError,
		Match: func(_ *http.Request, body []byte) bool { return strings.Contains(string(body), "doomed") }})
	c := sqsClient(p)
	if _, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String("fine")}); err != nil {
		t.Errorf("unmatched request failed: %v", err)
	}
	if _, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String("doomed")}); err == nil {
		t.Error("matched request succeeded")
	}
	if _, err := c.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String("doomed")}); err != nil {
		t.Errorf("other operation failed: %v", err)
	}
	remove()
	if _, err := c.ListQueues(context.Background(), &sqs.ListQueuesInput{QueueNamePrefix: aws.String("doomed")}); err != nil {
		t.Errorf("after remove: %v", err)
	}
}

// A Rate draws per request from its seed: some requests fail, some pass.
func TestRate(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	p.Add(Rule{Operation: "ListQueues", Fault: ServerError, Rate: 0.3, Seed: 7})
	const n = 100
	for range n {
		req, _ := http.NewRequest(http.MethodPost, p.URL, strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", "AmazonSQS.ListQueues")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if i := p.Injected("ListQueues", ServerError); i == 0 || i == n || len(tg.requests())+i != n {
		t.Errorf("injected %d of %d, %d reached the target: want a share of them faulted", i, n, len(tg.requests()))
	}
}

// Hang holds the request until the client gives up; Delay forwards it
// late.
func TestHangAndDelay(t *testing.T) {
	t.Parallel()
	tg := newTarget(t)
	p := StartT(t, tg.srv.URL)
	p.Add(Rule{Operation: "GetQueueUrl", Fault: Hang})
	p.Add(Rule{Operation: "ListQueues", Fault: Delay, Delay: 10 * time.Millisecond})
	c := sqsClient(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("q")})
		done <- err
	}()
	for p.Seen("GetQueueUrl") == 0 {
		time.Sleep(time.Millisecond) // until the hung call reached the proxy
	}
	// The hung call is under way while another one is delayed and answered.
	if err := listQueues(context.Background(), c); err != nil {
		t.Errorf("delayed call: %v", err)
	}
	select {
	case err := <-done:
		t.Fatalf("hung call returned %v while hanging", err)
	default:
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("hung call ended with %v, want the client's cancellation", err)
	}
	if got := tg.requests(); len(got) != 1 || !strings.HasPrefix(got[0], "ListQueues") {
		t.Errorf("target got %q, want only the delayed call", got)
	}
}
