package localcloud

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A status its runtime stopped rewriting is stale; a fresh one reads back.
func TestReadRuntimeStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ReadRuntimeStatus(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no file: got %v, want not exist", err)
	}
	write := func(s RuntimeStatus) {
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, RuntimeStatusFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(RuntimeStatus{At: time.Now(), Speedup: 30, Desired: map[string]int{"svc": 2}, Alarms: []Alarm{{Name: "a", State: "ALARM"}}})
	s, err := ReadRuntimeStatus(dir)
	if err != nil || s.Desired["svc"] != 2 || len(s.Alarms) != 1 || s.Alarms[0].State != "ALARM" {
		t.Fatalf("got %+v, %v", s, err)
	}
	write(RuntimeStatus{At: time.Now().Add(-time.Minute)})
	if _, err := ReadRuntimeStatus(dir); !errors.Is(err, ErrStaleStatus) {
		t.Fatalf("a minute old: got %v, want ErrStaleStatus", err)
	}
}
