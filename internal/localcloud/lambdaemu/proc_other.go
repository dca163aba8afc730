//go:build !unix

package lambdaemu

import "os/exec"

// ownGroup: process groups are a unix notion (the emulator runs on Linux).
func ownGroup(*exec.Cmd) {}
