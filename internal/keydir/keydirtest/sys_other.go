//go:build !unix

package keydirtest

import (
	"testing"
	"time"
)

// CPUTime is the process's CPU time so far, where the system says; here
// it cannot, and the benchmarks report 0.
func CPUTime(testing.TB) time.Duration { return 0 }

// Mkfifo skips the test: this system has no FIFOs to make.
func Mkfifo(tb testing.TB, path string, _ uint32) {
	tb.Helper()
	tb.Skipf("no FIFOs on this system, to make at %s", path)
}
