package proxy

import (
	"context"
	"net"
	"runtime"
	"testing"
	"time"
)

// TestPipeAllocatesNoBuffers: a connection's copy borrows pooled buffers
// instead of allocating its own (it allocated 64 KiB a connection, for
// the garbage collector to reclaim: docs/proxy.md, "Copying").
func TestPipeAllocatesNoBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("SKIPPED, NOT PASSED under -race: the race detector makes sync.Pool drop buffers on purpose (the plain run checks this)")
	}
	run := func() {
		a, peerA := net.Pipe()
		b, peerB := net.Pipe()
		peerA.Close() // a ends at once: pipe closes both and returns
		defer peerB.Close()
		pipe(context.Background(), a, b, time.Minute)
	}
	run() // the pool's first buffers
	const runs = 50
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		run()
	}
	runtime.ReadMemStats(&after)
	// sync.Pool may drop its buffers at a GC (none is asked for here, but
	// one may come): allow a few new ones, far from 2 per connection.
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4<<10 {
		t.Errorf("pipe allocated %d bytes per connection; want its buffers from the pool", per)
	}
}
