// Package faultproxy is a loopback HTTP reverse proxy for tests that puts
// faults between an AWS SDK client and an emulator such as moto_server:
// server errors, throttling, connection resets, lost responses (the request
// is forwarded and carried out, then the connection is dropped before the
// answer), delays, hangs and outages. It is standard-library only.
//
// Faults are Rules, matched per operation: the SQS JSON protocol names the
// operation in the X-Amz-Target header ("AmazonSQS.ReceiveMessage"), the
// query protocols in the Action parameter of the URL, and S3's path-style
// REST calls by their method and shape ("GetObject", "ListObjectsV2", see
// Operation); anything else is matched with Rule.Match. A request no rule
// claims is forwarded untouched, so one proxy can sit in front of every
// service a process uses (point AWS_ENDPOINT_URL at URL).
//
// The proxy counts what it saw and what it did, per operation, so a test can
// assert that a fault really happened rather than trusting the timing.
package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what the proxy does to a request a rule claims.
type Fault int

// The faults.
const (
	// ServerError answers 500 InternalError without forwarding the request.
	ServerError Fault = iota + 1
	// Throttle answers 400 ThrottlingException (SlowDown, 503, for
	// requests that are not AWS JSON) without forwarding the request.
	Throttle
	// Reset closes the connection with a TCP reset before forwarding: the
	// request never reaches the target.
	Reset
	// LoseResponse forwards the request, waits for the target's answer and
	// then resets the connection: the call took effect, the client cannot
	// know. Rule.MatchResponse narrows it to some answers.
	LoseResponse
	// Delay waits Rule.Delay, then forwards the request.
	Delay
	// Hang never answers: it holds the request until the client gives up
	// or the proxy is closed. Nothing is forwarded.
	Hang
)

func (f Fault) String() string {
	switch f {
	case ServerError:
		return "server-error"
	case Throttle:
		return "throttle"
	case Reset:
		return "reset"
	case LoseResponse:
		return "lose-response"
	case Delay:
		return "delay"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Rule says which requests get which fault.
type Rule struct {
	// Operation is the API operation to match ("ReceiveMessage", see
	// Operation); empty matches every operation.
	Operation string
	// Match, when set, must also accept the request. body is the request
	// body (already read; the function must not keep it).
	Match func(r *http.Request, body []byte) bool
	// Fault is what happens to a claimed request.
	Fault Fault
	// Delay is the wait of a Delay fault.
	Delay time.Duration
	// MatchResponse, for LoseResponse only, must accept the target's answer
	// for it to be lost; other answers pass through and do not count
	// towards Times. For example, lose only receives that carried messages.
	MatchResponse func(status int, body []byte) bool
	// Rate is the share of matching requests that get the fault, in (0, 1];
	// 0 means all. The draw is seeded by Seed, so a run is repeatable for a
	// given order of requests.
	Rate float64
	// Seed seeds the Rate draws.
	Seed uint64
	// Times is how many faults the rule injects before it retires; 0 means
	// no limit.
	Times int
}

// Outage is a Rule that resets every request until it is removed: the
// endpoint is down.
func Outage() Rule { return Rule{Fault: Reset} }

type rule struct {
	Rule
	id       int
	rng      *rand.Rand
	injected int
}

// Proxy is one running fault proxy.
type Proxy struct {
	// URL is the proxy's base URL (http://127.0.0.1:port).
	URL string

	target *url.URL
	srv    *http.Server
	client *http.Client
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	rules    []*rule
	nextID   int
	seen     map[string]int
	injected map[string]map[Fault]int
}

// Start starts a proxy on a free loopback port that forwards to target
// (e.g. moto_server's endpoint).
func Start(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("fault proxy target %q: want an absolute URL", target)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fault proxy listen: %w", err)
	}
	p := &Proxy{
		URL:    "http://" + l.Addr().String(),
		target: u,
		client: &http.Client{
			Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64},
			// The target's redirects are the client's business.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		closed:   make(chan struct{}),
		seen:     map[string]int{},
		injected: map[string]map[Fault]int{},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// StartT starts a proxy for a test and closes it when the test ends.
func StartT(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Close stops the proxy; hanging requests end. It is safe to call twice.
func (p *Proxy) Close() {
	p.once.Do(func() {
		close(p.closed)
		_ = p.srv.Close()
		p.client.CloseIdleConnections()
	})
}

// Add installs r after the rules already there (the first rule that claims
// a request wins) and returns a function that removes it again.
func (p *Proxy) Add(r Rule) (remove func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	nr := &rule{Rule: r, id: p.nextID, rng: rand.New(rand.NewPCG(r.Seed, uint64(p.nextID)))}
	p.rules = append(p.rules, nr)
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, x := range p.rules {
			if x.id == nr.id {
				p.rules = append(p.rules[:i:i], p.rules[i+1:]...)
				return
			}
		}
	}
}

// Seen is how many requests for op (as Operation names it; "" for those it
// cannot name) the proxy received.
func (p *Proxy) Seen(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[op]
}

// SeenAll is Seen of every operation the proxy received, a copy.
func (p *Proxy) SeenAll() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.seen))
	for op, n := range p.seen {
		out[op] = n
	}
	return out
}

// Injected is how many faults of kind f the proxy injected into requests
// for op.
func (p *Proxy) Injected(op string, f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[op][f]
}

// Operation names the API operation of an AWS request: the part after the
// dot of X-Amz-Target (AWS JSON protocols, e.g. SQS), else the Action
// parameter of the URL (query protocols), else, for a signed S3 request
// (it carries X-Amz-Content-Sha256) in path style, the object or bucket
// operation its method and shape name (s3Operation), else "".
func Operation(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	q := r.URL.Query()
	if a := q.Get("Action"); a != "" {
		return a
	}
	if r.Header.Get("X-Amz-Content-Sha256") == "" {
		return ""
	}
	return s3Operation(r.Method, r.URL.Path, q, r.Header.Get("X-Amz-Copy-Source") != "")
}

// s3Operation names the common S3 operations of a path-style request
// (/bucket or /bucket/key): the x-id parameter the AWS SDKs add
// ("?x-id=GetObject"), else the method and shape; sub-resources it does
// not know are "".
func s3Operation(method, path string, q url.Values, copySource bool) string {
	if id := q.Get("x-id"); id != "" {
		return id
	}
	bucket, key, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if bucket == "" {
		return ""
	}
	if key == "" {
		switch {
		case method == http.MethodGet && q.Has("list-type"):
			return "ListObjectsV2"
		case method == http.MethodGet && q.Has("versions"):
			return "ListObjectVersions"
		case method == http.MethodPost && q.Has("delete"):
			return "DeleteObjects"
		case len(q) > 0:
			return ""
		case method == http.MethodGet:
			return "ListObjects"
		case method == http.MethodHead:
			return "HeadBucket"
		}
		return ""
	}
	if len(q) > 0 && !(len(q) == 1 && q.Has("versionId")) {
		return ""
	}
	switch method {
	case http.MethodGet:
		return "GetObject"
	case http.MethodHead:
		return "HeadObject"
	case http.MethodPut:
		if copySource {
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodDelete:
		return "DeleteObject"
	}
	return ""
}

// ServeHTTP applies the first rule that claims the request, else forwards
// it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "fault proxy: read request: "+err.Error(), http.StatusBadGateway)
		return
	}
	op := Operation(r)
	ru := p.claim(op, r, body)
	if ru == nil {
		p.forwardAndAnswer(w, r, body)
		return
	}
	isJSON := r.Header.Get("X-Amz-Target") != ""
	switch ru.Fault {
	case ServerError:
		p.count(ru, op)
		writeError(w, isJSON, http.StatusInternalServerError, "InternalError", "injected server error")
	case Throttle:
		p.count(ru, op)
		if isJSON {
			writeError(w, true, http.StatusBadRequest, "ThrottlingException", "Rate exceeded (injected)")
		} else {
			writeError(w, false, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate (injected)")
		}
	case Reset:
		p.count(ru, op)
		reset(w)
	case Hang:
		p.count(ru, op)
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		reset(w)
	case Delay:
		p.count(ru, op)
		select {
		case <-time.After(ru.Delay):
		case <-r.Context().Done():
			return
		case <-p.closed:
			reset(w)
			return
		}
		p.forwardAndAnswer(w, r, body)
	case LoseResponse:
		// The target must carry the call out even if the client gives up
		// meanwhile: that is the point of a lost response.
		resp, rb, err := p.forward(context.WithoutCancel(r.Context()), r, body)
		if err != nil {
			http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
			return
		}
		if ru.MatchResponse != nil && !ru.MatchResponse(resp.StatusCode, rb) {
			p.release(ru)
			answer(w, resp, rb)
			return
		}
		p.count(ru, op)
		reset(w)
	default:
		p.release(ru)
		p.forwardAndAnswer(w, r, body)
	}
}

// claim picks the rule for a request and reserves one of its Times; a
// LoseResponse rule whose answer turns out not to match gives it back.
func (p *Proxy) claim(op string, r *http.Request, body []byte) *rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[op]++
	for _, ru := range p.rules {
		if ru.Operation != "" && ru.Operation != op {
			continue
		}
		if ru.Times > 0 && ru.injected >= ru.Times {
			continue
		}
		if ru.Match != nil && !ru.Match(r, body) {
			continue
		}
		if ru.Rate > 0 && ru.Rate < 1 && ru.rng.Float64() >= ru.Rate {
			continue
		}
		ru.injected++
		return ru
	}
	return nil
}

func (p *Proxy) release(ru *rule) {
	p.mu.Lock()
	ru.injected--
	p.mu.Unlock()
}

func (p *Proxy) count(ru *rule, op string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.injected[op] == nil {
		p.injected[op] = map[Fault]int{}
	}
	p.injected[op][ru.Fault]++
}

// hopHeaders are connection-level headers a proxy must not pass on.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade"}

// forward sends the request to the target and reads the whole answer.
func (p *Proxy) forward(ctx context.Context, r *http.Request, body []byte) (*http.Response, []byte, error) {
	u := *p.target
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	// The client signed its own Host; keep it (the emulator does not care,
	// and a real endpoint behind a proxy would need it).
	out.Host = r.Host
	out.ContentLength = int64(len(body))
	resp, err := p.client.Do(out)
	if err != nil {
		return nil, nil, fmt.Errorf("forward %s: %w", Operation(r), err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read answer of %s: %w", Operation(r), err)
	}
	return resp, rb, nil
}

func (p *Proxy) forwardAndAnswer(w http.ResponseWriter, r *http.Request, body []byte) {
	resp, rb, err := p.forward(r.Context(), r, body)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return // the client went away
		}
		http.Error(w, "fault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	answer(w, resp, rb)
}

func answer(w http.ResponseWriter, resp *http.Response, body []byte) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
}

// writeError answers in the error shape of the request's protocol: AWS JSON
// (with the query-compatible header SQS sends) or the XML of S3 and the
// query protocols.
func writeError(w http.ResponseWriter, isJSON bool, status int, code, msg string) {
	if isJSON {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Query-Error", code+";Sender")
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#" + code, "message": msg})
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, msg)
}

// reset drops the client's connection with a TCP reset, so it sees the
// call fail rather than wait.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
