package benchreport

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc's CPU times (USER_HZ), 100 Hz on every
// Linux that Go supports.
const clockTick = 10 * time.Millisecond

// procStat is what the ceiling measurement reads of /proc/<pid>/stat.
type procStat struct {
	PPID int
	// CPU is the process's user + system time.
	CPU time.Duration
}

// parseProcStat reads /proc/<pid>/stat's text. The command name, field 2,
// is in parentheses and may hold spaces and parentheses itself: the
// fields are counted from the last ")".
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("parse /proc stat %q: no command name", s)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("parse /proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var n [3]int64
	for k, field := range []int{4, 14, 15} {
		v, err := strconv.ParseInt(f[field-3], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("parse /proc stat field %d: %w", field, err)
		}
		n[k] = v
	}
	return procStat{PPID: int(n[0]), CPU: time.Duration(n[1]+n[2]) * clockTick}, nil
}

// readProcStat reads one process's stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// childrenCPU is the CPU time of every live child of parent except those
// in skip, by pid.
func childrenCPU(parent int, skip map[int]bool) map[int]time.Duration {
	out := map[int]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || skip[pid] {
			continue
		}
		st, err := readProcStat(pid)
		if err == nil && st.PPID == parent {
			out[pid] = st.CPU
		}
	}
	return out
}

// machineCPU is the whole machine's busy and total CPU time so far (all
// CPUs), from /proc/stat's first line.
type machineCPU struct{ Busy, Total time.Duration }

// parseMachineCPU reads /proc/stat's "cpu" line: user nice system idle
// iowait irq softirq steal…; idle and iowait are not busy.
func parseMachineCPU(s string) (machineCPU, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("parse /proc/stat: first line %q is not the cpu line", line)
	}
	var m machineCPU
	for i, x := range f[1:] {
		if i >= 8 { // guest times are already in user and nice
			break
		}
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("parse /proc/stat: %w", err)
		}
		d := time.Duration(v) * clockTick
		m.Total += d
		if i != 3 && i != 4 {
			m.Busy += d
		}
	}
	return m, nil
}

// readMachineCPU reads /proc/stat.
func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	return parseMachineCPU(string(b))
}
