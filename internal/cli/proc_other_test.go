//go:build !unix

package cli

import "os/exec"

// Without sessions or process groups: the command alone (proc_unix_test.go).

func noTerminal(*exec.Cmd) {}

func ownGroup(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
