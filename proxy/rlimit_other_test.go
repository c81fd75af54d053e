//go:build !unix

package proxy

import "testing"

// raiseFileLimit has no limit to raise here: this system sets none on a
// process's descriptors (rlimit_unix_test.go).
func raiseFileLimit(*testing.B, int) {}
