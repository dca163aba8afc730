package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/names"
)

// Defaults of Config fields left at their zero value.
const (
	DefaultWaitTime          = 20 * time.Second
	DefaultEmptyReceives     = 3
	DefaultVisibilityTimeout = 300 * time.Second
	DefaultJobTimeout        = 15 * time.Minute
	// DefaultGrace leaves 20 s of ECS's 120 s stopTimeout for releasing
	// unfinished messages and exiting, which take at most 13 s (5 s for
	// cancelled jobs to return, then stopBudget).
	DefaultGrace      = 100 * time.Second
	DefaultRetryDelay = 10 * time.Second
)

// Limits SQS imposes.
const (
	maxBatch      = 10
	maxWaitTime   = 20 * time.Second
	maxVisibility = 12 * time.Hour
	minVisibility = 2 * time.Second // heartbeats every half of it need at least a second
	deleteLinger  = 20 * time.Millisecond
	callTimeout   = 10 * time.Second // for settle calls made without the caller's ctx
	// stopBudget bounds all calls after the grace and releaseWait:
	// releasing stuck messages, the last deletes, dropping protection.
	stopBudget       = 8 * time.Second
	maxReceiveErrors = 10 // consecutive failed receives before giving up
)

// Config configures a Consumer. The zero value of every optional field
// means its documented default; New validates the whole once.
type Config struct {
	// QueueURL is the work queue (required).
	QueueURL string
	// DLQURL is the dead-letter queue that permanent failures are moved to
	// at once (required).
	DLQURL string
	// Bucket is the only bucket whose configs are processed (required);
	// messages naming another bucket are poison.
	Bucket string
	// ConfigPrefix is the only key prefix processed; default
	// names.ConfigPrefix. Keys must also end in one of names.ConfigSuffixes.
	ConfigPrefix string

	// Concurrency is the number of jobs run at once; default
	// runtime.NumCPU(). The consumer never holds more messages than this.
	Concurrency int
	// WaitTime is the long-poll wait of each receive, 1..20 s; default 20 s.
	WaitTime time.Duration
	// VisibilityTimeout must equal the queue's; default 300 s. A running
	// job's message is extended by this much every half of it.
	VisibilityTimeout time.Duration
	// JobTimeout bounds one job; default 15 min. A job that times out is a
	// transient failure.
	JobTimeout time.Duration
	// RetryDelay is how long a message that failed transiently stays
	// hidden, doubled per earlier receive and capped at VisibilityTimeout;
	// at least 1 s (SQS counts whole seconds; parts round up); default 10 s.
	RetryDelay time.Duration
	// Grace is how long in-flight jobs may still run after a stop signal
	// (counted from the signal) before they are cancelled and their
	// messages released; default 100 s.
	Grace time.Duration

	// EmptyReceives (drain mode) is how many empty receives in a row, with
	// no job in flight, end the drain once the queue's counts also show
	// nothing visible and nothing in flight (see Consumer.Drain); default 3.
	EmptyReceives int
	// MaxRunTime (drain mode) stops taking new messages after this long;
	// zero means no limit.
	MaxRunTime time.Duration

	// Logger receives one line per message and lifecycle events; default:
	// discard.
	Logger *slog.Logger
	// Metrics receives one EMF line per message; nil emits none.
	Metrics *emf.Writer
	// Protection is held while jobs are in flight in serve mode; nil (or a
	// Guard without a Setter, outside ECS) does nothing.
	Protection *ecsprotect.Guard

	// NewTicker creates the heartbeat ticker; default wraps time.NewTicker.
	// Tests inject a fake to drive heartbeats without waiting.
	NewTicker func(d time.Duration) Ticker
	// Now is the clock for metrics and logs; default time.Now.
	Now func() time.Time
}

// Ticker is the part of *time.Ticker the heartbeat uses.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }

// withDefaults returns c with defaults filled in, or the first invalid
// setting.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.QueueURL == "" {
		bad("queue URL is required")
	}
	if c.DLQURL == "" {
		bad("dead-letter queue URL is required")
	}
	if c.Bucket == "" {
		bad("bucket is required")
	}
	if c.ConfigPrefix == "" {
		c.ConfigPrefix = names.ConfigPrefix
	}
	if c.Concurrency == 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.Concurrency < 1 || c.Concurrency > 1000 {
		bad("concurrency %d out of range 1..1000", c.Concurrency)
	}
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.WaitTime < time.Second || c.WaitTime > maxWaitTime || c.WaitTime%time.Second != 0 {
		bad("wait time %v must be whole seconds in 1s..20s", c.WaitTime)
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if c.VisibilityTimeout < minVisibility || c.VisibilityTimeout > maxVisibility || c.VisibilityTimeout%time.Second != 0 {
		bad("visibility timeout %v must be whole seconds in 2s..12h", c.VisibilityTimeout)
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.JobTimeout < 0 || c.JobTimeout > maxVisibility {
		bad("job timeout %v out of range (0, 12h]", c.JobTimeout)
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.RetryDelay < time.Second {
		bad("retry delay %v must be at least 1s", c.RetryDelay)
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.Grace < 0 {
		bad("grace %v is negative", c.Grace)
	}
	if c.EmptyReceives == 0 {
		c.EmptyReceives = DefaultEmptyReceives
	}
	if c.EmptyReceives < 1 {
		bad("empty receives %d must be at least 1", c.EmptyReceives)
	}
	if c.MaxRunTime < 0 {
		bad("max run time %v is negative", c.MaxRunTime)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.NewTicker == nil {
		c.NewTicker = func(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, errors.Join(errs...)
}
