//go:build unix && !linux

package procgroup

import (
	"os/exec"
	"strconv"
	"strings"
)

// Without /proc, ps(1) answers (its -o keywords are the same on macOS and
// the BSDs).

func ps(args ...string) (string, error) {
	out, err := exec.Command("ps", args...).Output()
	return strings.TrimSpace(string(out)), err
}

func startTime(pid int) (string, error) {
	return ps("-o", "lstart=", "-p", strconv.Itoa(pid))
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	st, err := ps("-o", "stat=", "-p", strconv.Itoa(pid))
	return err == nil && st != "" && !strings.HasPrefix(st, "Z")
}

// members are the running processes of process group pgid.
func members(pgid int) []int {
	out, err := ps("-A", "-o", "pid=,pgid=,stat=")
	if err != nil {
		return nil
	}
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != strconv.Itoa(pgid) || strings.HasPrefix(f[2], "Z") {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sessionMembers are the running processes of session sid.
func sessionMembers(sid int) []int {
	out, err := ps("-A", "-o", "pid=,sess=,stat=")
	if err != nil {
		return nil
	}
	var pids []int
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != strconv.Itoa(sid) || strings.HasPrefix(f[2], "Z") {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
