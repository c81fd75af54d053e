package proxy

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
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
		_, _, _, _ = pipe(context.Background(), a, b, time.Minute)
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

// TestPipeReportsWhatEndedIt: a target that resets the connection ends
// the pair with that error, for the proxy's log — the client sees only a
// clean close; a target that answers and closes ends it with none.
func TestPipeReportsWhatEndedIt(t *testing.T) {
	for _, reset := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 5)
			_, _ = io.ReadFull(c, buf)
			if reset {
				c.(*net.TCPConn).SetLinger(0) // close with RST
			} else {
				_, _ = c.Write([]byte("answer"))
			}
			c.Close()
		}()
		target, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		client, proxySide := net.Pipe()
		go func() {
			_, _ = client.Write([]byte("hello"))
			_, _ = io.Copy(io.Discard, client)
			client.Close()
		}()
		_, _, _, ended := pipe(context.Background(), proxySide, target, time.Minute)
		ln.Close()
		switch {
		case reset && (ended == nil || !strings.Contains(ended.Error(), "reset")):
			t.Errorf("a target's reset: pipe ended with %v, want the reset", ended)
		case !reset && ended != nil:
			t.Errorf("a target that answered and closed: pipe ended with %v, want nil", ended)
		}
	}
}
