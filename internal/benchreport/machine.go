package benchreport

import (
	"bufio"
	"os"
	"runtime"
	"strings"
)

// Machine describes where the figures were measured.
type Machine struct {
	// CPU is the model name from /proc/cpuinfo (GOARCH elsewhere).
	CPU string
	// CPUs is the number of logical CPUs this process may use.
	CPUs int
	// Memory is MemTotal from /proc/meminfo, e.g. "7.8 GiB" ("" when
	// unknown).
	Memory string
	// OS is the distribution and kernel, e.g. "Debian GNU/Linux 12
	// (bookworm), Linux 6.1.0".
	OS string
	// Load is /proc/loadavg's 1-, 5- and 15-minute averages when the
	// measurement started ("" when unknown).
	Load string
}

// ReadMachine describes this machine from /proc and /etc/os-release,
// falling back to the runtime's GOOS/GOARCH.
func ReadMachine() Machine {
	m := Machine{CPU: runtime.GOARCH, CPUs: runtime.NumCPU(), OS: runtime.GOOS}
	if v := procField("/proc/cpuinfo", "model name", ':'); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal", ':'); v != "" {
		m.Memory = kiBText(v)
	}
	if v := procField("/etc/os-release", "PRETTY_NAME", '='); v != "" {
		m.OS = strings.Trim(v, `"`)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.OS += ", " + strings.ToUpper(runtime.GOOS[:1]) + runtime.GOOS[1:] + " " + strings.TrimSpace(string(b))
	}
	m.Load = LoadAverage()
	return m
}

// LoadAverage is /proc/loadavg's three averages, "" when unavailable.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first "key<sep> value" line of path.
func procField(path, key string, sep byte) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), string(sep))
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// kiBText turns "8034324 kB" into "7.7 GiB".
func kiBText(v string) string {
	var kb float64
	for _, c := range strings.TrimSuffix(strings.TrimSpace(v), " kB") {
		if c < '0' || c > '9' {
			return v
		}
		kb = kb*10 + float64(c-'0')
	}
	return formatNumber(kb/(1<<20)) + " GiB"
}
