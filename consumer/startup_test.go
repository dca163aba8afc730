package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"
)

// logLines decodes a JSON log into msg/check pairs, in order.
func logLines(t *testing.T, b *bytes.Buffer) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if l == "" {
			continue
		}
		var rec struct{ Msg, Check string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, rec.Msg+" "+rec.Check)
	}
	return out
}

func TestRunStartChecks(t *testing.T) {
	t.Parallel()
	const timeout = 50 * time.Millisecond
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ok := func(ctx context.Context) error {
		if d, has := ctx.Deadline(); !has || time.Until(d) > timeout {
			return errors.New("no deadline of its own")
		}
		return nil
	}
	boom := func(context.Context) error { return errors.New("boom") }
	mustNotRun := func(context.Context) error { panic("a check ran after a failed one") }

	tests := map[string]struct {
		checks   []func(context.Context) error
		wantErr  string // "" = no error
		wantLogs []string
	}{
		"all pass": {checks: []func(context.Context) error{ok, ok},
			wantLogs: []string{"start-up check queue", "start-up check passed queue", "start-up check bucket", "start-up check passed bucket"}},
		"no answer": {checks: []func(context.Context) error{hang, mustNotRun},
			wantErr: "queue q: no answer within 50ms: context deadline exceeded", wantLogs: []string{"start-up check queue"}},
		"second hangs": {checks: []func(context.Context) error{ok, hang},
			wantErr:  "bucket b: no answer within 50ms",
			wantLogs: []string{"start-up check queue", "start-up check passed queue", "start-up check bucket"}},
		"refused": {checks: []func(context.Context) error{boom, mustNotRun},
			wantErr: "queue q: boom", wantLogs: []string{"start-up check queue"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, nil))
			resources := []startCheck{
				{name: "queue", resource: "queue q", attrs: []any{"queue_url", "q"}},
				{name: "bucket", resource: "bucket b", attrs: []any{"bucket", "b"}},
			}
			for i, run := range tt.checks {
				resources[i].run = run
			}
			err := runStartChecks(context.Background(), log, timeout, resources...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantLogs, logLines(t, &logs)); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
		})
	}
}

// A deadline that passed is a timeout the caller can test for; a stop by the
// caller's context is not reported as "no answer".
func TestRunStartChecksTellsTimeoutFromStop(t *testing.T) {
	t.Parallel()
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	err := runStartChecks(context.Background(), slog.New(slog.DiscardHandler), time.Millisecond,
		startCheck{name: "queue", resource: "queue q", run: hang})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("timeout: %v, want it to wrap context.DeadlineExceeded", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = runStartChecks(ctx, slog.New(slog.DiscardHandler), time.Hour,
		startCheck{name: "queue", resource: "queue q", run: hang})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "no answer") {
		t.Errorf("stopped: %v, want context.Canceled and no %q", err, "no answer")
	}
}

// fakeS3 answers every request with status (and header), recording what it
// was asked. HEAD answers have no body, as S3's have none.
func fakeS3(t *testing.T, status int, header map[string]string) (*s3.Client, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	client := s3.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: aws.String(srv.URL),
	}, func(o *s3.Options) { o.UsePathStyle = true })
	return client, &asked
}

// The real SDK client against a fake S3: the bucket check tells a missing
// bucket, a denied one and one in another region apart, naming the setting
// and the permission.
func TestCheckBucket(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status  int
		header  map[string]string
		wantErr []string // nil = no error
	}{
		"readable":       {status: http.StatusOK},
		"not found":      {status: http.StatusNotFound, wantErr: []string{"not found (check EDP_BUCKET / -bucket)", "StatusCode: 404"}},
		"access denied":  {status: http.StatusForbidden, wantErr: []string{"access denied: the task role needs s3:ListBucket on the bucket", "EDP_BUCKET"}},
		"another region": {status: http.StatusMovedPermanently, header: map[string]string{"x-amz-bucket-region": "eu-west-1"}, wantErr: []string{`in region "eu-west-1", not the consumer's`}},
		"other":          {status: http.StatusBadRequest, wantErr: []string{"head bucket: ", "StatusCode: 400"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			client, asked := fakeS3(t, tt.status, tt.header)
			err := checkBucket(context.Background(), client, "edp-pipelines")
			if diff := cmp.Diff([]string{"HEAD /edp-pipelines"}, *asked); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
