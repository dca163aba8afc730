//go:build unix

package lambdaemu

import (
	"os/exec"
	"syscall"
)

// ownGroup starts cmd as the leader of a new process group, so stopping
// the recorded group never signals the local cloud itself.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
