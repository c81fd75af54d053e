//go:build unix

package cli

import (
	"os/exec"
	"syscall"
)

// The few process controls the tests need that only unix has, here so the
// package's tests still build (go vet) for other systems; proc_other_test.go
// has what stands in for them there.

// noTerminal starts cmd in a session of its own, without a controlling
// terminal: nothing it runs asks on the developer's terminal.
func noTerminal(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }

// ownGroup starts cmd as the leader of a process group of its own, which
// killGroup ends with whatever it started in the background.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup kills the process group that ownGroup made cmd lead.
func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
