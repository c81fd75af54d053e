package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
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

// copyBufferSize is the buffer of each direction's copy: a TLS record
// carries at most 16 KiB of plaintext, and tls.Conn.Read returns at most
// one record, so a larger buffer is never filled from the TLS side; from
// the TCP side, 16 KiB makes one full record (one write system call) per
// read. The buffers are pooled: a connection costs no allocation of its
// own to copy (it used to cost 64 KiB, zeroed, for the garbage collector
// to reclaim — at a thousand connections a second, 64 MB/s of garbage).
const copyBufferSize = 16 << 10

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// pipe copies a→b and b→a until both directions end, half-closing each
// destination when its source ends (so that a client that sends its
// request and closes its side still gets the answer), and returns the
// bytes copied from a to b and from b to a, and the error that ended the
// pair early, if one did (a reset, a failed write: the caller logs it,
// since the other peer may only see a clean close). An error in either
// direction, or ctx ending, closes both connections; ctx ending, at
// their sockets (cut).
//
// Once one direction has ended and half-closed, the other must move a
// byte at least every idle, reading and writing: else both connections
// are closed, and idled is true. (A target that reads the client's
// half-close and never closes its side would otherwise hold both
// connections forever.) Before that, a connection may stay idle as long
// as it likes: long-lived quiet connections are legitimate.
func pipe(ctx context.Context, a, b net.Conn, idle time.Duration) (aToB, bToA int64, idled bool, ended error) {
	var n [2]atomic.Int64
	var halfClosed atomic.Bool
	done := make(chan error, 2)
	closed := false // both connections closed (by an error or ctx)
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		k, err := copyConn(dst, src, &halfClosed, idle)
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
				if !closed && err != errNoHalfClose {
					ended = err // the first: what follows comes of the close
				}
				closed = true
				a.Close()
				b.Close()
			}
		case <-ctx.Done():
			closed = true // the caller's doing: no error of the pair's
			cut(a)
			cut(b)
			i-- // still wait for both copies
			ctx = context.Background()
		}
	}
	a.Close()
	b.Close()
	return n[0].Load(), n[1].Load(), idled, ended
}

// cut closes c at once, for the caller's reason (live revocation, the
// proxy closing): a *tls.Conn's socket first, so that its Close writes no
// close_notify — which waits up to 5 s (crypto/tls) on a peer that does
// not read, while the other direction still copies; the live revocation
// of an open connection is promised within a second (docs/security.md,
// "Live revocation": TestLiveRevocationClosesAtTheSocket).
func cut(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		_ = nc.NetConn().Close()
	}
	_ = c.Close()
}

// copyConn copies src to dst until src ends (nil error, as io.Copy) or
// either side fails, with a pooled buffer, and returns the bytes written.
// Once halfClosed is set, each read and each write must finish within
// idle.
//
// It is io.CopyBuffer's loop written out, not io.Copy: between a TLS
// connection and a TCP one there is no fast path to keep (tls.Conn has
// neither ReadFrom nor WriteTo, and (*net.TCPConn).ReadFrom of a
// tls.Conn can only fall back to io.Copy, allocating 32 KiB per call),
// and the deadlines need a hook before each read and write. Both
// connections already have TCP_NODELAY (Go's default for TCP): each
// write leaves at once, as a request written by the peer would.
func copyConn(dst, src net.Conn, halfClosed *atomic.Bool, idle time.Duration) (written int64, err error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	for {
		if halfClosed.Load() {
			_ = src.SetReadDeadline(time.Now().Add(idle))
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if halfClosed.Load() {
				_ = dst.SetWriteDeadline(time.Now().Add(idle))
			}
			nw, werr := dst.Write(buf[:nr])
			if nw < 0 || nw > nr {
				nw, werr = 0, errInvalidWrite
			}
			written += int64(nw)
			if werr != nil {
				return written, werr
			}
			if nw != nr {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// errInvalidWrite is io's errInvalidWrite: a Write that claimed more (or
// less than nothing) than it was given.
var errInvalidWrite = errors.New("proxy: invalid write result")

// isTimeoutErr tells an error of a deadline that passed.
func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// endedBy adds to a connection's attributes the error that ended its
// copy early, as "error": a reset by one peer reaches the other as a
// clean close, so only the proxy's line says what happened. (An idle
// timeout has its own warning.)
func endedBy(attrs []any, ended error, idled bool) []any {
	if ended == nil || idled {
		return attrs
	}
	return append(attrs[:len(attrs):len(attrs)], "error", ended.Error())
}
