// Package failure holds the consumer's one mark of a failure that retrying
// cannot fix: ErrPermanent. Every route that must not be retried — a
// message no retry can make processable (consumer/event), a message for
// another bucket or a key that is not a config, a config that cannot run, a
// missing object, a panic (consumer/job, consumer/worker) — wraps it, and
// the worker moves a message whose error matches it to the dead-letter
// queue at once. One sentinel, defined below every package that makes or
// reads it, so that no translation between two marks can be forgotten.
//
// Standard library only.
package failure

import "errors"

// ErrPermanent is matched (errors.Is) by every error that retrying cannot
// fix. Any other error is transient.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent (errors.Is(result, ErrPermanent))
// without changing its message. It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string   { return e.err.Error() }
func (e permanentError) Unwrap() []error { return []error{e.err, ErrPermanent} }

// ErrStopped is matched by the error of a job that ended because its
// consumer is stopping (the job was asked to stop and did): retrying it
// later is right, and sooner is better, so the worker makes the message
// visible again at once instead of after the retry delay.
var ErrStopped = errors.New("stopped: the consumer is stopping")
