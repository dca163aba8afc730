//go:build !unix

package lambdaemu

import (
	"os"
	"os/exec"
)

// setProcessGroup is a no-op where there are no process groups.
func setProcessGroup(*exec.Cmd) {}

// killProcessGroup kills the process itself.
func killProcessGroup(p *os.Process) error {
	return p.Kill()
}
