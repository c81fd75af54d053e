//go:build unix

package keydirtest

import (
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// Mkfifo makes a FIFO at path: the tests' stand-in for a file that would
// block a reader waiting for a writer. (x/sys/unix, which has it on every
// unix: the syscall package lacks it on illumos and Solaris.)
func Mkfifo(tb testing.TB, path string, perm uint32) {
	tb.Helper()
	if err := unix.Mkfifo(path, perm); err != nil {
		tb.Fatal(err)
	}
}
