//go:build !unix

package example_test

import "os/exec"

// noTerminal has no sessions to start here (proc_unix_test.go).
func noTerminal(*exec.Cmd) {}
