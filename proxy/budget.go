package proxy

import "net"

// maxHandshakeBytes is the handshake budget: the bytes a client may send,
// as they come off the socket (TLS records and their headers), before
// its handshake completes. crypto/tls buffers a client's Certificate
// message up to 256 KiB, and grows its buffer by doubling to hold it, so
// that each of the 1,024 connections MaxStartups lets into their
// handshake at once could hold a quarter of a megabyte or more from a
// peer not yet authenticated, for HandshakeTimeout. A real client sends
// far less: a keytool key's certificate is about 0.5 KiB, the whole
// handshake of a keytool client 2.2 KiB (its ClientHello, with a
// post-quantum key share, some 1.5 KiB); a CA chain of several RSA-4096
// certificates is 10 to 20 KiB (TestHandshakeBudgetAdmitsCAChain sends
// 22 KiB in 10 certificates, PKI mode's most). 64 KiB leaves room for
// three times that. After the handshake the budget no longer applies:
// an admitted client sends what it likes.
const maxHandshakeBytes = 64 << 10

// budgetConn is a client's connection under the handshake budget
// (maxHandshakeBytes): until done, its reads stop at the budget, and
// a read past it fails with a *HandshakeTooLargeError, which fails the
// handshake. Reads are cut short at the budget rather than counted after
// the fact, so that crypto/tls never holds a byte past it, and so that
// only a handshake itself larger than the budget is refused: a client
// that sends its first request along with the end of its handshake (TLS
// 1.3 lets it) may have some of the request read with the handshake, but
// never past the budget, and the rest stays in the socket until the
// handshake is done.
type budgetConn struct {
	net.Conn
	left int  // what the client may still send before its handshake completes
	done bool // the handshake completed: no budget from now on
}

func newBudgetConn(c net.Conn) *budgetConn {
	return &budgetConn{Conn: c, left: maxHandshakeBytes}
}

func (c *budgetConn) Read(p []byte) (int, error) {
	if c.done {
		return c.Conn.Read(p)
	}
	if c.left <= 0 {
		return 0, &HandshakeTooLargeError{Limit: maxHandshakeBytes}
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
}
