//go:build !unix

package keydirtest

import (
	"testing"
	"time"
)

// CPUTime is the process's CPU time so far, where the system says; here
// it cannot, and the benchmarks report 0.
func CPUTime(testing.TB) time.Duration { return 0 }
