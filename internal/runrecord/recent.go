package runrecord

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// EntryFormat identifies the recent-runs index entry layout.
const EntryFormat = "edp.recent/v1"

// StatusRunning is an index entry's status while its job runs; a run
// record never has it (the record is written when the run ends).
const StatusRunning = "running"

// Entry is one entry of the recent-runs index, <RecentPrefix><key>
// (EntryKey): the consumer writes one when a run starts and one when it
// ends, so that readers can list the newest runs with one bounded LIST,
// newest first, whatever the number of records (run ids, the record keys,
// are hashes in no time order). Entries are small and never rewritten.
type Entry struct {
	// Format is EntryFormat.
	Format string `json:"format"`
	RunID  string `json:"run_id"`
	// Status is StatusRunning, or the run's final status.
	Status string `json:"status"`
	// Key is the config's key.
	Key string `json:"key"`
	// Job is the kind of job, "iris" or "command".
	Job     string `json:"job,omitempty"`
	Version string `json:"version,omitempty"`
	Attempt int    `json:"attempt,omitempty"`
	// Task is where the run runs: the ECS task ARN, or host and process
	// off ECS.
	Task string `json:"task,omitempty"`
	// UploadedAt is the upload's time, from its event, when known.
	UploadedAt time.Time `json:"uploaded_at,omitzero"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	DurationMS int64     `json:"duration_ms,omitempty"`
	// Error is the failure, cut to MaxEntryError bytes.
	Error     string `json:"error,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`
}

// MaxEntryError bounds Entry.Error; the record has the whole error.
const MaxEntryError = 300

// statusLetters name a status in an entry's key, so that a reader can tell
// a run's state from a LIST alone.
var statusLetters = map[string]string{StatusRunning: "r", StatusSucceeded: "s", StatusFailed: "f", StatusSkipped: "k"}

// EntryKey is the key under prefix (names.RecentPrefix) of an entry
// written at at: the time inverted, so that keys sort newest first, then
// the run id and a letter for the status.
func EntryKey(prefix string, at time.Time, runID, status string) string {
	letter, ok := statusLetters[status]
	if !ok {
		letter = "x"
	}
	return fmt.Sprintf("%s%019d-%s-%s.json", prefix, math.MaxInt64-at.UnixNano(), runID, letter)
}

// ParseEntryKey reads what EntryKey wrote into a key (the prefix already
// removed): when the entry was written, the run id and the status.
func ParseEntryKey(name string) (at time.Time, runID, status string, ok bool) {
	name, found := strings.CutSuffix(name, ".json")
	parts := strings.Split(name, "-")
	if !found || len(parts) != 3 || len(parts[0]) != 19 || !IsRunID(parts[1]) {
		return time.Time{}, "", "", false
	}
	inv, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil || inv < 0 {
		return time.Time{}, "", "", false
	}
	for s, l := range statusLetters {
		if l == parts[2] {
			return time.Unix(0, math.MaxInt64-inv), parts[1], s, true
		}
	}
	return time.Time{}, "", "", false
}
