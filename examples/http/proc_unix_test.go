//go:build unix

package example_test

import (
	"os/exec"
	"syscall"
)

// noTerminal starts cmd in a session of its own, without a controlling
// terminal: nothing it runs asks on the developer's terminal.
func noTerminal(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }
