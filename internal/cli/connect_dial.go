package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// connect's failures, in the words of what the user sees: a port where
// nothing answers, a port that is not TLS, a proxy whose service is down.
// The Go errors under them ("i/o timeout", "first record does not look
// like a TLS handshake", a bare EOF) say nothing to someone who ran
// keytool connect.

// handshakeTimer bounds the TCP connection and the TLS handshake of
// connect with --connect-timeout, on the connection's deadline — or, for
// proxy --client's start-up check, which dials through proxy and
// tlsbridge and has no connection to set a deadline on, with a context
// (bound) that --handshake-timeout ends. The time a person spends
// answering the first-use question is not counted: the timer stops while
// the prompt runs.
type handshakeTimer struct {
	timeout time.Duration

	mu       sync.Mutex
	conn     net.Conn    // set once the TCP connection is made
	timer    *time.Timer // set by bound: ends its context
	deadline time.Time   // when the handshake must be done
}

// bound returns ctx, ended when the timeout has run, the prompt's time
// not counted, with a *noHandshakeError for addr as its cause (what
// proxy.Client.CheckTarget logs); stop releases it.
func (h *handshakeTimer) bound(ctx context.Context, addr string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deadline = time.Now().Add(h.timeout)
	h.timer = time.AfterFunc(h.timeout, func() { cancel(&noHandshakeError{addr: addr, timeout: h.timeout}) })
	return ctx, func() { h.timer.Stop(); cancel(nil) }
}

// prompt wraps p so that the question stops the clock: the first-use
// question, and the one about an announced key (--update-host-keys ask)
// when p asks it.
func (h *handshakeTimer) prompt(p tlsbridge.Prompt) tlsbridge.Prompt {
	return timedPrompt{h: h, p: p}
}

type timedPrompt struct {
	h *handshakeTimer
	p tlsbridge.Prompt
}

func (t timedPrompt) AskUnknownHost(u tlsbridge.UnknownHost) (tlsbridge.Answer, error) {
	return t.h.paused(func() (tlsbridge.Answer, error) { return t.p.AskUnknownHost(u) })
}

func (t timedPrompt) AskAnnouncedKey(a tlsbridge.AnnouncedKey) (tlsbridge.Answer, error) {
	ap, ok := t.p.(tlsbridge.AnnouncementPrompt)
	if !ok {
		return tlsbridge.No, nil
	}
	return t.h.paused(func() (tlsbridge.Answer, error) { return ap.AskAnnouncedKey(a) })
}

// paused runs ask with the connection's deadline lifted, then gives the
// handshake what was left of its time (at least a second).
func (h *handshakeTimer) paused(ask func() (tlsbridge.Answer, error)) (tlsbridge.Answer, error) {
	h.mu.Lock()
	conn, timer, left := h.conn, h.timer, time.Until(h.deadline)
	h.mu.Unlock()
	if conn != nil {
		_ = conn.SetDeadline(time.Time{})
	}
	if timer != nil {
		timer.Stop()
	}
	a, err := ask()
	if conn != nil || timer != nil {
		h.mu.Lock()
		h.deadline = time.Now().Add(max(left, time.Second))
		if conn != nil {
			_ = conn.SetDeadline(h.deadline)
		}
		if timer != nil {
			timer.Reset(time.Until(h.deadline))
		}
		h.mu.Unlock()
	}
	return a, err
}

// dial connects to addr and completes the handshake within the timeout.
func (h *handshakeTimer) dial(client *tlsbridge.Client, addr string) (*tls.Conn, error) {
	cfg, err := client.TLSConfig(addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(h.timeout) // one budget for both steps
	raw, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, &connectTimeoutError{addr: addr, timeout: h.timeout}
		}
		return nil, err
	}
	h.mu.Lock()
	h.conn, h.deadline = raw, deadline
	_ = raw.SetDeadline(h.deadline)
	h.mu.Unlock()
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		raw.Close()
		return nil, handshakeFailure(err, addr, h.timeout)
	}
	_ = raw.SetDeadline(time.Time{})
	client.LearnAnnounced(addr, conn.ConnectionState())
	return conn, nil
}

// handshakeFailure names the handshake failures that are about the port,
// not about keys: no answer, an answer in plain text, a close.
func handshakeFailure(err error, addr string, timeout time.Duration) error {
	var ne net.Error
	var rh tls.RecordHeaderError
	var budget *tlsbridge.HandshakeTimeoutError
	switch {
	case errors.As(err, &budget): // tlsbridge's own bound, shorter than timeout
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
// byte, while standard input was still open — keytool proxy does that when
// its target is down.
type closedEarlyError struct {
	addr string
	err  error // the read's error, nil for a clean close
}

func (e *closedEarlyError) Error() string {
	msg := fmt.Sprintf("the connection was closed by %s before any data came back: is the service behind it down?", e.addr)
	if e.err != nil {
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
func (c *cli) pipe(conn *tls.Conn, addr string, id *tlsbridge.Identity) error {
	var inputEnded atomic.Bool
	go func() {
		// End of input: close our sending side only, and keep reading
		// what the server still has to say.
		if _, err := io.Copy(conn, c.stdin); err == nil {
			inputEnded.Store(true)
			_ = conn.CloseWrite()
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
	if n == 0 && !inputEnded.Load() {
		return &closedEarlyError{addr: addr, err: err}
	}
	return err
}
