package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by
// Serve on a proxy already shut down.
var ErrServerClosed = errors.New("proxy: closed")

// ErrServing is returned by Serve on a proxy that is already serving a
// listener: a proxy serves one listener in its life.
var ErrServing = errors.New("proxy: already serving a listener")

// OptionError is an option that NewServer or NewClient cannot work with.
type OptionError struct {
	Option string // the field of ServerOptions or ClientOptions
	Reason string
}

func (e *OptionError) Error() string { return fmt.Sprintf("proxy: %s: %s", e.Option, e.Reason) }

// TargetError is the client-mode target failing Client.CheckTarget: its
// key is not the one pinned for it (a *knownhosts error inside), it is not
// trusted under the policy, or it refused this client's key (a TLS alert).
// Connecting again will not help.
type TargetError struct {
	Target string
	Err    error
}

func (e *TargetError) Error() string { return fmt.Sprintf("proxy: target %s: %v", e.Target, e.Err) }

func (e *TargetError) Unwrap() error { return e.Err }

// TargetTimeoutError is a connection to the target that timed out while
// the proxy still wanted it: the target did not answer its TCP dial
// within Within (HandshakeTimeout) — a host down, a port a firewall
// drops, a backlog full — or, in client mode, accepted the connection
// and made no TLS handshake within it (Handshake). Err is the error it
// happened with: a *net.OpError of the dial timing out,
// context.DeadlineExceeded, or the tlsbridge.Client's own
// *tlsbridge.HandshakeTimeoutError when its time was the shorter.
type TargetTimeoutError struct {
	Target    string
	Within    time.Duration
	Handshake bool
	Err       error
}

func (e *TargetTimeoutError) Error() string {
	if e.Handshake {
		return fmt.Sprintf("proxy: target %s accepted the connection but made no TLS handshake within %v", e.Target, e.Within)
	}
	return fmt.Sprintf("proxy: target %s did not answer within %v", e.Target, e.Within)
}

func (e *TargetTimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout, as net.Error says one.
func (e *TargetTimeoutError) Timeout() bool { return true }

// ResponseTimeoutError is, in HTTP mode, a request the target was sent
// and did not answer: no response headers came within Within
// (ServerOptions.ResponseHeaderTimeout). The client was answered 504
// Gateway Timeout. Err is the net/http transport's timeout under it.
type ResponseTimeoutError struct {
	Target string
	Within time.Duration
	Err    error
}

func (e *ResponseTimeoutError) Error() string {
	return fmt.Sprintf("proxy: target %s sent no response to the request within %v", e.Target, e.Within)
}

func (e *ResponseTimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout, as net.Error says one.
func (e *ResponseTimeoutError) Timeout() bool { return true }

// targetTimeout is err, a failed connection to target, as a
// *TargetTimeoutError if it timed out (within, in the handshake or not),
// and as it is otherwise: a refused or reset connection says so in its
// own words. The caller knows the timeout was its own, and not the end
// of the proxy's context (a revocation, Close), which is not logged.
func targetTimeout(target string, within time.Duration, handshake bool, err error) error {
	var timeout interface{ Timeout() bool } // a net.Error's, tlsbridge.HandshakeTimeoutError's
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &timeout) && timeout.Timeout()) {
		return &TargetTimeoutError{Target: target, Within: within, Handshake: handshake, Err: err}
	}
	return err
}

// RequestBodyTimeoutError is, in HTTP mode, a request whose client sent
// nothing of its body for Within (ServerOptions.RequestBodyTimeout)
// while the proxy waited for it. The client's connection was closed with
// no answer (HTTP/2: its stream reset), and the target's.
type RequestBodyTimeoutError struct {
	Within time.Duration
	Err    error
}

func (e *RequestBodyTimeoutError) Error() string {
	return fmt.Sprintf("proxy: the client sent nothing of its request body for %v", e.Within)
}

func (e *RequestBodyTimeoutError) Unwrap() error { return e.Err }

// Timeout reports true: the error is a timeout, as net.Error says one.
func (e *RequestBodyTimeoutError) Timeout() bool { return true }

// HandshakeTooLargeError is a client that sent more than Limit bytes
// (tlsbridge's handshake budget, 64 KiB) before its TLS handshake
// completed: a certificate chain far larger than any real one, most
// likely to hold the proxy's memory. Its connection was closed; the
// failure is logged ("refused") and counted (reason handshake_too_large).
// Err is tlsbridge's *tlsbridge.HandshakeTooLargeError.
type HandshakeTooLargeError struct {
	Limit int // bytes
	Err   error
}

func (e *HandshakeTooLargeError) Error() string {
	return fmt.Sprintf("proxy: the client sent more than the handshake budget of %d KiB before its handshake completed", e.Limit>>10)
}

func (e *HandshakeTooLargeError) Unwrap() error { return e.Err }

// tooLarge is a handshake's error as the proxy reports it: tlsbridge's
// budget refusal as a *HandshakeTooLargeError, other errors as they are.
func tooLarge(err error) error {
	var tl *tlsbridge.HandshakeTooLargeError
	if errors.As(err, &tl) {
		return &HandshakeTooLargeError{Limit: tl.Limit, Err: err}
	}
	return err
}

// checkStoppedError is CheckTarget's context cancelled, with no cause,
// before the target answered: the program running the proxy stopped the
// check. Said so, with how long it had run, where Go says "context
// canceled" or "operation was canceled". It is only logged.
type checkStoppedError struct {
	target string
	after  time.Duration
	err    error
}

func (e *checkStoppedError) Error() string {
	return fmt.Sprintf("proxy: the program running the proxy stopped its check of target %s after %v, before the target answered", e.target, e.after)
}

func (e *checkStoppedError) Unwrap() error { return e.err }
