package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"time"

	"github.com/edp-pipelines/edp/consumer/ecsprotect"
	"github.com/edp-pipelines/edp/internal/emf"
	"github.com/edp-pipelines/edp/internal/flagenv"
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
// Each field is a setting of the consumer's drain and serve commands: the
// flag named below, or the environment variable derived from it (EDP_ + the
// flag in upper case, "-" as "_"; see internal/flagenv). Validate's
// messages name both.
type Config struct {
	// QueueURL is the work queue (required; -queue-url).
	QueueURL string
	// DLQURL is the dead-letter queue that permanent failures are moved to
	// at once (required; -dlq-url).
	DLQURL string

	// Concurrency is the number of jobs run at once, 1..1000, or 0 for
	// runtime.NumCPU() (the default; -concurrency). The consumer never
	// holds more messages than this.
	Concurrency int
	// WaitTime is the long-poll wait of each receive, whole seconds in
	// 1..20 s; default 20 s (-wait-seconds, in seconds).
	WaitTime time.Duration
	// VisibilityTimeout must equal the queue's, whole seconds in 2 s..12 h;
	// default 300 s (-visibility-timeout, in seconds). A running job's
	// message is extended by this much every half of it.
	VisibilityTimeout time.Duration
	// JobTimeout bounds one job, (0, 12 h]; default 15 min (-job-timeout).
	// A job that times out is a transient failure.
	JobTimeout time.Duration
	// RetryDelay is how long a message that failed transiently stays
	// hidden, doubled per earlier receive and capped at VisibilityTimeout;
	// at least 1 s (SQS counts whole seconds; parts round up); default 10 s
	// (-retry-delay).
	RetryDelay time.Duration
	// Grace is how long in-flight jobs may still run after a stop signal
	// (counted from the signal) before they are cancelled and their
	// messages released; more than 0 and at most MaxGrace, which is also
	// the default (-grace).
	Grace time.Duration

	// EmptyReceives (drain mode) is how many empty receives in a row, with
	// no job in flight, end the drain once the queue's counts also show
	// nothing visible and nothing in flight (see Consumer.Drain); at least
	// 1; default 3 (-empty-receives).
	EmptyReceives int
	// MaxRunTime (drain mode) stops taking new messages after this long;
	// zero means no limit (-max-run-time).
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

// Validate reports every invalid setting at once, each naming its
// environment variable and flag. It does not apply defaults: a zero that
// SetDefaults would replace is reported, as a zero the user gave
// explicitly must be.
func (c Config) Validate() error {
	var errs []error
	bad := func(flag string, value any, want string) {
		errs = append(errs, fmt.Errorf("%s / -%s %v: want %s", flagenv.Name(flag), flag, value, want))
	}
	for _, r := range []struct{ value, flag string }{{c.QueueURL, "queue-url"}, {c.DLQURL, "dlq-url"}} {
		if r.value == "" {
			errs = append(errs, fmt.Errorf("%s (or -%s) is required", flagenv.Name(r.flag), r.flag))
		}
	}
	if c.Concurrency < 0 || c.Concurrency > maxConcurrency {
		bad("concurrency", c.Concurrency, fmt.Sprintf("0 (CPUs) to %d", maxConcurrency))
	}
	if !wholeSeconds(c.WaitTime, time.Second, maxWaitTime) {
		bad("wait-seconds", seconds(c.WaitTime), "1 to 20")
	}
	if !wholeSeconds(c.VisibilityTimeout, minVisibility, maxVisibility) {
		bad("visibility-timeout", seconds(c.VisibilityTimeout), "2 to 43200 seconds")
	}
	if c.JobTimeout <= 0 || c.JobTimeout > maxVisibility {
		bad("job-timeout", c.JobTimeout, "more than 0 and at most 12h")
	}
	if c.RetryDelay < time.Second {
		// SQS hides messages for whole seconds: less would retry at once.
		bad("retry-delay", c.RetryDelay, "at least 1s")
	}
	if c.Grace <= 0 || c.Grace > MaxGrace {
		bad("grace", c.Grace, fmt.Sprintf("more than 0 and at most %v, so that a stop ends within the task's %v stop timeout", MaxGrace, names.StopTimeout))
	}
	if c.EmptyReceives < 1 {
		bad("empty-receives", c.EmptyReceives, "at least 1")
	}
	if c.MaxRunTime < 0 {
		bad("max-run-time", c.MaxRunTime, "0 (no limit) or more")
	}
	return errors.Join(errs...)
}

// wholeSeconds reports whether d is a whole number of seconds in [lo, hi].
func wholeSeconds(d, lo, hi time.Duration) bool {
	return d >= lo && d <= hi && d%time.Second == 0
}

// seconds formats d as the number of seconds a flag in seconds took: "30",
// "1.5".
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}
