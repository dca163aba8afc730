package lambdaemu

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiFixture is one environment's Runtime API without a process: the test
// plays the runtime over HTTP, the way a bootstrap would.
type apiFixture struct {
	env *environment
	url string
}

func newAPIFixture(t *testing.T) *apiFixture {
	t.Helper()
	e := &environment{
		fn:         Function{Name: "f", Arn: "arn:aws:lambda:eu-west-1:123456789012:function:f", Timeout: 42 * time.Second},
		log:        slog.New(slog.DiscardHandler),
		next:       make(chan *invocation),
		exited:     make(chan struct{}),
		initFailed: make(chan struct{}),
		stopping:   make(chan struct{}),
		started:    time.Now(),
	}
	srv := httptest.NewServer(e.routes())
	t.Cleanup(srv.Close)
	return &apiFixture{env: e, url: srv.URL + "/2018-06-01/runtime"}
}

// deliver queues an invocation and returns it with the runtime's GET /next
// response once the runtime has it.
func (f *apiFixture) deliver(t *testing.T, payload string) (*invocation, *http.Response, []byte) {
	t.Helper()
	type got struct {
		resp *http.Response
		body []byte
		err  error
	}
	ch := make(chan got, 1)
	go func() {
		resp, err := http.Get(f.url + "/invocation/next")
		if err != nil {
			ch <- got{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		ch <- got{resp, body, err}
	}()
	inv := newInvocation(newUUID(), []byte(payload))
	select {
	case f.env.next <- inv:
	case <-time.After(10 * time.Second):
		t.Fatal("the runtime's GET /next never asked")
	}
	<-inv.accepted
	g := <-ch
	if g.err != nil {
		t.Fatal(g.err)
	}
	return inv, g.resp, g.body
}

func (f *apiFixture) post(t *testing.T, path, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func outcomeOf(t *testing.T, inv *invocation) outcome {
	t.Helper()
	select {
	case out := <-inv.done:
		return out
	case <-time.After(10 * time.Second):
		t.Fatal("the invocation got no outcome")
		return outcome{}
	}
}

// TestRuntimeAPINextAndResponse checks the wire shapes of a successful
// invocation: GET /next's headers and body, POST /response's answers, and
// that an invocation is answered once only.
func TestRuntimeAPINextAndResponse(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	before := time.Now()
	inv, resp, body := f.deliver(t, `{"hello":"world"}`)
	if resp.StatusCode != http.StatusOK || string(body) != `{"hello":"world"}` {
		t.Fatalf("GET /next = %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Lambda-Runtime-Aws-Request-Id"); got != inv.id || !uuidRe.MatchString(got) {
		t.Errorf("request id header = %q, want %q", got, inv.id)
	}
	if got := resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"); got != f.env.fn.Arn {
		t.Errorf("function ARN header = %q", got)
	}
	ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	if lo := before.Add(42 * time.Second).UnixMilli(); err != nil || ms < lo-1 || ms > time.Now().Add(42*time.Second).UnixMilli() {
		t.Errorf("deadline header = %q, want about now + 42s in Unix ms", resp.Header.Get("Lambda-Runtime-Deadline-Ms"))
	}
	if got := resp.Header.Get("Lambda-Runtime-Trace-Id"); !strings.HasPrefix(got, "Root=1-") || !strings.HasSuffix(got, ";Sampled=0") {
		t.Errorf("trace header = %q", got)
	}

	if code, body := f.post(t, "/invocation/not-the-id/response", `{}`, nil); code != http.StatusBadRequest || !strings.Contains(body, "InvalidRequestID") {
		t.Errorf("response for an unknown id = %d %s, want 400 InvalidRequestID", code, body)
	}
	if code, body := f.post(t, "/invocation/"+inv.id+"/response", `{"ok":true}`, nil); code != http.StatusAccepted || body != `{"status":"OK"}` {
		t.Errorf("POST /response = %d %s, want 202", code, body)
	}
	if out := outcomeOf(t, inv); out.err != nil || string(out.result) != `{"ok":true}` {
		t.Errorf("outcome = %s, %v", out.result, out.err)
	}
	if code, _ := f.post(t, "/invocation/"+inv.id+"/response", `{"again":true}`, nil); code != http.StatusBadRequest {
		t.Errorf("a second response for the same id = %d, want 400", code)
	}
}

// TestRuntimeAPIError: POST /error with an error document, or with a plain
// body and the type in the header.
func TestRuntimeAPIError(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	for _, tc := range []struct {
		name, body, header, wantType, wantMsg string
	}{
		{"document", `{"errorMessage":"no such key","errorType":"NoSuchKey","stackTrace":[]}`, "", "NoSuchKey", "no such key"},
		{"header type, plain body", "disk full", "Runtime.Unknown", "Runtime.Unknown", "disk full"},
		{"nothing", "", "", "Unhandled", ""},
	} {
		inv, _, _ := f.deliver(t, `{}`)
		h := http.Header{}
		if tc.header != "" {
			h.Set("Lambda-Runtime-Function-Error-Type", tc.header)
		}
		if code, _ := f.post(t, "/invocation/"+inv.id+"/error", tc.body, h); code != http.StatusAccepted {
			t.Errorf("%s: POST /error = %d, want 202", tc.name, code)
		}
		var fe *FunctionError
		if out := outcomeOf(t, inv); !errors.As(out.err, &fe) || fe.Type != tc.wantType || fe.Message != tc.wantMsg || fe.RequestID != inv.id {
			t.Errorf("%s: outcome error = %#v, want type %q message %q", tc.name, out.err, tc.wantType, tc.wantMsg)
		}
	}
}

// TestRuntimeAPIStreamedResponseError: a response whose body fails midway
// carries the error in the trailers (as aws-lambda-go sends it).
func TestRuntimeAPIStreamedResponseError(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	inv, _, _ := f.deliver(t, `{}`)
	doc, _ := json.Marshal(errorDoc{Message: "stream broke", Type: "StreamError"})
	req, err := http.NewRequest(http.MethodPost, f.url+"/invocation/"+inv.id+"/response", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Trailer = http.Header{"Lambda-Runtime-Function-Error-Type": nil, "Lambda-Runtime-Function-Error-Body": nil}
	req.Body = io.NopCloser(&trailerSetter{r: strings.NewReader("partial"), set: func() {
		req.Trailer.Set("Lambda-Runtime-Function-Error-Type", "StreamError")
		req.Trailer.Set("Lambda-Runtime-Function-Error-Body", base64.StdEncoding.EncodeToString(doc))
	}})
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var fe *FunctionError
	if out := outcomeOf(t, inv); !errors.As(out.err, &fe) || fe.Type != "StreamError" || fe.Message != "stream broke" {
		t.Fatalf("outcome = %q, %#v; want the trailers' StreamError", out.result, out.err)
	}
}

// TestRuntimeAPIResponseTooLarge: a response above 6 MB is refused with 413
// and fails the invocation.
func TestRuntimeAPIResponseTooLarge(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	inv, _, _ := f.deliver(t, `{}`)
	code, _ := f.post(t, "/invocation/"+inv.id+"/response", `"`+strings.Repeat("x", MaxPayloadBytes)+`"`, nil)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 6 MB + 2 bytes = %d, want 413", code)
	}
	var fe *FunctionError
	if out := outcomeOf(t, inv); !errors.As(out.err, &fe) || fe.Type != "Function.ResponseSizeTooLarge" {
		t.Errorf("outcome error = %v, want Function.ResponseSizeTooLarge", out.err)
	}
}

// TestRuntimeAPIInitError: POST /init/error is accepted and recorded once.
func TestRuntimeAPIInitError(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t)
	h := http.Header{"Lambda-Runtime-Function-Error-Type": {"Runtime.NoConfig"}}
	if code, body := f.post(t, "/init/error", `{"errorMessage":"EDP_CLUSTER: required","errorType":"ConfigError"}`, h); code != http.StatusAccepted || body != `{"status":"OK"}` {
		t.Fatalf("POST /init/error = %d %s, want 202", code, body)
	}
	f.post(t, "/init/error", `{"errorMessage":"second","errorType":"Other"}`, nil)
	select {
	case <-f.env.initFailed:
	default:
		t.Fatal("init error not signalled")
	}
	fe := f.env.initError("req-1")
	if fe.Type != "ConfigError" || fe.Message != "EDP_CLUSTER: required" || fe.RequestID != "req-1" {
		t.Errorf("init error = %+v, want the first report", fe)
	}
	if !bytes.Contains(fe.Payload, []byte(`"errorType":"ConfigError"`)) {
		t.Errorf("payload = %s", fe.Payload)
	}
}

// trailerSetter calls set when its reader is drained, before returning EOF,
// so the HTTP client sends the trailers it set.
type trailerSetter struct {
	r   io.Reader
	set func()
}

func (ts *trailerSetter) Read(p []byte) (int, error) {
	n, err := ts.r.Read(p)
	if err == io.EOF && ts.set != nil {
		ts.set()
		ts.set = nil
	}
	return n, err
}
