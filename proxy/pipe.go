package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
)

// halfCloser is a connection whose write side can be closed alone:
// *net.TCPConn (FIN) and *tls.Conn (close_notify).
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// errNoHalfClose ends a direction whose destination cannot close its
// write side alone: the whole connection is closed instead.
var errNoHalfClose = errors.New("proxy: cannot half-close")

// pipe copies a→b and b→a until both directions end, half-closing each
// destination when its source ends (so that a client that sends its
// request and closes its side still gets the answer), and returns the
// bytes copied from a to b and from b to a. An error in either direction,
// or ctx ending, closes both connections.
func pipe(ctx context.Context, a, b net.Conn) (aToB, bToA int64) {
	var n [2]atomic.Int64
	done := make(chan error, 2)
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		k, err := io.Copy(dst, src)
		n.Store(k)
		if err == nil {
			err = errNoHalfClose
			if hc, ok := dst.(halfCloser); ok {
				err = hc.CloseWrite()
			}
		}
		done <- err
	}
	go cp(b, a, &n[0])
	go cp(a, b, &n[1])
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				a.Close()
				b.Close()
			}
		case <-ctx.Done():
			a.Close()
			b.Close()
			i-- // still wait for both copies
			ctx = context.Background()
		}
	}
	a.Close()
	b.Close()
	return n[0].Load(), n[1].Load()
}
