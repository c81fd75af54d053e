package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// refusalWait is how long CheckTarget reads a fresh connection for the
// server's refusal of this client's key.
const refusalWait = 500 * time.Millisecond

// ClientOptions configure a Client.
type ClientOptions struct {
	// TLS presents this side's identity and checks the target's key
	// against the keys pinned for the target's address (and the policy,
	// the prompt and PKI mode it was made with). Required.
	TLS *tlsbridge.Client
	// Target is the mutual-TLS server each connection is connected to
	// (host:port), and the address its key is pinned for. Required.
	Target string
	// HandshakeTimeout bounds the dial to the target and its TLS
	// handshake; zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// IdleTimeout bounds a connection after one side has closed its
	// writing half, as ServerOptions.IdleTimeout does.
	IdleTimeout time.Duration
	// Logger receives a line per connection and the lifecycle; nil
	// discards them.
	Logger *slog.Logger
	// ConnLevel is the level of the lines about each admitted connection
	// ("accepted" or "connected", "closed"): Info when zero. A busy proxy
	// logs them at slog.LevelDebug, so that they cost nothing unless
	// asked for. Refusals and failures keep their own levels (and the
	// aggregation of repeated handshake failures).
	ConnLevel slog.Level
	// Trust, if set, says in the logs why the target's key was trusted
	// (such as "pinned", or "PKI"): the "trust" attribute of each
	// connection's lines. Nil leaves the attribute out.
	Trust func(conn *tls.Conn) string
	// Store, if set, is the store TLS checks the target's key with (a
	// *knownhosts.Store): what each of its reloads changed is logged while
	// serving, and each reload decides the open connections' target key
	// again (below); without it, they are decided again every second.
	Store TrustStore
	// KeepOpenOnRevoke turns live revocation off. By default (TLS.Live),
	// a connection is closed ("closing: key no longer admitted") when the
	// target's key becomes revoked, another key is pinned for the target,
	// a revocation input or a trusted-hosts file is skipped, or — if the
	// key was pinned — its pin is removed. A key that was not pinned
	// (accepted once, the insecure policy) is closed only by those final
	// refusals; one its CA admitted, also by the CA's refusal (its CRL).
	KeepOpenOnRevoke bool
	// Explain, if set, rewrites the error of a connection to the target
	// that failed before it is logged (a program may add what to do
	// about it). Nil logs the error as it is.
	Explain func(err error) error
	// Metrics, if set, counts the handshakes with the target by result
	// and reason, the open connections and their bytes (NewMetrics).
	Metrics *Metrics
	// AcceptHosts are names or IP addresses (an IPv6 one without its
	// brackets) besides localhost, *.localhost and loopback addresses
	// (127.x.y.z, ::1) that a web browser's request may name in Host, or
	// come from in Origin: names this machine's users give the proxy's
	// address (in /etc/hosts), or its address on the network. A
	// browser's request that names another host, or comes from a page of
	// another site, is refused: the proxy presents its key for whoever
	// reaches its port, and any web page the user opens can reach it
	// (BrowserRequestError).
	AcceptHosts []string
}

// Client is client mode: it accepts plain TCP and connects each
// connection to the target over mutual TLS, presenting its identity and
// checking the target's key.
type Client struct {
	tls     *tlsbridge.Client
	target  string
	timeout time.Duration
	idle    time.Duration
	log     *slog.Logger
	connLvl slog.Level // of the per-connection lines
	trust   func(*tls.Conn) string
	explain func(error) error
	l       *listener
	metrics *Metrics
	accept  []string // ClientOptions.AcceptHosts, lower case, no final dot
}

// NewClient checks opts and makes a Client; Serve starts it.
func NewClient(opts ClientOptions) (*Client, error) {
	if opts.TLS == nil {
		return nil, &OptionError{"TLS", "a *tlsbridge.Client is required"}
	}
	if err := checkAddr("Target", opts.Target); err != nil {
		return nil, err
	}
	if err := checkTimeouts(opts.HandshakeTimeout, opts.IdleTimeout); err != nil {
		return nil, err
	}
	c := &Client{
		tls: opts.TLS, target: opts.Target, timeout: orDefault(opts.HandshakeTimeout, DefaultHandshakeTimeout),
		idle: orDefault(opts.IdleTimeout, DefaultIdleTimeout), trust: opts.Trust, explain: opts.Explain,
		metrics: opts.Metrics, connLvl: opts.ConnLevel,
	}
	if c.explain == nil {
		c.explain = func(err error) error { return err }
	}
	for _, h := range opts.AcceptHosts {
		c.accept = append(c.accept, strings.TrimSuffix(strings.ToLower(h), "."))
	}
	c.l = newListener(opts.Logger, "client", opts.Target, c.handle)
	c.l.store, c.l.what = opts.Store, "pinned"
	if !opts.KeepOpenOnRevoke {
		c.l.newLive = c.tls.Live
	}
	c.log = c.l.log
	return c, nil
}

// Serve accepts connections on ln until Shutdown or Close (it then
// returns ErrServerClosed at once, while Shutdown drains) or until ctx
// ends (it then cuts every open connection, waits for them and returns
// ctx's error). It logs "listening" first. ctx is also the parent of every
// connection's context. Serve closes ln.
func (c *Client) Serve(ctx context.Context, ln net.Listener) error { return c.l.serve(ctx, ln) }

// Shutdown stops accepting and drains, as Server.Shutdown does.
func (c *Client) Shutdown(ctx context.Context, attrs ...any) error {
	return c.l.shutdown(ctx, attrs...)
}

// Close stops accepting, cuts every open connection at once, and returns
// when their handlers have ended.
func (c *Client) Close() error {
	c.l.close()
	return nil
}

// CheckTarget connects to the target once, before Serve, so that the
// target's key is decided then — where the tlsbridge.Client's Prompt may
// ask a human, ctx giving them the time — and not in the middle of
// traffic. A key that is not trusted, or a refusal of this client's key,
// is a *TargetError: the proxy should not start. A target that cannot be
// reached, or that accepts the connection but completes no handshake
// (silent, or closing it), is only logged, each in its words (it is tried
// again at each connection), and CheckTarget returns nil, as it does
// after logging "target verified". A ctx that ended with a cause
// (context.WithCancelCause, WithTimeoutCause) has it logged as the error:
// the caller's words for the time it gave, rather than "context
// canceled"; one whose deadline passed without a cause, a
// *TargetTimeoutError with the time ctx had left when CheckTarget began,
// rather than "context deadline exceeded"; one cancelled without a
// cause, "target not checked at start: the check was stopped", with
// how long it had run, rather than "target unreachable at start" and
// "context canceled": the target was not found wanting.
func (c *Client) CheckTarget(ctx context.Context) error {
	start := time.Now()
	var within time.Duration // what ctx gave, for its timeout's words
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		within = time.Until(deadline).Round(time.Millisecond)
	}
	conn, err := c.tls.DialContext(ctx, "tcp", c.target)
	if err != nil {
		if isHandshakeError(err) {
			return &TargetError{Target: c.target, Err: err}
		}
		var op *net.OpError
		var te *tlsbridge.HandshakeTimeoutError
		unreachable := (errors.As(err, &op) && op.Op == "dial") || (errors.As(err, &te) && !te.Connected)
		// ctx ends the dial with Go's words for it ("dial tcp …: i/o
		// timeout", "context deadline exceeded"); the tlsbridge.Client's
		// own time, with its *HandshakeTimeoutError, which says it. The
		// dial's timeout is ctx's deadline, which may pass before ctx
		// is done: it will be at once.
		if hasDeadline && !time.Now().Before(deadline) {
			<-ctx.Done()
		}
		msg := "target made no TLS handshake at start; it will be checked at each connection"
		if unreachable {
			msg = "target unreachable at start; it will be checked at each connection"
		}
		switch cause := context.Cause(ctx); {
		case ctx.Err() == nil:
		case cause != ctx.Err():
			err = cause
		case errors.Is(cause, context.DeadlineExceeded):
			err = &TargetTimeoutError{Target: c.target, Within: within, Handshake: !unreachable, Err: err}
		default:
			// Cancelled, with no word of why: the target was not found
			// wanting, the check was stopped ("context canceled", or
			// the dial's "operation was canceled", said neither).
			msg = "target not checked at start: the check was stopped; it will be checked at each connection"
			err = &checkStoppedError{target: c.target, after: time.Since(start).Round(time.Millisecond), err: err}
		}
		c.log.Warn(msg, "target", c.target, "error", c.explain(err).Error())
		return nil
	}
	defer conn.Close()
	// In TLS 1.3 the server decides on our key after our handshake is
	// done: its refusal arrives as an alert on the first read.
	if err := awaitRefusal(conn, refusalWait); err != nil {
		return &TargetError{Target: c.target, Err: err}
	}
	c.log.Info("target verified", c.trustAttrs(conn, "target", c.target)...)
	return nil
}

// handle serves one connection: the target over TLS, then the pipe.
func (c *Client) handle(ctx context.Context, raw net.Conn, _ func()) {
	start := time.Now()
	defer raw.Close()
	attrs := []any{"remote", raw.RemoteAddr().String(), "target", c.target}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	conn, err := c.tls.DialContext(dctx, "tcp", c.target)
	// The tlsbridge.Client's own clock may end the dial at the same
	// moment (ClientOptions.HandshakeTimeout, as keytool sets it), and
	// the error then be its cancellation ("context canceled"): the time
	// that ran out is known from here.
	timedOut := errors.Is(dctx.Err(), context.DeadlineExceeded)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return // the proxy is closing
		}
		msg := "target refused"
		if isHandshakeError(err) {
			c.metrics.handshake(refusalReason(err))
		} else {
			// Said as CheckTarget says it: no connection, or one with
			// no TLS handshake on it (silent, closed, reset). The time
			// that ran out is this proxy's, or the tlsbridge.Client's
			// own (ClientOptions.HandshakeTimeout) if it is shorter.
			var op *net.OpError
			var budget *tlsbridge.HandshakeTimeoutError
			dialed, within := !errors.As(err, &op) || op.Op != "dial", c.timeout
			if errors.As(err, &budget) {
				dialed, within = budget.Connected, budget.Within
			}
			msg = "target unreachable"
			if dialed {
				msg = "target made no TLS handshake"
			}
			if timedOut {
				err = &TargetTimeoutError{Target: c.target, Within: within, Handshake: dialed, Err: err}
			} else {
				err = targetTimeout(c.target, within, dialed, err)
			}
			// Counted as server mode counts a client that made no
			// handshake in time: a target that never answers is the
			// failure an alert on failed/timeout is there to see. One
			// that closed or reset the connection before its handshake,
			// as server mode counts such a client: failed/tls_error. A
			// dial that failed is no handshake: a target error.
			switch {
			case errorIs[*TargetTimeoutError](err):
				c.metrics.handshake(resultFailed, reasonTimeout)
			case dialed:
				c.metrics.handshake(resultFailed, reasonTLS)
			default:
				c.metrics.targetFailed(reasonUnreachable)
			}
		}
		// Folded as server mode folds failed handshakes: a target that is
		// down, or refuses this key, fails every connection alike, and
		// a local client (or a web page) that retries makes a line each.
		reason := c.explain(err).Error()
		c.l.failures.FailedAll(slog.LevelError, msg, "reason", reason, append(attrs, "reason", reason)...)
		return
	}
	c.metrics.handshake(resultAdmitted, reasonKey)
	defer conn.Close()
	attrs = c.trustAttrs(conn, attrs...)
	if live := c.l.liveConns(); live != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer live.TrackConn(tlsbridge.Tracked{Conn: conn, State: conn.ConnectionState(), Addr: c.target, Close: func(error) { cancel() }, Attrs: attrs})()
		if ctx.Err() != nil {
			return // revoked since the handshake (logged), or the proxy is closing
		}
	}
	c.logConn(ctx, "connected", attrs)
	c.metrics.opened()
	// The local side's requests are each looked at before they go on: a
	// web page of another site must not act with this proxy's key.
	gate := &browserGate{Conn: raw, accept: c.accept}
	out, in, idled, ended := pipe(ctx, conn, gate, c.idle)
	c.metrics.closed(in, out)
	if gate.refused != nil {
		// Folded: a page may send such requests at will.
		c.l.failures.Failed(remoteAddr(raw), slog.LevelWarn, msgBrowserRefused, "reason", gate.refused.Reason, append(attrs, "reason", gate.refused.Reason)...)
	}
	if idled {
		c.log.Warn("idle after half-close: closing", append(attrs, "idle_timeout", c.idle.String())...)
	}
	c.logConn(ctx, "closed", endedBy(attrs, ended, idled), "bytes_in", in, "bytes_out", out, "duration", since(start))
}

// logConn logs a line about a connection at ClientOptions.ConnLevel,
// building it only when that level is enabled.
func (c *Client) logConn(ctx context.Context, msg string, attrs []any, more ...any) {
	if c.log.Enabled(ctx, c.connLvl) {
		c.log.Log(ctx, c.connLvl, msg, append(attrs, more...)...)
	}
}

// trustAttrs adds the target's fingerprint and, with Trust, why it was
// trusted.
func (c *Client) trustAttrs(conn *tls.Conn, attrs ...any) []any {
	attrs = append(attrs, "fingerprint", serverFingerprint(conn))
	if c.trust != nil {
		attrs = append(attrs, "trust", c.trust(conn))
	}
	return attrs
}

// awaitRefusal reads from a fresh connection for a moment: an alert is
// the server refusing us; data, the end of the stream or silence are not.
func awaitRefusal(conn *tls.Conn, wait time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	defer conn.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	if err == nil || errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// isHandshakeError tells a TLS or trust failure (final: retrying will not
// help) from a network one (the target is down, slow or went away).
func isHandshakeError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	// A timeout, the net package's or tlsbridge's (HandshakeTimeoutError,
	// which is no net.Error), is about the target's answer, not its key.
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		return false
	}
	return !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) &&
		!errors.Is(err, syscall.EPIPE) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// serverFingerprint is the fingerprint of the key the server presented.
func serverFingerprint(conn *tls.Conn) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return jwk.FormatFingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
}
