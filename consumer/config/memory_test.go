package config

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// hostile is a config built to cost as much as possible while being
// rejected.
type hostile struct {
	name string
	data []byte
	want string // in the error
}

// fill repeats unit after head until the document is size bytes long, then
// closes it with tail.
func fill(head, unit, tail string, size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(head)
	for b.Len()+len(unit)+len(tail) <= size {
		b.WriteString(unit)
	}
	b.WriteString(tail)
	return b.Bytes()
}

// hostileConfigs are the worst configs known for each structural limit:
// the most nodes per byte (dense flow and block lists), nesting, one long
// scalar, many keys, many documents and an alias bomb. Each comes at the byte
// limit; the dense list also comes at 1 MiB, the limit before it was lowered.
func hostileConfigs(tb testing.TB) []hostile {
	const tooMany = "config has too many YAML nodes"
	return []hostile{
		{"dense-flow-1MiB", fill("[", "1,", "1]", 1<<20), "config is 1048575 bytes, limit is 65536 (64 KiB)"},
		{"dense-flow", fill("[", "1,", "1]", MaxBytes), tooMany},
		{"dense-block", fill("", "- 1\n", "", MaxBytes), tooMany},
		{"empty-entries", fill("", "-\n", "", MaxBytes), tooMany},
		{"deep-flow", fill("", "[", "", MaxBytes), tooMany},
		{"wide-mapping", fill("model: {type: DecisionTreeClassifier}\n", "k: v\n", "", MaxBytes), tooMany},
		{"long-scalar", fill("model: ", "x", "\n", MaxBytes), "model: must be a mapping"},
		{"node-limit", atNodeLimit(), "k: unknown key"},
		{"many-documents", fill("", "---\n", "", MaxBytes), tooMany},
		{"alias-bomb", readFixtureB(tb, "alias-bomb.yaml"), "anchors and aliases"},
	}
}

// atNodeLimit is the largest tree the pre-scan lets through: keys with long
// values, as many as the node limit allows, filling the byte limit.
func atNodeLimit() []byte {
	const head = "model: {type: DecisionTreeClassifier}\n"
	keys := (MaxNodes - nodeBound([]byte(head), MaxNodes)) / 2
	unit := "k: " + strings.Repeat("x", (MaxBytes-len(head))/keys-4) + "\n"
	return fill(head, unit, "", MaxBytes)
}

// TestHostileConfigsRejected checks that every hostile config is rejected
// with a clear problem.
func TestHostileConfigsRejected(t *testing.T) {
	t.Parallel()
	for _, h := range hostileConfigs(t) {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(h.data)
			if err == nil || !strings.Contains(err.Error(), h.want) {
				t.Fatalf("Parse(%s, %d bytes) error = %v, want one containing %q", h.name, len(h.data), err, h.want)
			}
		})
	}
}

// TestHostileConfigsCostNoMemory checks that a config over the byte or node
// limit is refused before anything is decoded: the refusal allocates only
// the error, whatever the config's size. (Before the pre-scan, refusing the
// 1 MiB dense list took a 124 MB tree; at 64 KiB still 8 MB.) Not parallel:
// the allocation counters are the process's.
func TestHostileConfigsCostNoMemory(t *testing.T) {
	const maxBytes, maxAllocs = 1 << 10, 8
	for _, h := range hostileConfigs(t) {
		if h.name == "long-scalar" || h.name == "node-limit" || h.name == "alias-bomb" {
			continue // within both limits: decoded, then refused on content
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		allocs := testing.AllocsPerRun(10, func() {
			if _, err := Parse(h.data); err == nil {
				t.Fatalf("Parse(%s) succeeded, want an error", h.name)
			}
		})
		runtime.ReadMemStats(&after)
		// AllocsPerRun makes one warm-up call besides the 10 it counts.
		perRun := (after.TotalAlloc - before.TotalAlloc) / 11
		if perRun > maxBytes || allocs > maxAllocs {
			t.Errorf("refusing %s (%d bytes) allocated %d bytes in %.0f allocations per call, want at most %d bytes in %d",
				h.name, len(h.data), perRun, allocs, maxBytes, maxAllocs)
		}
	}
}

// BenchmarkParseHostile parses each hostile config 1 and 8 at a time (8 is
// a consumer task's concurrency on 8 CPUs) and reports the process's peak
// RSS while doing so as peak-MB; the memory goal is under 100 MB at 8.
func BenchmarkParseHostile(b *testing.B) {
	for _, h := range hostileConfigs(b) {
		for _, conc := range []int{1, 8} {
			b.Run(h.name+"/x"+strconv.Itoa(conc), func(b *testing.B) {
				peak := startPeakRSS(b)
				b.ReportAllocs()
				for b.Loop() {
					var wg sync.WaitGroup
					for range conc {
						wg.Go(func() {
							if _, err := Parse(h.data); err == nil {
								panic("hostile config " + h.name + " accepted")
							}
						})
					}
					wg.Wait()
				}
				peak(b)
			})
		}
	}
}

// startPeakRSS frees what the heap no longer needs, resets the kernel's
// peak RSS mark (VmHWM) of this process and returns a func that reports the
// peak since then as the metric peak-MB. Without Linux's /proc it logs why
// and reports nothing.
func startPeakRSS(b *testing.B) func(*testing.B) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("peak RSS not measured: cannot reset it: %v", err)
		return func(*testing.B) {}
	}
	return func(b *testing.B) {
		b.Helper()
		kb, err := vmHWM()
		if err != nil {
			b.Logf("peak RSS not measured: %v", err)
			return
		}
		b.ReportMetric(float64(kb)/1024, "peak-MB")
	}
}

// vmHWM returns the process's peak resident set size in KiB.
func vmHWM() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("read peak RSS: %w", err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("read peak RSS: no VmHWM line in /proc/self/status")
}
