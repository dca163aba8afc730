package sim

import (
	"container/heap"
	"math"
	"math/rand/v2"
)

// event is one scheduled happening; seq breaks ties in scheduling order,
// which keeps a run deterministic.
type event struct {
	at  float64
	seq int
	fn  func()
}

type eventHeap []event

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(event)) }
func (h *eventHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// clock runs events in time order.
type clock struct {
	now    float64
	seq    int
	events eventHeap
}

func (c *clock) at(t float64, fn func()) {
	c.seq++
	heap.Push(&c.events, event{at: math.Max(t, c.now), seq: c.seq, fn: fn})
}

func (c *clock) after(d float64, fn func()) { c.at(c.now+d, fn) }

// step runs the next event at or before limit; false when there is none.
func (c *clock) step(limit float64) bool {
	if len(c.events) == 0 || c.events[0].at > limit {
		return false
	}
	e := heap.Pop(&c.events).(event)
	c.now = e.at
	e.fn()
	return true
}

// message is one upload's message through the queue.
type message struct {
	upload float64 // the upload
	queued float64 // SendMessage (EventBridge's delivery)
	start  float64 // first receive; -1 before
	done   float64 // deleted after its job; -1 before
	lost   bool    // deleted by the retention before a receive
	job    float64 // its job's duration (each attempt)
	// taskDelay is the message → the rule's RunTask (EdpOneOff); 0:
	// Params.RuleTaskDelay.
	taskDelay float64
	// receives counts the receives; dead is set when the queue's redrive
	// moved it to the DLQ after edp:maxReceiveCount failed attempts.
	receives int
	dead     bool
}

type taskState int

const (
	taskPending taskState = iota
	taskRunning
	taskStopped
)

// task is one Fargate task running the consumer: a drain (exits when the
// queue stays empty) or a service task (runs until scaled in).
type task struct {
	id         int
	drain      bool
	state      taskState
	requested  float64 // RunTask (or the service's start); billed from here
	stopped    float64
	busy       int     // jobs running now
	busyTime   float64 // s with at least one job running
	busySince  float64
	processed  int
	empties    int // empty receives in a row
	polling    bool
	pollGen    int // invalidates a long poll's timeout when it returns early
	pollEnd    float64
	stopping   bool // scaled in: stops after its current poll or job
	skipped    bool // a cron drain that found the task cap reached
	countAlive bool // counted in queue.alive
}

// queue is the SQS work queue with the consumers polling it.
type queue struct {
	msgs     []*message
	visible  []*message // FIFO; head at vhead
	vhead    int
	inflight int
	pollers  []*task // long polls waiting, FIFO
	requests int     // SQS API requests (billed)
	lastCall float64 // last message or API call (an inactive queue publishes no metrics)
}

func (q *queue) visibleCount() int { return len(q.visible) - q.vhead }

func (q *queue) oldestVisible() *message {
	if q.visibleCount() == 0 {
		return nil
	}
	return q.visible[q.vhead]
}

func (q *queue) popVisible() *message {
	m := q.visible[q.vhead]
	q.visible[q.vhead] = nil
	q.vhead++
	if q.vhead > 1024 && q.vhead*2 > len(q.visible) {
		q.visible = append([]*message(nil), q.visible[q.vhead:]...)
		q.vhead = 0
	}
	return m
}

func (q *queue) removePoller(t *task) {
	for i, p := range q.pollers {
		if p == t {
			q.pollers = append(q.pollers[:i], q.pollers[i+1:]...)
			return
		}
	}
}

// lognormalP50P90 draws from the lognormal with the given median and 90th
// percentile (z of the 90th percentile: 1.2816).
func lognormalP50P90(r *rand.Rand, p50, p90 float64) float64 {
	if p90 <= p50 {
		return p50
	}
	sigma := (math.Log(p90) - math.Log(p50)) / 1.2815515655446004
	return p50 * math.Exp(sigma*r.NormFloat64())
}
