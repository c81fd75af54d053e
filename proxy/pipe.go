package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"time"
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

// copyBufferSize is the buffer of each direction's copy.
const copyBufferSize = 32 << 10

// pipe copies a→b and b→a until both directions end, half-closing each
// destination when its source ends (so that a client that sends its
// request and closes its side still gets the answer), and returns the
// bytes copied from a to b and from b to a. An error in either direction,
// or ctx ending, closes both connections.
//
// Once one direction has ended and half-closed, the other must move a
// byte at least every idle, reading and writing: else both connections
// are closed, and idled is true. (A target that reads the client's
// half-close and never closes its side would otherwise hold both
// connections forever.) Before that, a connection may stay idle as long
// as it likes: long-lived quiet connections are legitimate.
func pipe(ctx context.Context, a, b net.Conn, idle time.Duration) (aToB, bToA int64, idled bool) {
	var n [2]atomic.Int64
	var halfClosed atomic.Bool
	done := make(chan error, 2)
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		buf := make([]byte, copyBufferSize)
		k, err := io.CopyBuffer(idleWriter{dst, &halfClosed, idle}, idleReader{src, &halfClosed, idle}, buf)
		n.Store(k)
		if err == nil {
			err = errNoHalfClose
			if hc, ok := dst.(halfCloser); ok {
				err = hc.CloseWrite()
			}
		}
		if err == nil {
			// The other direction reads dst and writes src: from now on
			// it has idle to move each byte.
			halfClosed.Store(true)
			deadline := time.Now().Add(idle)
			_ = dst.SetReadDeadline(deadline)
			_ = src.SetWriteDeadline(deadline)
		}
		done <- err
	}
	go cp(b, a, &n[0])
	go cp(a, b, &n[1])
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				idled = idled || (halfClosed.Load() && isTimeoutErr(err))
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
	return n[0].Load(), n[1].Load(), idled
}

// idleReader reads a connection, with a read deadline idle ahead of each
// read once halfClosed is set.
type idleReader struct {
	c          net.Conn
	halfClosed *atomic.Bool
	idle       time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	if r.halfClosed.Load() {
		_ = r.c.SetReadDeadline(time.Now().Add(r.idle))
	}
	return r.c.Read(p)
}

// idleWriter writes a connection, with a write deadline idle ahead of
// each write once halfClosed is set.
type idleWriter struct {
	c          net.Conn
	halfClosed *atomic.Bool
	idle       time.Duration
}

func (w idleWriter) Write(p []byte) (int, error) {
	if w.halfClosed.Load() {
		_ = w.c.SetWriteDeadline(time.Now().Add(w.idle))
	}
	return w.c.Write(p)
}

// isTimeoutErr tells an error of a deadline that passed.
func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
