package command

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Class is what a job's end means for its message.
type Class int

const (
	// Succeeded: exit status 0; the output directory is published.
	Succeeded Class = iota
	// Permanent: a retry cannot help (PermanentExitCodes); the message goes
	// to the dead-letter queue with the reason and the output's tail.
	Permanent
	// Transient: any other status, a death by signal, a timeout; the
	// message is retried after the retry delay, up to the queue's
	// maxReceiveCount.
	Transient
	// Stopped: the consumer is stopping and the job ended after its
	// SIGTERM; the message is released at once for another consumer.
	Stopped
)

// PermanentExitCodes are the exit statuses that mean "this config cannot
// run": sysexits.h's usage, data, input and configuration errors. Every
// other non-zero status is transient.
var PermanentExitCodes = map[int]string{
	64: "EX_USAGE",
	65: "EX_DATAERR",
	66: "EX_NOINPUT",
	78: "EX_CONFIG",
}

// Classify says what o means. A job that timed out is transient whatever
// its status; a job stopped with its consumer is Stopped, unless it
// exited 0 (its work is done: publish it) or with a permanent status.
func Classify(o Outcome) Class {
	switch {
	case o.TimedOut:
		return Transient
	case o.Signal == "" && o.ExitCode == 0:
		return Succeeded
	case o.Signal == "" && isPermanent(o.ExitCode):
		return Permanent
	case o.Stopped:
		return Stopped
	default:
		return Transient
	}
}

func isPermanent(code int) bool {
	_, ok := PermanentExitCodes[code]
	return ok
}

// Describe is a one-line account of how the job ended, for errors and the
// record: "exit status 65 (EX_DATAERR, permanent)", "timed out after 15m0s;
// killed".
func Describe(o Outcome, timeout string) string {
	var b strings.Builder
	if o.TimedOut {
		b.WriteString("timed out after " + timeout + "; ")
	}
	if o.Stopped && !o.TimedOut {
		b.WriteString("stopped with the consumer; ")
	}
	b.WriteString(o.Status())
	if name, ok := PermanentExitCodes[o.ExitCode]; ok && o.Signal == "" {
		fmt.Fprintf(&b, " (%s)", name)
	}
	if o.Killed {
		b.WriteString(", killed")
	}
	return b.String()
}

// PermanentCodesText lists PermanentExitCodes for messages: "64, 65, 66, 78".
func PermanentCodesText() string {
	codes := make([]int, 0, len(PermanentExitCodes))
	for c := range PermanentExitCodes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ", ")
}
