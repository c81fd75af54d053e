package enroll

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// WithEnrollment routes a tlsbridge server's HTTP requests: Path to the
// enrollment handler h, for any client that finished the handshake, and
// everything else to app, behind srv.RequireAuthenticated. srv must be in
// AllowUnknown mode for clients to reach h before they are authorized.
//
//	srv, _ := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: keys, AllowUnknown: true})
//	h, _ := enroll.NewHandler(enroll.HandlerOptions{Dir: enroll.InvitesDir(home), Clients: keys, ServerKey: id.Key, Logger: log})
//	httpSrv := &http.Server{Handler: enroll.WithEnrollment(srv, h, app), TLSConfig: srv.TLSConfig(),
//		ConnContext: tlsbridge.ConnContext}
//	httpSrv.ServeTLS(tlsbridge.BudgetListener(ln), "", "")
//
// Serve it on a tlsbridge.BudgetListener, as above: in AllowUnknown mode
// anyone completes the handshake, and without the budget each connection
// in its handshake may make crypto/tls buffer a certificate chain of
// 256 KiB.
//
// The http.Server needs tlsbridge.ConnContext (or
// tlsbridge.HookConnContext): the rate limits count failures by the
// address of each request's connection, as the "from" rules are checked,
// never by r.RemoteAddr, which middleware may set from X-Forwarded-For —
// a new value with each attempt would be a new address each time.
// Without it, every attempt counts against one address, and some
// clients' failures hold up everyone's enrollment.
func WithEnrollment(srv *tlsbridge.Server, h http.Handler, app http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, srv.Middleware(enrollGate(h)))
	mux.Handle("/", srv.RequireAuthenticated(app))
	return mux
}

// enrollGate passes to h the clients that may enroll — unknown ones
// (tlsbridge.Peer.MayEnroll), and authenticated ones, which the handler
// answers itself — and answers every other one 403 with its reason: a
// revoked, expired or wrongly placed key is not invited to enroll.
func enrollGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := tlsbridge.PeerFromContext(r.Context())
		if p != nil && !p.Authenticated() && !p.MayEnroll() {
			tlsbridge.WriteForbidden(w, tlsbridge.ReasonOf(p.Err), &p.SPKIHash)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Timeouts of ServeConn: an unauthenticated client gets little time.
const (
	serveReadTimeout  = 15 * time.Second
	serveWriteTimeout = 15 * time.Second
	// firstByteTimeout is how long a client has, from the end of the
	// handshake, to send its first byte. An enrolling client (keytool
	// join) sends its request as it ends the handshake; one that waits
	// for the server to speak first (SMTP, MySQL) is told at once that
	// its key is not authorized, not left in silence for
	// serveReadTimeout and then cut off with nothing said. It counts
	// from the handshake's end, not from the connection's start, so
	// that a slow handshake (a slow link, a loaded server) does not eat
	// the client's time; the handshake is bounded on its own (the
	// caller's timeout, or serveReadTimeout when ServeConn does it).
	firstByteTimeout = 3 * time.Second
	// refusalLinger bounds how long ServeConn reads and drops what the
	// client still sends after the refusal: closing with bytes unread
	// resets the connection, and the client may lose the refusal with it.
	refusalLinger = time.Second
	// connLifetime bounds a connection from the end of its handshake,
	// whatever the client does with it. An HTTP/1 client gets one
	// request within the timeouts above (keep-alives are off); an
	// HTTP/2 client's connection closes only once none of its streams
	// is open (net/http's server with keep-alives off), and a client
	// that opens the next before the last ends — each bounded by the
	// timeouts, the connection by nothing — would hold it for good, a
	// slot of the per-source limit with it. A minute is twice what an
	// HTTP/1 request may take (firstByteTimeout, serveReadTimeout,
	// serveWriteTimeout).
	connLifetime = time.Minute
	// maxHeaderBytes bounds the request's header (http.Server's
	// MaxHeaderBytes), and with it the request line ServeConn reads ahead.
	maxHeaderBytes = 16 << 10
	// maxStreams is the HTTP/2 streams a client may have open at once on
	// a connection. An enrolling client sends one request (keytool join
	// makes a connection a request); Go's server would allow 250, and a
	// client that advertises a flow-control window of 0 holds each
	// stream's handler until the write timeout: some 250 goroutines and
	// 3 MB a connection that no key was needed for, where a connection
	// is what the proxy's startup limits count.
	maxStreams = 1
)

// ServeConn serves HTTP on one connection — a *tls.Conn, from a client that
// is not authenticated — with h (a *Handler), until the client has made
// one request or goes quiet, and closes conn. It returns when the
// connection is closed; cancelling ctx closes it. A caller that decided
// on the client has done the handshake; if it is not done, ServeConn
// does it first, within serveReadTimeout (15 s), and returns nil if it
// fails: there is nobody to answer. Made over a tlsbridge.NewBudgetConn,
// the handshake is bounded in bytes as well (tlsbridge.MaxHandshakeBytes).
//
// It is for servers that are not HTTP servers, such as a TCP proxy: the
// handshake admits unknown clients (tlsbridge.ServerOptions.AllowUnknown),
// authenticated ones get the usual service, and the others are handed to
// ServeConn, where they can enroll and nothing else. conn must be the
// *tls.Conn itself (not a wrapper), so that the handler sees the client's
// certificate in r.TLS.
//
// Such a client may not speak HTTP at all: it is a client of the service
// behind the proxy. ServeConn reads its first line ahead: a client that
// sends something other than an HTTP/1 request line, ends its stream
// before one, or sends nothing within firstByteTimeout (3 s) of the end of
// the handshake (a protocol where the server speaks first) gets the
// answer h gives any request but
// enrollment — tlsbridge's 403 for its key (not_authorized) — instead of
// net/http's 400 or a silent close, so that it can tell why it is turned
// away; ServeConn then returns a *NoRequestError, for the server's log.
// A client that negotiated HTTP/2 (ALPN "h2") is served as it is.
//
// Whatever the client does, the connection is closed a minute
// (connLifetime) after the end of its handshake: an HTTP/2 client that
// keeps a stream open, the next opened before the last ends, is not
// served for ever.
func ServeConn(ctx context.Context, conn net.Conn, h http.Handler) error {
	return serveConn(ctx, conn, h, firstByteTimeout, connLifetime)
}

// serveConn is ServeConn with the time the client has to send its first
// byte after the handshake, and the connection's lifetime from there
// (tests shorten them).
func serveConn(ctx context.Context, conn net.Conn, h http.Handler, firstByte, lifetime time.Duration) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var state *tls.ConnectionState
	if tc, ok := conn.(*tls.Conn); ok {
		if err := handshake(ctx, tc); err != nil {
			conn.Close()
			return nil // the connection failed, or was closed by ctx
		}
		cs := tc.ConnectionState()
		state = &cs
	}
	// The client's time starts now that the handshake is over: the
	// request of an enrolling client comes right behind its end.
	start := time.Now()
	end := time.AfterFunc(lifetime, func() { conn.Close() })
	defer end.Stop()
	served := conn
	if state == nil || state.NegotiatedProtocol != "h2" {
		head, err := readRequestLine(conn, start, firstByte)
		if err != nil {
			// No HTTP server runs to close conn, as ServeConn promises.
			defer conn.Close()
			noReq := noRequest(head, err, firstByte)
			if noReq == nil || ctx.Err() != nil {
				return nil // the connection failed, or was closed by ctx
			}
			refuseConn(conn, state)
			return noReq
		}
		served = &aheadConn{Conn: conn, r: io.MultiReader(bytes.NewReader(head), conn)}
	}
	done := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler:           withTLSState(h, state),
		ReadHeaderTimeout: serveReadTimeout,
		ReadTimeout:       serveReadTimeout,
		WriteTimeout:      serveWriteTimeout,
		IdleTimeout:       time.Second,
		MaxHeaderBytes:    maxHeaderBytes,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       tlsbridge.ConnContext, // the rate limits' address (remoteOf)
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				once.Do(func() { close(done) })
			}
		},
	}
	srv.SetKeepAlivesEnabled(false) // one request, then close
	err := srv.Serve(&oneConnListener{conn: served, done: done})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// handshake completes conn's handshake if the caller has not, within
// serveReadTimeout: an unauthenticated client gets little time. The
// handshake of a *tls.Conn is done once; a done one returns at once.
func handshake(ctx context.Context, conn *tls.Conn) error {
	if conn.ConnectionState().HandshakeComplete {
		return nil
	}
	_ = conn.SetDeadline(time.Now().Add(serveReadTimeout))
	if err := conn.HandshakeContext(ctx); err != nil {
		return err
	}
	return conn.SetDeadline(time.Time{})
}

// errNotHTTP: what the client sent first cannot begin an HTTP/1 request.
var errNotHTTP = errors.New("enroll: the client's first bytes are not an HTTP request")

// readRequestLine reads what the client sends first, until it holds an
// HTTP/1 request line (nil error; what was read is returned, to be read
// again by the HTTP server), or maxHeaderBytes of what may still begin
// one (nil: the HTTP server answers a line too long itself), or cannot
// be one (errNotHTTP). The first byte must come within firstByte of
// start (the end of the handshake), the whole line within
// serveReadTimeout.
func readRequestLine(conn net.Conn, start time.Time, firstByte time.Duration) ([]byte, error) {
	_ = conn.SetReadDeadline(start.Add(firstByte))
	var head []byte
	buf := make([]byte, 4<<10)
	for {
		n, err := conn.Read(buf)
		if n > 0 && len(head) == 0 {
			_ = conn.SetReadDeadline(start.Add(serveReadTimeout))
		}
		head = append(head, buf[:n]...)
		switch requestLine(head) {
		case lineComplete:
			return head, nil
		case lineInvalid:
			return head, errNotHTTP
		}
		if len(head) >= maxHeaderBytes {
			return head, nil
		}
		if err != nil {
			return head, err
		}
	}
}

// NoRequestError: ServeConn turned away a client that made no HTTP
// request, with tlsbridge's 403 for its key (not_authorized). It is for
// the server's log: the client was told only that its key is not
// authorized.
type NoRequestError struct {
	// What the client did instead, such as "sent bytes that cannot begin
	// an HTTP request" or "sent nothing within 3s of the handshake".
	What string
}

func (e *NoRequestError) Error() string {
	return "enroll: the client made no HTTP request: it " + e.What + "; answered 403 not_authorized"
}

// noRequest is the NoRequestError for what readRequestLine read and its
// error, or nil when the connection failed (reset, closed, a TLS error):
// there is nobody to answer.
func noRequest(head []byte, err error, firstByte time.Duration) *NoRequestError {
	switch {
	case errors.Is(err, errNotHTTP):
		return &NoRequestError{"sent bytes that cannot begin an HTTP request"}
	case errors.Is(err, io.EOF) && len(head) == 0:
		return &NoRequestError{"ended its stream without sending a byte"}
	case errors.Is(err, io.EOF):
		return &NoRequestError{"ended its stream before a whole request line"}
	case errors.Is(err, os.ErrDeadlineExceeded) && len(head) == 0:
		return &NoRequestError{fmt.Sprintf("sent nothing within %v of the handshake", firstByte)}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &NoRequestError{fmt.Sprintf("sent no whole request line within %v of the handshake", serveReadTimeout)}
	}
	return nil
}

// refuseConn answers a client that made no HTTP request as h answers
// one to another path (Handler.forbidden): tlsbridge's 403 for its key,
// reason not_authorized — the client may enroll, and nothing else — then
// ends the stream and lingers until the client closes, briefly.
func refuseConn(conn net.Conn, state *tls.ConnectionState) {
	_ = conn.SetWriteDeadline(time.Now().Add(serveWriteTimeout))
	if tlsbridge.WriteForbiddenResponse(conn, tlsbridge.ReasonNotAuthorized, clientSPKIHash(state)) != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(refusalLinger))
	_, _ = io.CopyN(io.Discard, conn, maxHeaderBytes)
}

// withTLSState gives h's requests the connection's TLS state: ServeConn
// hands the HTTP server a connection that replays the request line it
// read ahead, which the server cannot see is TLS.
func withTLSState(h http.Handler, state *tls.ConnectionState) http.Handler {
	if state == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			r = r.WithContext(r.Context())
			r.TLS = state
		}
		h.ServeHTTP(w, r)
	})
}

// aheadConn is a connection whose first bytes were read ahead: r reads
// them again, then the connection.
type aheadConn struct {
	net.Conn
	r io.Reader
}

func (c *aheadConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite lets the HTTP server end its answer as it does on the
// connection itself (a TLS close_notify) before it closes.
func (c *aheadConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// oneConnListener hands out one connection, then waits for it to close.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error { return nil }

func (l *oneConnListener) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "enroll.ServeConn" }
