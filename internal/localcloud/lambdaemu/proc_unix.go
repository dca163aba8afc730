//go:build unix

package lambdaemu

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup starts the bootstrap as the leader of a new process
// group, so the group can be killed as a whole.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessGroup sends SIGKILL to the process group led by p.
func killProcessGroup(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGKILL)
}
