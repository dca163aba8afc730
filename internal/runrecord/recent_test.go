package runrecord

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// Entry keys sort newest first and carry the run id and status.
func TestEntryKeys(t *testing.T) {
	t.Parallel()
	id := strings.Repeat("ab", 16)
	t0 := time.Date(2026, 12, 7, 4, 0, 0, 123, time.UTC)
	keys := []string{
		EntryKey("p/", t0, id, StatusRunning),
		EntryKey("p/", t0.Add(time.Second), id, StatusSucceeded),
		EntryKey("p/", t0.Add(time.Hour), id, StatusFailed),
	}
	sorted := slices.Clone(keys)
	slices.Sort(sorted)
	if !slices.Equal(sorted, []string{keys[2], keys[1], keys[0]}) {
		t.Errorf("keys sort %v, want newest first", sorted)
	}
	for i, want := range []string{StatusRunning, StatusSucceeded, StatusFailed} {
		at, runID, status, ok := ParseEntryKey(strings.TrimPrefix(keys[i], "p/"))
		if !ok || runID != id || status != want || !at.Equal(t0.Add([]time.Duration{0, time.Second, time.Hour}[i])) {
			t.Errorf("ParseEntryKey(%s) = %v %s %s %v", keys[i], at, runID, status, ok)
		}
	}
	for _, bad := range []string{"", "x.json", "0000000000000000001-" + id + "-q.json", "1-" + id + "-s.json", "0000000000000000001-nothex-s.json", "0000000000000000001-" + id + "-s"} {
		if _, _, _, ok := ParseEntryKey(bad); ok {
			t.Errorf("ParseEntryKey(%q) accepted", bad)
		}
	}
}
