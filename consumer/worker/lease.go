package worker

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Message is one received message as a Processor sees it.
type Message struct {
	// ID is the SQS message id.
	ID string
	// Body is the message body, as sent.
	Body string
	// ReceiveCount is how often SQS has handed the message out, this time
	// included (ApproximateReceiveCount).
	ReceiveCount int
	// SentAt is when the message was sent to the queue (zero if unknown).
	SentAt time.Time

	lease *lease
}

// Begin tells the consumer that the Processor has decided to run a job
// for the message. fields describe the job in the Processor's own terms
// (job.QueueProcessor: s3_key and format); the worker does not read them,
// it puts them on the "job started" line, on every later line of the
// message and on its metrics line. eventTime is when the work was asked
// for (zero: the message's SentAt), from which the job's QueueWait is
// measured; the job's duration counts from here.
func (m *Message) Begin(ctx context.Context, eventTime time.Time, fields ...slog.Attr) {
	if m.lease != nil {
		m.lease.begin(ctx, eventTime, fields)
	}
}

// Logger returns the logger of the message's lines: message_id, and the
// Processor's fields once the job began.
func (m *Message) Logger() *slog.Logger {
	if m.lease == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.lease.logger()
}

// A lease is one received message from its receive until it is settled.
// It owns the message, the message's log fields and the right to settle
// it: the job's goroutine and the stop path may both try to, and the first
// to claim the lease (openLeases.claim) is the only one that does, so a
// message is deleted, dead-lettered or released exactly once.
type lease struct {
	msg types.Message

	mu        sync.Mutex   // guards the fields below: the job sets them, the heartbeat and settles read them
	log       *slog.Logger // message_id; the Processor's fields after begin
	fields    []slog.Attr  // the Processor's, from begin
	eventTime time.Time
	start     time.Time // when the job began; zero if it never did
	end       time.Time // when the Processor returned
	runID     string

	claimed bool // guarded by openLeases.mu
}

func newLease(m types.Message, log *slog.Logger) *lease {
	return &lease{msg: m, log: log.With("message_id", aws.ToString(m.MessageId))}
}

func (l *lease) id() string { return aws.ToString(l.msg.MessageId) }

func (l *lease) receiveCount() int {
	n, _ := strconv.Atoi(l.msg.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)])
	return n
}

func (l *lease) sentAt() time.Time {
	ms, err := strconv.ParseInt(l.msg.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// message is what the Processor gets.
func (l *lease) message() *Message {
	return &Message{ID: l.id(), Body: aws.ToString(l.msg.Body), ReceiveCount: l.receiveCount(), SentAt: l.sentAt(), lease: l}
}

func (l *lease) begin(ctx context.Context, eventTime time.Time, fields []slog.Attr) {
	if eventTime.IsZero() {
		eventTime = l.sentAt()
	}
	with := make([]any, len(fields))
	for i, f := range fields {
		with[i] = f
	}
	l.mu.Lock()
	l.fields, l.eventTime, l.start = slices.Clone(fields), eventTime, time.Now()
	l.log = l.log.With(with...)
	log, wait := l.log, since(l.start, eventTime)
	l.mu.Unlock()
	log.InfoContext(ctx, "job started", "receive_count", l.receiveCount(), "queue_wait_ms", wait.Milliseconds())
}

// finish records the end of the job and the run it made.
func (l *lease) finish(runID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end = time.Now()
	if runID != "" {
		l.runID = runID
		l.log = l.log.With("run_id", runID)
	}
}

func (l *lease) logger() *slog.Logger {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.log
}

// job describes the lease's job for log lines and metrics: what it ran,
// how long it took and how long it waited in the queue (zero when no job
// began).
type job struct {
	fields         []slog.Attr
	runID          string
	duration, wait time.Duration
}

func (l *lease) job() job {
	l.mu.Lock()
	defer l.mu.Unlock()
	j := job{fields: l.fields, runID: l.runID}
	if !l.start.IsZero() {
		j.duration, j.wait = l.end.Sub(l.start), since(l.start, l.eventTime)
	}
	return j
}

// since is t-from, or 0 when from is unknown.
func since(t, from time.Time) time.Duration {
	if from.IsZero() {
		return 0
	}
	return t.Sub(from)
}

// openLeases is the set of leases received and not yet settled; a settle
// under way keeps its lease open until its calls are made. It is the one
// record of the work in flight: the loop asks it whether anything is in
// flight, and the stop protocol waits for it to empty and releases what is
// left in it.
type openLeases struct {
	mu    sync.Mutex
	open  map[*lease]struct{}
	empty chan struct{} // closed while open is empty
}

func newOpenLeases() *openLeases {
	s := &openLeases{open: map[*lease]struct{}{}, empty: make(chan struct{})}
	close(s.empty)
	return s
}

func (s *openLeases) add(l *lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.open) == 0 {
		s.empty = make(chan struct{})
	}
	s.open[l] = struct{}{}
}

// claim reports whether the caller won the right to settle l; it does
// once per lease. The winner calls done when its settle calls are made.
func (s *openLeases) claim(l *lease) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	won := !l.claimed
	l.claimed = true
	return won
}

// done closes l once its settle is complete.
func (s *openLeases) done(l *lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.open[l]; !ok {
		return
	}
	delete(s.open, l)
	if len(s.open) == 0 {
		close(s.empty)
	}
}

// unclaimed returns the open leases nobody has claimed yet.
func (s *openLeases) unclaimed() []*lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rest []*lease
	for l := range s.open {
		if !l.claimed {
			rest = append(rest, l)
		}
	}
	return rest
}

func (s *openLeases) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// wait waits until no lease is open or ctx ends, and reports which.
func (s *openLeases) wait(ctx context.Context) bool {
	s.mu.Lock()
	empty := s.empty
	s.mu.Unlock()
	select {
	case <-empty:
		return true
	case <-ctx.Done():
		return false
	}
}
