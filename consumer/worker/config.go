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

// Defaults of Config fields left at their zero value (SetDefaults).
const (
	DefaultWaitTime          = 20 * time.Second
	DefaultEmptyReceives     = 3
	DefaultVisibilityTimeout = 300 * time.Second
	DefaultJobTimeout        = 15 * time.Minute
	DefaultRetryDelay        = 10 * time.Second
	// DefaultGrace is the longest grace whose stop still ends inside the
	// task's stop timeout: MaxGrace, 100 s (see stop.go).
	DefaultGrace = MaxGrace
)

// Limits SQS imposes, and the consumer's own.
const (
	maxBatch       = 10
	maxWaitTime    = 20 * time.Second
	maxVisibility  = 12 * time.Hour
	minVisibility  = 2 * time.Second // heartbeats every half of it need at least a second
	maxConcurrency = 1000
)

// Config configures a Consumer. The zero value of every optional field
// means its documented default (SetDefaults); New applies the defaults and
// validates the whole once.
//
// Validate's errors name the fields; the consumer's drain and serve
// commands, which set them from flags and environment variables, name
// those in their own messages.
type Config struct {
	// QueueURL is the work queue (required).
	QueueURL string
	// DLQURL is the dead-letter queue that permanent failures are moved to
	// at once (required).
	DLQURL string

	// Concurrency is the number of jobs run at once, 1..1000, or 0 for
	// runtime.NumCPU() (the default). The consumer never holds more
	// messages than this.
	Concurrency int
	// WaitTime is the long-poll wait of each receive, whole seconds in
	// 1..20 s; default 20 s.
	WaitTime time.Duration
	// VisibilityTimeout must equal the queue's, whole seconds in 2 s..12 h;
	// default 300 s. A running job's message is extended by this much
	// every half of it.
	VisibilityTimeout time.Duration
	// JobTimeout bounds one job, (0, 12 h]; default 15 min. A job that
	// times out is a transient failure.
	JobTimeout time.Duration
	// RetryDelay is how long a message that failed transiently stays
	// hidden, doubled per earlier receive and capped at VisibilityTimeout;
	// at least 1 s (SQS counts whole seconds; parts round up); default
	// 10 s.
	RetryDelay time.Duration
	// Grace is how long in-flight jobs may still run after a stop signal
	// (counted from the signal) before they are cancelled and their
	// messages released; more than 0 and at most MaxGrace, which is also
	// the default.
	Grace time.Duration

	// EmptyReceives (drain mode) is how many empty receives in a row, with
	// no job in flight, end the drain once the queue's counts also show
	// nothing visible and nothing in flight (see Consumer.Drain); at least
	// 1; default 3.
	EmptyReceives int
	// MaxRunTime (drain mode) stops taking new messages after this long;
	// zero means no limit.
	MaxRunTime time.Duration

	// Logger receives one line per message and lifecycle events; default:
	// discard.
	Logger *slog.Logger
	// Metrics receives one EMF line per job; nil emits none.
	Metrics *emf.Writer
	// Protection is held while jobs are in flight in serve mode; nil (or a
	// Guard without a Setter, outside ECS) does nothing.
	Protection *ecsprotect.Guard
}

// SetDefaults sets every optional field left at its zero value to its
// default.
func (c *Config) SetDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.VisibilityTimeout == 0 {
		c.VisibilityTimeout = DefaultVisibilityTimeout
	}
	if c.JobTimeout == 0 {
		c.JobTimeout = DefaultJobTimeout
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.EmptyReceives == 0 {
		c.EmptyReceives = DefaultEmptyReceives
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// A FieldError is one invalid Config field. Validate returns them joined
// (errors.Join), each naming the field; a caller that took the settings
// from elsewhere (the consumer's flags and environment variables) names
// its own source for each Field.
type FieldError struct {
	// Field is the Config field, e.g. "WaitTime".
	Field string
	// Value is the field's value.
	Value any
	// Want says what a valid value is.
	Want string
}

func (e *FieldError) Error() string {
	if s, ok := e.Value.(string); ok {
		return fmt.Sprintf("%s %q: want %s", e.Field, s, e.Want)
	}
	return fmt.Sprintf("%s %v: want %s", e.Field, e.Value, e.Want)
}

// Validate reports every invalid field at once, each a *FieldError. It
// does not apply defaults: a zero that SetDefaults would replace is
// reported, as a zero the user gave explicitly must be.
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, want string) {
		errs = append(errs, &FieldError{Field: field, Value: value, Want: want})
	}
	if c.QueueURL == "" {
		bad("QueueURL", c.QueueURL, "the work queue's URL (required)")
	}
	if c.DLQURL == "" {
		bad("DLQURL", c.DLQURL, "the dead-letter queue's URL (required)")
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		bad("Concurrency", c.Concurrency, fmt.Sprintf("0 (CPUs) to %d", maxConcurrency))
	}
	if !wholeSeconds(c.WaitTime, time.Second, maxWaitTime) {
		bad("WaitTime", c.WaitTime, "1 to 20 whole seconds")
	}
	if !wholeSeconds(c.VisibilityTimeout, minVisibility, maxVisibility) {
		bad("VisibilityTimeout", c.VisibilityTimeout, "2 to 43200 whole seconds")
	}
	if c.JobTimeout <= 0 || c.JobTimeout > maxVisibility {
		bad("JobTimeout", c.JobTimeout, "more than 0 and at most 12h")
	}
	if c.RetryDelay < time.Second {
		// SQS hides messages for whole seconds: less would retry at once.
		bad("RetryDelay", c.RetryDelay, "at least 1s")
	}
	if c.Grace <= 0 || c.Grace > MaxGrace {
		bad("Grace", c.Grace, fmt.Sprintf("more than 0 and at most %v, so that a stop ends within the task's %v stop timeout", MaxGrace, names.StopTimeout))
	}
	if c.EmptyReceives < 1 {
		bad("EmptyReceives", c.EmptyReceives, "at least 1")
	}
	if c.MaxRunTime < 0 {
		bad("MaxRunTime", c.MaxRunTime, "0 (no limit) or more")
	}
	return errors.Join(errs...)
}

// wholeSeconds reports whether d is a whole number of seconds in [lo, hi].
func wholeSeconds(d, lo, hi time.Duration) bool {
	return d >= lo && d <= hi && d%time.Second == 0
}
