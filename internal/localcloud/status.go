package localcloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RuntimeStatus is what the local runtime knows that moto cannot answer:
// the alarms' states (evaluated here, not in moto), the services' desired
// counts (kept by the local ECS, which has no DescribeServices), the
// schedules' next fire times, the age of the oldest message as the alarms
// see it, and the functions' last invocations. The runtime writes it to
// RuntimeStatusFile in its work directory every StatusInterval, for
// operator verbs in other processes (edp top -local).
type RuntimeStatus struct {
	// At is when it was read.
	At      time.Time `json:"at"`
	Speedup float64   `json:"speedup"`
	Alarms  []Alarm   `json:"alarms"`
	// Desired is each ECS service's desired count, by service name.
	Desired map[string]int `json:"desired,omitempty"`
	// NextFire is each schedule's next fire time, in real time.
	NextFire map[string]time.Time `json:"next_fire,omitempty"`
	// OldestAge is each queue's age of its oldest message in seconds of
	// the stack's time, by queue name, as the alarms last read it: the
	// time since the queue last had nothing visible, sped up.
	OldestAge map[string]float64 `json:"oldest_age_seconds,omitempty"`
	// LastInvocation is each Lambda function's last invocation, by name.
	LastInvocation map[string]time.Time `json:"last_invocation,omitempty"`
}

// Alarm is one alarm's state after the last evaluation.
type Alarm struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// RuntimeStatusFile is the name of the runtime's status in its work
// directory; StatusInterval is how often it is rewritten.
const (
	RuntimeStatusFile = "runtime.json"
	StatusInterval    = time.Second
)

// Status reads the runtime's status now.
func (c *Cloud) Status() RuntimeStatus {
	s := RuntimeStatus{At: time.Now(), Speedup: c.opts.Speedup, Desired: map[string]int{}, NextFire: c.NextScheduledRun(),
		OldestAge: map[string]float64{}, LastInvocation: map[string]time.Time{}}
	for _, a := range c.Alarms() {
		s.Alarms = append(s.Alarms, Alarm{Name: a.Name, State: string(a.State), Reason: a.Reason})
	}
	slices.SortFunc(s.Alarms, func(a, b Alarm) int { return strings.Compare(a.Name, b.Name) })
	for _, id := range c.stack.Resources("AWS::ECS::Service") {
		name := serviceName(c.stack.Physical[id])
		s.Desired[name] = c.ecs.DesiredCount(name)
	}
	if c.source != nil {
		c.source.mu.Lock()
		for q, since := range c.source.backlogSince {
			s.OldestAge[q] = time.Since(since).Seconds() * c.opts.Speedup
		}
		c.source.mu.Unlock()
	}
	for name := range c.functions {
		if at, ok := c.invocations.last("AWS/Lambda/" + name); ok {
			s.LastInvocation[name] = at
		}
	}
	return s
}

// writeStatus rewrites the status file every StatusInterval until ctx
// ends, then removes it.
func (c *Cloud) writeStatus(ctx context.Context) error {
	path := filepath.Join(c.opts.WorkDir, RuntimeStatusFile)
	defer os.Remove(path)
	for {
		raw, err := json.Marshal(c.Status())
		if err != nil {
			return err
		}
		// Written aside and renamed, so a reader never sees half of it.
		if err := os.WriteFile(path+".tmp", raw, 0o644); err == nil {
			_ = os.Rename(path+".tmp", path)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(StatusInterval):
		}
	}
}

// ErrStaleStatus is ReadRuntimeStatus's error for a status its runtime
// stopped rewriting.
var ErrStaleStatus = errors.New("the local runtime's status is stale")

// ReadRuntimeStatus reads the status a runtime in workDir writes; a status
// older than a few intervals is ErrStaleStatus.
func ReadRuntimeStatus(workDir string) (RuntimeStatus, error) {
	var s RuntimeStatus
	raw, err := os.ReadFile(filepath.Join(workDir, RuntimeStatusFile))
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("read %s: %w", RuntimeStatusFile, err)
	}
	if time.Since(s.At) > 10*StatusInterval {
		return s, fmt.Errorf("%w: written %s ago", ErrStaleStatus, time.Since(s.At).Round(time.Second))
	}
	return s, nil
}
