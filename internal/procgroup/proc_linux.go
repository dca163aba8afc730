package procgroup

import (
	"errors"
	"os"
	"strconv"
	"strings"
)

// stat is what edp reads from /proc/<pid>/stat.
type stat struct {
	state byte   // R, S, D, Z (zombie), X (dead), …
	pgrp  int    // process group ID
	sid   int    // session ID
	start string // start time in clock ticks since boot
}

// readStat parses /proc/<pid>/stat (proc(5)): the fields after the
// parenthesized command name, which may itself hold spaces and ')'.
func readStat(pid int) (stat, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[3] field 6
	// (session), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, errors.New("malformed /proc stat")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return stat{}, err
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return stat{}, err
	}
	return stat{state: f[0][0], pgrp: pgrp, sid: sid, start: f[19]}, nil
}

func alive(st stat) bool { return st.state != 'Z' && st.state != 'X' }

// startTime is the process's start time, in clock ticks since boot.
func startTime(pid int) (string, error) {
	st, err := readStat(pid)
	return st.start, err
}

// running reports whether pid exists and is not a zombie (a zombie's
// parent may never reap it, e.g. when PID 1 does not).
func running(pid int) bool {
	st, err := readStat(pid)
	return err == nil && alive(st)
}

// members are the running processes of process group pgid.
func members(pgid int) []int {
	return matching(func(st stat) bool { return st.pgrp == pgid })
}

// sessionMembers are the running processes of session sid.
func sessionMembers(sid int) []int {
	return matching(func(st stat) bool { return st.sid == sid })
}

// matching are the running processes whose stat matches.
func matching(match func(stat) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && match(st) && alive(st) {
			out = append(out, pid)
		}
	}
	return out
}
