package tlsbridge

import (
	"fmt"
	"net"
	"sync/atomic"
)

// MaxHandshakeBytes is the handshake budget: the bytes a client may send,
// as they come off the socket (TLS records and their headers), before
// its handshake completes (docs/design.md, "Connections in their
// handshake"). crypto/tls buffers a client's Certificate message up to
// 256 KiB, and grows its buffer by doubling to hold it, so that each
// connection in its handshake could hold a quarter of a megabyte or more
// from a peer not yet authenticated. A real client sends far less: a
// keytool key's certificate is about 0.5 KiB, the whole handshake of a
// keytool client 2.2 KiB (its ClientHello, with a post-quantum key share,
// some 1.5 KiB); a CA chain of several RSA-4096 certificates is 10 to
// 20 KiB (proxy.TestHandshakeBudgetAdmitsCAChain sends 22 KiB in 10
// certificates, PKI mode's most). 64 KiB leaves room for three times
// that.
const MaxHandshakeBytes = 64 << 10

// HandshakeTooLargeError is a client that sent more than Limit bytes (the
// handshake budget, MaxHandshakeBytes) before the server admitted it: a
// certificate chain far larger than any real one, most likely to hold
// the server's memory. It is the error of the handshake (and of the read
// that crossed the budget). Where no Server's configuration had found
// the BudgetConn, nothing could lift the budget, and the client may have
// been admitted and sent its data: the message says so, and why.
type HandshakeTooLargeError struct {
	Limit  int  // bytes
	hidden bool // no Server's configuration found the BudgetConn
}

func (e *HandshakeTooLargeError) Error() string {
	if e.hidden {
		// A BudgetConn cannot see the TLS state, so it cannot tell a
		// handshake in progress from one done without the lift.
		return fmt.Sprintf("tlsbridge: the client sent more than the handshake budget of %d KiB, and no Server's configuration had found the BudgetConn to lift it on admitting the client (a connection wrapper above it without a NetConn method hides it from the Server)", e.Limit>>10)
	}
	return fmt.Sprintf("tlsbridge: the client sent more than the handshake budget of %d KiB before the server admitted it", e.Limit>>10)
}

// BudgetConn is a client's connection under the handshake budget
// (MaxHandshakeBytes): until it is lifted, its reads stop at the budget,
// and a read past it fails with a *HandshakeTooLargeError, which fails
// the handshake. Reads are cut short at the budget rather than counted
// after the fact, so that crypto/tls never holds a byte past it, and so
// that only a handshake itself larger than the budget is refused: a
// client that sends its first request along with the end of its
// handshake (TLS 1.3 lets it) may have some of the request read with the
// handshake, but never past the budget, and the rest stays in the socket
// until the budget is lifted.
//
// A Server's configuration lifts it when it admits the client, in
// VerifyConnection: whoever drives the handshake — net/http, gRPC, the
// caller — an admitted client then sends what it likes. The
// configuration finds the BudgetConn from the connection the handshake
// runs on (tls.Server(c, cfg), as tls.NewListener does): c itself, or
// under it through NetConn methods, as *tls.Conn and BudgetConn have.
// So a connection wrapper of the caller's above the BudgetConn (a PROXY
// protocol reader, a byte counter) must have one too, NetConn() net.Conn
// returning the connection it wraps: through a wrapper without one the
// Server cannot see the budget, and an admitted client stops at it. A
// caller that drives the handshake itself may also Lift it once the
// handshake is done. With a configuration that is not a Server's,
// nothing lifts it, and every connection stops at the budget. Under
// ServerOptions.AllowUnknown (enrollment) every client not refused
// outright completes its handshake, unauthenticated, and its budget is
// lifted with it.
type BudgetConn struct {
	net.Conn
	left   int         // what the client may still send before the budget is lifted; read by Read only
	lifted atomic.Bool // no budget from now on
	found  atomic.Bool // by a Server's configuration, which lifts it on admitting the client; the error tells the two apart
}

// NewBudgetConn puts c under the handshake budget.
func NewBudgetConn(c net.Conn) *BudgetConn {
	return &BudgetConn{Conn: c, left: MaxHandshakeBytes}
}

// NetConn returns the connection under the budget, so that a wrapper
// above a BudgetConn may be looked through as it is (and the Server's
// configuration, which looks through NetConn methods, can find a
// BudgetConn under a caller's wrapper that has one).
func (c *BudgetConn) NetConn() net.Conn { return c.Conn }

// maxUnwrap bounds budgetOf's walk: real stacks of wrappers are a few
// deep, and a wrapper whose NetConn leads back to itself must not hang
// the handshake.
const maxUnwrap = 16

// budgetOf is the BudgetConn under c, c itself or one found through
// NetConn methods, or nil if there is none within maxUnwrap levels. The
// one found is marked found, for its error.
func budgetOf(c net.Conn) *BudgetConn {
	for range maxUnwrap {
		switch w := c.(type) {
		case *BudgetConn:
			if w != nil {
				w.found.Store(true)
			}
			return w
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// Lift ends the budget: from now on reads are c's own. It is safe to
// call more than once, and at the same time as Read.
func (c *BudgetConn) Lift() { c.lifted.Store(true) }

// Read reads from the connection, no further than the budget left until
// it is lifted.
func (c *BudgetConn) Read(p []byte) (int, error) {
	if c.lifted.Load() {
		return c.Conn.Read(p)
	}
	if c.left <= 0 {
		return 0, &HandshakeTooLargeError{Limit: MaxHandshakeBytes, hidden: !c.found.Load()}
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}

// BudgetListener returns a listener whose connections are under the
// handshake budget (BudgetConn) until a Server's configuration admits
// their client: put it under tls.NewListener, http.Server.ServeTLS or
// grpc.Server.Serve, with a Server's TLSConfig (or a configuration given
// to Configure).
//
//	ln, _ := net.Listen("tcp", ":8443")
//	httpSrv := &http.Server{Handler: srv.RequireAuthenticated(mux), TLSConfig: srv.TLSConfig(),
//		ConnContext: tlsbridge.ConnContext}
//	httpSrv.ServeTLS(tlsbridge.BudgetListener(ln), "", "")
//
// A listener of the caller's may wrap the one it returns, as long as the
// connections it hands on have a NetConn method returning the connection
// they wrap (BudgetConn): without one, the Server cannot lift the budget
// and every connection stops at it.
//
// Closing it closes inner.
func BudgetListener(inner net.Listener) net.Listener { return &budgetListener{inner} }

type budgetListener struct{ net.Listener }

func (l *budgetListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return NewBudgetConn(c), nil
}
