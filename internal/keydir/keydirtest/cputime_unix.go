//go:build unix

package keydirtest

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the process's user and system CPU time so far: what the
// benchmarks report per operation beside the wall time, the garbage
// collector's work included.
func CPUTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
