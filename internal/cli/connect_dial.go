package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/keytool/keytool/proxy"
	"github.com/keytool/keytool/tlsbridge"
)

// connect's failures, in the words of what the user sees: a port where
// nothing answers, a port that is not TLS, a proxy whose service is down.
// The Go errors under them ("i/o timeout", "first record does not look
// like a TLS handshake", a bare EOF) say nothing to someone who ran
// keytool connect.

// handshakeFailure names the handshake failures that are about the port,
// not about keys: no answer, an answer in plain text, a close.
func handshakeFailure(err error, addr string, timeout time.Duration) error {
	var ne net.Error
	var rh tls.RecordHeaderError
	var budget *tlsbridge.HandshakeTimeoutError
	var target *proxy.TargetTimeoutError
	switch {
	case errors.As(err, &target) && !target.Handshake: // proxy --client's bound, or the client's under it
		return &connectTimeoutError{addr: addr, timeout: target.Within}
	case errors.As(err, &target):
		return &noHandshakeError{addr: addr, timeout: target.Within}
	case errors.As(err, &budget) && !budget.Connected: // the client's bound (ClientOptions.HandshakeTimeout)
		return &connectTimeoutError{addr: addr, timeout: budget.Within}
	case errors.As(err, &budget):
		return &noHandshakeError{addr: addr, timeout: budget.Within}
	case errors.As(err, &ne) && ne.Timeout():
		return &noHandshakeError{addr: addr, timeout: timeout}
	case errors.As(err, &rh):
		return &plainTextError{addr: addr, err: err}
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return &handshakeClosedError{addr: addr}
	case errors.Is(err, syscall.ECONNRESET):
		return &handshakeResetError{addr: addr, err: err}
	}
	return err
}

// connectTimeoutError: the TCP connection was not made in time.
type connectTimeoutError struct {
	addr    string
	timeout time.Duration
}

func (e *connectTimeoutError) Error() string {
	return fmt.Sprintf("could not connect to %s within %v: is the address right, and is the host up?", e.addr, e.timeout)
}

// noHandshakeError: the port accepted the connection and said nothing.
type noHandshakeError struct {
	addr    string
	timeout time.Duration
}

func (e *noHandshakeError) Error() string {
	return fmt.Sprintf("no TLS handshake from %s within %v: is it a TLS server?", e.addr, e.timeout)
}

// plainTextError: the port answered, but not in TLS (an HTTP server, say).
type plainTextError struct {
	addr string
	err  error
}

func (e *plainTextError) Error() string {
	return fmt.Sprintf("%s answered in plain text, not TLS: is it the right port?", e.addr)
}

func (e *plainTextError) Unwrap() error { return e.err }

// handshakeClosedError: the port closed the connection in the handshake.
type handshakeClosedError struct{ addr string }

func (e *handshakeClosedError) Error() string {
	return fmt.Sprintf("%s closed the connection during the TLS handshake: is it a TLS server?", e.addr)
}

// handshakeResetError: the port reset the connection in the handshake
// (a close with data unread, or SO_LINGER 0): a service that is not TLS
// and drops what it cannot parse, or a TLS server that refused this
// client without an alert.
type handshakeResetError struct {
	addr string
	err  error
}

func (e *handshakeResetError) Error() string {
	return fmt.Sprintf("%s reset the connection during the TLS handshake: it is not a TLS server on that port, or it refused this client", e.addr)
}

func (e *handshakeResetError) Unwrap() error { return e.err }

// closedEarlyError: the server closed the connection before sending a
// byte, while standard input was still open, or reset it — keytool proxy
// does that when its target is down.
type closedEarlyError struct {
	addr string
	err  error // the read's error, nil for a clean close
}

func (e *closedEarlyError) Error() string {
	msg := fmt.Sprintf("the connection was closed by %s before any data came back: is the service behind it down?", e.addr)
	// A reset is the close "not cleanly" that docs/cli.md gives this same
	// sentence to, without crypto/tls's "read tcp A->B: read: connection
	// reset by peer": keytool proxy resets the connection when its target
	// is down (proxy.abort). Any other error is added.
	if e.err != nil && !errors.Is(e.err, syscall.ECONNRESET) {
		msg += fmt.Sprintf(" (%v)", e.err)
	}
	return msg
}

func (e *closedEarlyError) Unwrap() error { return e.err }

// pipe copies standard input to conn and conn to standard output. The end
// of standard input closes the sending side only. The rule for a server
// that hangs up without a word (docs/cli.md, connect): when it closes the
// connection — cleanly or not — having sent no byte while standard input
// has not ended, connect fails with closedEarlyError. Once standard input
// has ended, a server that closes without answering has simply nothing to
// say (a sink), and that is a success. A whole answer that is keytool's
// HTTP 403 for this client's key is a refusal (forbiddenByServerError).
//
// A reset with no byte back is closedEarlyError whenever standard input
// ended: a server resets (its kernel does) when it closes with bytes of
// the client's unread, or when they arrive after it closed, so it did not
// take the input — what keytool proxy does when its target is down, and a
// sink does not. It was crypto/tls's raw "connection reset by peer" once
// standard input had ended here, as it usually has with a short input
// (echo hi | keytool connect ADDR).
func (c *cli) pipe(conn *tls.Conn, addr string, id *tlsbridge.Identity) error {
	// Standard input has ended once its close_notify is written: then
	// only is inputEnded set, under mu, which the reader takes to look.
	// Set before the close_notify was written, as it was, the flag let a
	// server that closed before it (keytool proxy, target down) pass for a
	// sink, exit 0, when the close came between the two.
	var (
		mu         sync.Mutex
		inputEnded bool
	)
	go func() {
		// End of input: close our sending side only, and keep reading
		// what the server still has to say.
		if _, err := io.Copy(conn, c.stdin); err == nil {
			mu.Lock()
			inputEnded = conn.CloseWrite() == nil
			mu.Unlock()
		}
	}()
	out := &headWriter{w: c.stdout, max: forbiddenCapture}
	n, err := io.Copy(out, conn)
	if err != nil {
		// TLS 1.3: a server's refusal of our key arrives on the first read.
		if refused := c.explainRefusal(err, addr, id); refused != err {
			return refused
		}
	}
	if n > 0 && n <= forbiddenCapture {
		if body := forbiddenAnswer(out.head, id.Key.Fingerprint()); body != nil {
			return &forbiddenByServerError{addr: addr, key: id.Key, reason: body.Reason, msg: body.Message}
		}
	}
	if n == 0 {
		mu.Lock()
		sink := inputEnded && err == nil // a clean close, after our end of input
		mu.Unlock()
		if !sink {
			return &closedEarlyError{addr: addr, err: err}
		}
	}
	return err
}
