//go:build unix

package proxy

import (
	"syscall"
	"testing"
)

// raiseFileLimit raises RLIMIT_NOFILE to its hard limit, and skips the
// benchmark if that is below need.
func raiseFileLimit(b *testing.B, need int) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			b.Fatal(err)
		}
	}
	if uint64(lim.Cur) < uint64(need) { // Cur is a uint64 on most systems, an int64 on FreeBSD (where "infinity" is its largest value)
		b.Skipf("RLIMIT_NOFILE's hard limit is %d; this benchmark holds %d descriptors in one process (raise it: ulimit -Hn)", lim.Max, need)
	}
}
