// Package testnet serves test connections: one accept loop for the tests
// of every package that runs a small server of its own on 127.0.0.1 (an
// echo target, a fake peer). Only tests import it.
package testnet

import (
	"net"
	"sync"
	"testing"
)

// ServeEach accepts on ln until the test ends, running serve on each
// connection in a goroutine of its own (the connection is closed when
// serve returns). At the end it closes ln and every connection still
// open, and waits for the handlers: no connection is cut by a deadline
// of its own, however slow a loaded machine makes it, and none outlives
// the test.
func ServeEach(tb testing.TB, ln net.Listener, serve func(c net.Conn)) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
	)
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				serve(c)
			})
		}
	})
}
